"""The ONNX Runtime CPU engine end to end on tiny graphs with known outputs."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from inference import (
    DetectorSpec,
    EngineLoadError,
    EngineOptions,
    ImageInput,
    InputProfile,
    ModelConfig,
    NmsConfig,
    open_engine,
)
from inference.model_check import check_model
from inference.onnxruntime import OnnxRuntimeEngine

from .onnx_models import bad_input_model, colour_model, constant_model, with_metadata

# A 200x100 (W x H) frame into a fixed 320x320 profile: scale 1.6, 80 px padding top and bottom.
PROFILE = InputProfile(min=(320, 320), opt=(320, 320), max=(320, 320))
FRAME = (100, 200)
BOX_IN = [16.0, 96.0, 48.0, 128.0]  # input pixels (xyxy) ...
BOX_FRAME = [10.0, 10.0, 30.0, 30.0]  # ... and where that is in the frame
SHIFTED = [18.0, 96.0, 50.0, 128.0]  # IoU with BOX_IN = 30 * 32 / (34 * 32) = 0.88


def xyxy_to_cxcywh(b: list[float]) -> list[float]:
    return [(b[0] + b[2]) / 2, (b[1] + b[3]) / 2, b[2] - b[0], b[3] - b[1]]


# Candidates: best class-0 box, a shifted duplicate (suppressed), and a class-1 box on the same spot
# (kept: NMS is class-aware). Each layout encodes the same three.
def yolov8_value() -> np.ndarray:
    cols = [xyxy_to_cxcywh(BOX_IN) + [0.9, 0.1], xyxy_to_cxcywh(SHIFTED) + [0.8, 0.0], xyxy_to_cxcywh(BOX_IN) + [0.0, 0.7]]
    return np.array(cols, np.float32).T[None]


def yolov5_value() -> np.ndarray:
    rows = [xyxy_to_cxcywh(BOX_IN) + [1.0, 0.9, 0.1], xyxy_to_cxcywh(SHIFTED) + [1.0, 0.8, 0.0], xyxy_to_cxcywh(BOX_IN) + [0.7, 0.0, 1.0]]
    return np.array(rows, np.float32)[None]


def end2end_value() -> np.ndarray:
    rows = [BOX_IN + [0.9, 0], SHIFTED + [0.8, 0], BOX_IN + [0.7, 1], [0, 0, 0, 0, 0, 0]]
    return np.array(rows, np.float32)[None]


VALUES = {"yolov5": yolov5_value, "yolov8": yolov8_value, "end2end": end2end_value}


def spec_for(path: Path, layout: str = "yolov8", classes: tuple[str, ...] = ("scratch", "dent"), **model: object) -> DetectorSpec:
    return DetectorSpec(
        model=ModelConfig(onnx=path, layout=layout, input=model.pop("input", PROFILE), **model),  # type: ignore[arg-type]
        classes=classes,
        score_thresholds=(0.5,) * len(classes),
        nms=NmsConfig(iou=0.5),
    )


@pytest.mark.parametrize("layout", ["yolov5", "yolov8"])
def test_detect_end_to_end(tmp_path: Path, layout: str) -> None:
    path = constant_model(tmp_path / f"{layout}.onnx", VALUES[layout]())
    with open_engine(spec_for(path, layout), EngineOptions(intra_op_threads=1)) as engine:
        assert isinstance(engine, OnnxRuntimeEngine)
        frame = np.zeros(FRAME, np.uint8)
        (result,) = engine.detect([ImageInput(frame, "Mono8")])
    d = result.detections
    np.testing.assert_allclose(d.xyxy, [BOX_FRAME, BOX_FRAME], atol=1e-4)
    np.testing.assert_allclose(d.confidence, [0.9, 0.7], rtol=1e-6)
    np.testing.assert_array_equal(d.class_id, [0, 1])
    assert result.input_shape == (320, 320)
    assert set(result.timings_ms) == {"preprocess", "engine", "decode"} and all(v >= 0 for v in result.timings_ms.values())


def _end2end_detections(tmp_path: Path, nms: NmsConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    path = constant_model(tmp_path / "end2end.onnx", end2end_value())
    spec = spec_for(path, "end2end")
    spec = DetectorSpec(spec.model, spec.classes, spec.score_thresholds, nms)
    with open_engine(spec, EngineOptions(intra_op_threads=1)) as engine:
        (result,) = engine.detect([ImageInput(np.zeros(FRAME, np.uint8), "Mono8")])
    d = result.detections
    return d.xyxy, d.confidence, d.class_id


def test_end2end_output_is_not_put_through_nms_again(tmp_path: Path) -> None:
    """The graph's own detections stand: the overlapping class-0 pair (IoU 0.88) both count."""
    xyxy, confidence, class_id = _end2end_detections(tmp_path, NmsConfig(iou=0.5))
    np.testing.assert_allclose(confidence, [0.9, 0.8, 0.7], rtol=1e-6)
    np.testing.assert_array_equal(class_id, [0, 0, 1])
    np.testing.assert_allclose(xyxy[0], BOX_FRAME, atol=1e-4)


