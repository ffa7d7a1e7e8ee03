"""The one-channel fold of a 3-channel model for Mono8 frames: same outputs, same verdicts,
and no fold where the first layer is anything but one plain convolution."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from camera.synthetic_parts import KNOWN_CLASSES, generate_part
from inference import DetectorSpec, EngineOptions, ImageInput, InputProfile, ModelConfig
from inference.mono_fold import fold_mono_input
from inference.onnxruntime import OnnxRuntimeEngine

DEMO = Path(__file__).resolve().parents[2] / "recipes" / "demo" / "demo-parts.onnx"


def conv_model(group: int = 1, second_consumer: bool = False, weight_from_node: bool = False) -> onnx.ModelProto:
    """images [N, 3, H, W] -> Conv(3x3, pad 1) -> Relu -> output."""
    rng = np.random.default_rng(1)
    weight = rng.standard_normal((6, 3 // group, 3, 3)).astype(np.float32)
    inits = [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(np.ones(6, np.float32), "b")]
    w_name = "w"
    nodes = []
    if weight_from_node:
        nodes.append(helper.make_node("Identity", ["w"], ["w_id"]))
        w_name = "w_id"
    nodes += [
        helper.make_node("Conv", ["images", w_name, "b"], ["c"], pads=[1, 1, 1, 1], group=group),
        helper.make_node("Relu", ["c"], ["output"]),
    ]
    outputs = [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 6, "H", "W"])]
    if second_consumer:
        nodes.append(helper.make_node("ReduceMean", ["images"], ["m"], keepdims=0))
        outputs.append(helper.make_tensor_value_info("m", TensorProto.FLOAT, []))
    graph = helper.make_graph(
        nodes, "fold-test", [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        outputs, inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(["output"], {"images": x})[0])


def test_folded_conv_computes_the_replicated_input() -> None:
    model = conv_model()
    folded, why = fold_mono_input(model)
    assert folded is not None, why
    assert folded.graph.input[0].type.tensor_type.shape.dim[1].dim_value == 1
    gray = np.random.default_rng(2).random((2, 1, 17, 23), dtype=np.float32)  # odd sizes: the padded edges count
    want = _run(model, np.repeat(gray, 3, axis=1))
    got = _run(folded, gray)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert model.graph.input[0].type.tensor_type.shape.dim[1].dim_value == 3, "the original is left as it was"


def test_fold_can_take_the_normalisation_into_the_kernel() -> None:
    """``scale=1/255``: the folded model eats pixel values and computes what the model computes
    on the unit-normalised, replicated plane (the engine then only casts the frame)."""
    model = conv_model()
    folded, why = fold_mono_input(model, scale=1.0 / 255.0)
    assert folded is not None, why
    pixels = np.random.default_rng(4).integers(0, 256, (2, 1, 17, 23)).astype(np.float32)
    want = _run(model, np.repeat(pixels / np.float32(255.0), 3, axis=1))
    np.testing.assert_allclose(_run(folded, pixels), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"group": 3}, "grouped"),
        ({"second_consumer": True}, "exactly one convolution"),
        ({"weight_from_node": True}, "not a constant"),
    ],
)
def test_no_fold_unless_the_input_feeds_one_plain_conv(kwargs: dict, reason: str) -> None:
    folded, why = fold_mono_input(conv_model(**kwargs))
    assert folded is None
    assert reason in why


def _demo_spec(normalize: str = "unit") -> DetectorSpec:
    model = ModelConfig(onnx=DEMO, layout="yolov8", normalize=normalize,  # type: ignore[arg-type]
                        input=InputProfile(min=(320, 320), opt=(512, 640), max=(512, 640)))  # fmt: skip
    return DetectorSpec(model, tuple(KNOWN_CLASSES), (0.3,) * len(KNOWN_CLASSES))


@pytest.mark.skipif(not DEMO.is_file(), reason=f"{DEMO} is not in the tree")
def test_mono_frames_get_the_same_detections_folded() -> None:
    rng = np.random.default_rng(5)
    parts = [generate_part(rng, 1280, 1024, "Mono8", defect_rate=0.9)[0] for _ in range(6)]
    folded = OnnxRuntimeEngine(_demo_spec(), EngineOptions())
    plain = OnnxRuntimeEngine(_demo_spec(), EngineOptions(mono_fold=False))
    found = 0
    for part in parts:
        a = folded.detect([ImageInput(part, "Mono8")])[0].detections
        b = plain.detect([ImageInput(part, "Mono8")])[0].detections
        assert len(a) == len(b)
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=0.05)
        np.testing.assert_allclose(a.confidence, b.confidence, atol=1e-4)
        np.testing.assert_array_equal(a.class_id, b.class_id)
        found += len(a)
    assert found > 0, "defective parts, and the demo model found nothing"
    assert folded._mono is not None and folded.mono_fold_error is None
    assert plain._mono is None and plain.mono_fold_error == "engine.mono_fold is off"


@pytest.mark.skipif(not DEMO.is_file(), reason=f"{DEMO} is not in the tree")
def test_colour_frames_and_imagenet_models_keep_three_channels() -> None:
    engine = OnnxRuntimeEngine(_demo_spec(), EngineOptions())
    rgb = np.random.default_rng(3).integers(0, 256, (1024, 1280, 3), dtype=np.uint8)
    engine.detect([ImageInput(rgb, "RGB8")])
    assert not engine._mono_tried, "an RGB frame needs no folded model"
    imagenet = OnnxRuntimeEngine(_demo_spec("imagenet"), EngineOptions())
    imagenet.detect([ImageInput(rgb[:, :, 0].copy(), "Mono8")])
    assert imagenet._mono is None and "differs per channel" in (imagenet.mono_fold_error or "")