def test_end2end_nms_again_when_the_recipe_asks(tmp_path: Path) -> None:
    xyxy, confidence, class_id = _end2end_detections(tmp_path, NmsConfig(iou=0.5, rerun_on_end2end=True))
    np.testing.assert_allclose(xyxy, [BOX_FRAME, BOX_FRAME], atol=1e-4)
    np.testing.assert_allclose(confidence, [0.9, 0.7], rtol=1e-6)
    np.testing.assert_array_equal(class_id, [0, 1])


def test_end2end_without_nms_still_capped_best_first(tmp_path: Path) -> None:
    _, confidence, class_id = _end2end_detections(tmp_path, NmsConfig(iou=0.5, max_detections=2))
    np.testing.assert_allclose(confidence, [0.9, 0.8], rtol=1e-6)
    np.testing.assert_array_equal(class_id, [0, 0])


def test_batch_and_mixed_shapes(tmp_path: Path) -> None:
    path = constant_model(tmp_path / "m.onnx", yolov8_value())
    with open_engine(spec_for(path), EngineOptions(intra_op_threads=1, max_batch=2)) as engine:
        small = ImageInput(np.zeros(FRAME, np.uint8), "Mono8")
        big = ImageInput(np.zeros((640, 640, 3), np.uint8), "RGB8")  # scale 0.5 → box doubles
        results = engine.detect([small, big, small, small])
        assert engine.detect([]) == []
    assert len(results) == 4
    with pytest.raises(RuntimeError, match="closed"):
        engine.detect([small])
    for i in (0, 2, 3):
        np.testing.assert_allclose(results[i].detections.xyxy[0], BOX_FRAME, atol=1e-4)
    np.testing.assert_allclose(results[1].detections.xyxy[0], [32, 192, 96, 256], atol=1e-4)


RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)
BAYER_AT = {"BayerRG8": "RGGB", "BayerGB8": "GBRG", "BayerGR8": "GRBG", "BayerBG8": "BGGR"}


def frame_of(fmt: str, rgb: tuple[int, int, int], h: int = 320, w: int = 320) -> np.ndarray:
    if fmt == "RGB8":
        return np.tile(np.array(rgb, np.uint8), (h, w, 1))
    if fmt == "BGR8":
        return np.tile(np.array(rgb[::-1], np.uint8), (h, w, 1))
    if fmt == "RGBa8":
        return np.tile(np.array((*rgb, 255), np.uint8), (h, w, 1))
    pattern = BAYER_AT[fmt]
    out = np.zeros((h, w), np.uint8)
    for (dy, dx), letter in zip(((0, 0), (0, 1), (1, 0), (1, 1)), pattern, strict=True):
        out[dy::2, dx::2] = rgb["RGB".index(letter)]
    return out


@pytest.mark.parametrize("fmt", ["RGB8", "BGR8", "RGBa8", *BAYER_AT])
@pytest.mark.parametrize(("rgb", "cls"), [(RED, 0), (GREEN, 1), (BLUE, 2)])
def test_the_network_sees_rgb(tmp_path: Path, fmt: str, rgb: tuple[int, int, int], cls: int) -> None:
    box = xyxy_to_cxcywh(BOX_IN)
    path = colour_model(tmp_path / "colour.onnx", (box[0], box[1], box[2], box[3]))
    with open_engine(spec_for(path, classes=("r", "g", "b")), EngineOptions(intra_op_threads=1)) as engine:
        (result,) = engine.detect([ImageInput(frame_of(fmt, rgb), fmt)])  # 320x320: no padding
    assert result.detections.class_id.tolist() == [cls]
    assert result.detections.confidence[0] > 0.95


def test_mono_frame_replicated_to_three_channels(tmp_path: Path) -> None:
    box = xyxy_to_cxcywh(BOX_IN)
    path = colour_model(tmp_path / "colour.onnx", (box[0], box[1], box[2], box[3]))
    with open_engine(spec_for(path, classes=("r", "g", "b")), EngineOptions(intra_op_threads=1)) as engine:
        (result,) = engine.detect([ImageInput(np.full((320, 320), 204, np.uint8), "Mono8")])
        raw = engine.infer_raw(np.full((1, 3, 320, 320), 0.25, np.float32))
    assert result.detections.confidence[0] == pytest.approx(0.8, rel=1e-3)  # all three channels at 204/255
    assert raw[0].shape == (1, 7, 1) and raw[0][0, 4:, 0] == pytest.approx([0.25] * 3)


def test_one_channel_model(tmp_path: Path) -> None:
    value = yolov8_value()[:, :5]  # one class
    path = constant_model(tmp_path / "gray.onnx", value, channels=1)
    spec = spec_for(path, classes=("defect",), channels=1)
    assert check_model(spec) == []
    with open_engine(spec, EngineOptions(intra_op_threads=1)) as engine:
        (result,) = engine.detect([ImageInput(np.zeros((*FRAME, 3), np.uint8), "BGR8")])
    assert result.detections.class_id.tolist() == [0]


# -- load errors: the engine raises, check_model reports the same problem --------------------


def load_error_cases(tmp_path: Path) -> dict[str, tuple[DetectorSpec, str]]:
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"this is not a protobuf \x00\x01\x02")
    wrong_c = constant_model(tmp_path / "wrong_c.onnx", np.zeros((1, 7, 4), np.float32))  # 4 + 3, spec says 2
    dyn = constant_model(tmp_path / "dyn.onnx", np.zeros((1, 7, 4), np.float32), dynamic=True)
    v5 = constant_model(tmp_path / "v5.onnx", np.zeros((1, 4, 9), np.float32))  # 5 + 4, spec says 2
    rank = bad_input_model(tmp_path / "rank.onnx")
    one_ch = constant_model(tmp_path / "one.onnx", np.zeros((1, 6, 4), np.float32), channels=1)
    return {
        "missing": (spec_for(tmp_path / "nope.onnx"), "model file not found"),
        "garbage": (spec_for(garbage), "not a loadable ONNX model"),
        "static classes": (spec_for(wrong_c), "does not fit layout yolov8: need [B, 6, N] (4 + 2 classes)"),
        "dynamic classes": (spec_for(dyn), "actual output 'output' shape [1, 7, 4] does not fit layout yolov8"),
        "yolov5 classes": (spec_for(v5, "yolov5"), "does not fit layout yolov5: need [B, N, 7]"),
        "input rank": (spec_for(rank), "must be 4-D NCHW"),
        "channels": (spec_for(one_ch), "has 1 channels, recipe model.channels is 3"),
    }


@pytest.mark.parametrize("case", ["missing", "garbage", "static classes", "dynamic classes", "yolov5 classes", "input rank", "channels"])
def test_load_errors_name_the_file(tmp_path: Path, case: str) -> None:
    spec, message = load_error_cases(tmp_path)[case]
    with pytest.raises(EngineLoadError) as err:
        open_engine(spec)
    assert str(spec.model.onnx) in str(err.value) and message in str(err.value)
    problems = check_model(spec)
    assert len(problems) == 1 and message in problems[0] and str(spec.model.onnx) in problems[0]


def test_check_model_good(tmp_path: Path) -> None:
    for layout, value in VALUES.items():
        assert check_model(spec_for(constant_model(tmp_path / f"{layout}.onnx", value()), layout)) == []


@pytest.mark.parametrize(
    "names", ["{0: 'scratch', 1: 'dent'}", "['scratch', 'dent']", "not a literal", "{'a': 1}"]
)
def test_metadata_class_names_that_agree_or_cannot_be_read_pass(tmp_path: Path, names: str) -> None:
    path = with_metadata(constant_model(tmp_path / "m.onnx", yolov8_value()), {"names": names})
    assert check_model(spec_for(path)) == []


@pytest.mark.parametrize("classes", [("dent", "scratch"), ("scratch", "dents")])
def test_metadata_class_names_mismatch_refused_by_validate_and_load(tmp_path: Path, classes: tuple[str, ...]) -> None:
    path = with_metadata(constant_model(tmp_path / "m.onnx", yolov8_value()), {"names": "{0: 'scratch', 1: 'dent'}"})
    spec = spec_for(path, classes=classes)
    message = (
        f"{path}: the model's class names (ONNX metadata 'names') are ['scratch', 'dent'], "
        f"the recipe's classes are {list(classes)}; list the recipe's classes exactly as the model's, in the same order"
    )
    assert check_model(spec) == [message]
    with pytest.raises(EngineLoadError) as err:
        open_engine(spec, EngineOptions(intra_op_threads=1))
    assert str(err.value) == message


@pytest.mark.parametrize("precision", ["fp16"])
def test_reduced_precision_refused_on_the_cpu_engine(tmp_path: Path, precision: str) -> None:
    path = constant_model(tmp_path / "m.onnx", yolov8_value())
    with pytest.raises(EngineLoadError, match=f"model.precision {precision} is not available on the ONNX Runtime CPU engine"):
        open_engine(spec_for(path, precision=precision), EngineOptions(intra_op_threads=1))
    open_engine(spec_for(path, precision="fp32"), EngineOptions(intra_op_threads=1)).close()


def test_check_model_thresholds_mismatch(tmp_path: Path) -> None:
    path = constant_model(tmp_path / "m.onnx", yolov8_value())
    spec = DetectorSpec(ModelConfig(onnx=path, input=PROFILE), classes=("a", "b"), score_thresholds=(0.5,))
    assert check_model(spec) == [f"{path}: 1 score thresholds for 2 classes"]


def test_static_input_size_outside_profile(tmp_path: Path) -> None:
    path = constant_model(tmp_path / "m.onnx", yolov8_value(), hw=(640, 640))
    problems = check_model(spec_for(path))  # profile is fixed at 320x320
    assert problems == [
        f"{path}: input height is fixed at 640, outside the recipe's input profile [320, 320]",
        f"{path}: input width is fixed at 640, outside the recipe's input profile [320, 320]",
    ]
    with pytest.raises(EngineLoadError, match="fixed at 640"):
        open_engine(spec_for(path))


def test_static_input_size_and_batch_are_honoured(tmp_path: Path) -> None:
    """A fixed 320x320, batch-1 model inside a wide profile: letterbox to 320x320, one run per image."""
    path = constant_model(tmp_path / "m.onnx", yolov8_value(), batch=1, hw=(320, 320))
    spec = spec_for(path, input=InputProfile(min=(256, 256), opt=(320, 320), max=(1024, 1280)))
    assert check_model(spec) == []
    with open_engine(spec, EngineOptions(intra_op_threads=1, max_batch=4)) as engine:
        results = engine.detect([ImageInput(np.zeros(FRAME, np.uint8), "Mono8")] * 3)
    assert [r.input_shape for r in results] == [(320, 320)] * 3
    for r in results:
        np.testing.assert_allclose(r.detections.xyxy, [BOX_FRAME, BOX_FRAME], atol=1e-4)


def test_engine_shared_by_threads(tmp_path: Path) -> None:
    """Two camera threads on one engine: per-thread buffers, each gets its own frame's answer."""
    import threading

    box = xyxy_to_cxcywh(BOX_IN)
    path = colour_model(tmp_path / "colour.onnx", (box[0], box[1], box[2], box[3]))
    errors: list[str] = []
    with open_engine(spec_for(path, classes=("r", "g", "b")), EngineOptions(intra_op_threads=1)) as engine:

        def worker(rgb: tuple[int, int, int], cls: int) -> None:
            image = ImageInput(frame_of("RGB8", rgb), "RGB8")
            for _ in range(20):
                (result,) = engine.detect([image])
                if result.detections.class_id.tolist() != [cls]:
                    errors.append(f"{rgb}: {result.detections.class_id.tolist()}")

        threads = [threading.Thread(target=worker, args=args) for args in ((RED, 0), (BLUE, 2))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
    assert errors == []


DEMO_MODEL = Path(__file__).resolve().parents[2] / "recipes" / "demo" / "demo-parts.onnx"


def test_idle_intra_op_workers_spin_only_when_asked() -> None:
    """``cpu_spin: false``: between parts ORT's worker sleeps instead of holding a core (with
    spinning, the control case, it burns one for the whole idle time: a core the camera, HMI
    and OPC UA threads of a 2-core station wait for).

    Compared with each other, not with wall-clock numbers: on a busy machine a spinning worker
    gets less of a core, but still far more CPU time than a sleeping one (which gets none)."""
    import resource

    def cpu_ms() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return (usage.ru_utime + usage.ru_stime) * 1000

    spec = DetectorSpec(
        model=ModelConfig(onnx=DEMO_MODEL, input=InputProfile(min=(256, 320), opt=(256, 320), max=(256, 320))),
        classes=("scratch", "dent", "missing_cap"), score_thresholds=(0.5, 0.5, 0.5), nms=NmsConfig(),
    )  # fmt: skip

    def idle_cpu_ms(spin: bool) -> list[float]:
        with OnnxRuntimeEngine(spec, EngineOptions(intra_op_threads=2, cpu_spin=spin)) as engine:
            image = ImageInput(np.full((256, 320), 90, np.uint8), "Mono8")
            idle = []
            for _ in range(5):
                engine.detect([image])
                before = cpu_ms()
                time.sleep(0.1)
                idle.append(cpu_ms() - before)
        return idle

    sleeping, spinning = idle_cpu_ms(False), idle_cpu_ms(True)
    assert sum(sleeping) < 15.0, sleeping  # CPU time, which load can only lower: no worker ran
    assert sum(spinning) > 3 * sum(sleeping) + 10.0, (spinning, sleeping)  # the control: a worker spun
