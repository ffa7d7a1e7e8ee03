"""INT8 for the ORT CPU engine: the accuracy gate, the cache, and the engine's choice of model."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from inference import DetectorSpec, EngineOptions, ModelConfig
from inference.detections import Detections
from inference.engine import DetectionResult, Engine, EngineLoadError, ImageInput, open_engine
from inference.quantize import (
    GateReport,
    LabelledImage,
    QuantizationSettings,
    accuracy_gate,
    decode_tail,
    int8_model_path,
    quantize_model,
    write_gate,
)

DEMO = Path(__file__).resolve().parents[2] / "recipes" / "demo" / "demo-parts.onnx"


class PixelEngine(Engine):
    """Detects class 0 on a frame whose first pixel is 255, except on the frames it is told to miss."""

    backend = "pixel"

    def __init__(self, miss: set[int] = frozenset(), extra: set[int] = frozenset()) -> None:  # type: ignore[assignment]
        super().__init__(DetectorSpec(ModelConfig(onnx=Path("unused.onnx")), ("scratch",), (0.5,)), EngineOptions())
        self.miss, self.extra = miss, extra

    def detect(self, images: Sequence[ImageInput]) -> list[DetectionResult]:
        out = []
        for image in images:
            part = int(image.data.flat[1])  # the part's number (mod 256) in the second pixel
            hit = (int(image.data.flat[0]) == 255 and part not in self.miss) or part in self.extra
            det = Detections(np.array([[1, 1, 2, 2]], np.float32), np.array([0.9], np.float32), np.array([0], np.int32))
            out.append(DetectionResult(det if hit else Detections.empty()))
        return out

    def infer_raw(self, tensor: np.ndarray) -> list[np.ndarray]:
        return [tensor]


def _parts(n: int) -> list[LabelledImage]:
    parts = []
    for i in range(n):
        frame = np.zeros((4, 4), np.uint8)
        frame.flat[0] = 255 if i % 2 else 0  # every other part defective, and detected by fp32
        frame.flat[1] = i % 256
        parts.append(LabelledImage(ImageInput(frame, "Mono8"), defective=bool(i % 2)))
    return parts


def test_the_gate_passes_a_model_that_decides_like_fp32() -> None:
    report = accuracy_gate(PixelEngine(), PixelEngine(), _parts(200))
    assert report.passed and report.agreement == 1.0 and report.reasons == []
    assert report.int8 == report.fp32 == {"recall": 1.0, "false_reject_rate": 0.0}


def test_the_gate_refuses_below_99_5_percent_agreement_with_the_figures() -> None:
    # parts 0, 2, 4: good parts the int8 model rejects (3 of 200: 98.5 %)
    report = accuracy_gate(PixelEngine(), PixelEngine(extra={0, 2, 4}), _parts(200))
    assert not report.passed
    assert report.disagreements == 3 and report.agreement == pytest.approx(0.985)
    assert any("98.50 %" in reason for reason in report.reasons)
    assert "false reject rate 0.0300 against fp32 0.0000" in report.summary()


def test_the_gate_refuses_a_lost_defect_even_at_high_agreement() -> None:
    """One missed defect in 250 parts is 99.6 % agreement, and still a lower recall."""
    report = accuracy_gate(PixelEngine(), PixelEngine(miss={7}), _parts(250))
    assert report.agreement > 0.995 and not report.passed
    assert report.reasons == ["recall 0.9920 against fp32 1.0000"]


def test_the_cache_key_follows_the_model_bytes_and_every_setting(tmp_path: Path) -> None:
    a, b = tmp_path / "a.onnx", tmp_path / "b.onnx"
    a.write_bytes(b"model one")
    b.write_bytes(b"model two")
    cache = tmp_path / "engines"
    path_a = int8_model_path(ModelConfig(onnx=a), cache)
    assert path_a.parent == cache and path_a.name.startswith("a-int8-")
    assert int8_model_path(ModelConfig(onnx=a), cache) == path_a
    assert int8_model_path(ModelConfig(onnx=b), cache).name[2:] != path_a.name[2:]
    other = QuantizationSettings(per_channel=False)
    assert int8_model_path(ModelConfig(onnx=a), cache, other) != path_a


def test_an_int8_recipe_without_a_built_model_is_refused_saying_what_to_run(tmp_path: Path) -> None:
    spec = DetectorSpec(ModelConfig(onnx=DEMO, precision="int8"), ("scratch", "dent", "missing_cap"), (0.5,) * 3)
    with pytest.raises(EngineLoadError, match="run `linecheck build` first"):
        open_engine(spec, EngineOptions(engine_cache_dir=tmp_path))


def test_an_int8_model_refused_by_its_gate_is_never_run_and_the_figures_are_given(tmp_path: Path) -> None:
    spec = DetectorSpec(ModelConfig(onnx=DEMO, precision="int8"), ("scratch", "dent", "missing_cap"), (0.5,) * 3)
    report = GateReport(1000, 0.941, 59, reasons=["verdict agreement 94.10 % < 99.5 %"])
    write_gate(int8_model_path(spec.model, tmp_path), report)
    with pytest.raises(EngineLoadError, match=r"refused by its accuracy gate \(verdict agreement 94.10 %"):
        open_engine(spec, EngineOptions(engine_cache_dir=tmp_path))


def test_the_engine_runs_the_cached_int8_model_for_precision_int8(tmp_path: Path) -> None:
    from camera.synthetic_parts import generate_part

    rng = np.random.default_rng(5)
    frames = [ImageInput(generate_part(rng, 1280, 1024, "Mono8", 0.5)[0], "Mono8") for _ in range(4)]
    model = ModelConfig(onnx=DEMO, precision="int8", input={"min": (320, 320), "opt": (512, 640), "max": (512, 640)})
    cached = int8_model_path(model, tmp_path)
    assert quantize_model(model, frames, cached) == 4  # as `linecheck build` leaves a model that passed

    import onnx

    ops = {node.op_type for node in onnx.load(str(cached)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    spec = DetectorSpec(model, ("scratch", "dent", "missing_cap"), (0.5,) * 3)
    engine = open_engine(spec, EngineOptions(engine_cache_dir=tmp_path))
    try:
        assert engine.model_path == cached  # type: ignore[attr-defined]
        result = engine.detect([frames[0]])[0]
        assert result.input_shape == (512, 640)
        assert "INT8" in (engine.mono_fold_error or "")  # type: ignore[attr-defined]
    finally:
        engine.close()


def test_the_decode_after_the_last_convolution_stays_fp32() -> None:
    from onnx import helper

    graph = helper.make_graph(
        [
            helper.make_node("Relu", ["x"], ["r"], name="pre"),
            helper.make_node("Conv", ["r", "w"], ["c"], name="conv"),
            helper.make_node("Sigmoid", ["c"], ["s"], name="score"),
            helper.make_node("Concat", ["c", "s"], ["y"], name="concat", axis=1),
        ],
        "g", [], [],
    )  # fmt: skip
    assert decode_tail(graph) == ["score", "concat"]


def test_a_badly_calibrated_model_is_refused_and_only_its_figures_are_kept(tmp_path: Path) -> None:
    """Calibrated on black frames, every activation range is ~0: the parts' defects saturate
    and the gate must see it on real inference, keep no model, and the engine must refuse."""
    from camera.synthetic_parts import generate_part
    from inference.quantize import build_int8

    rng = np.random.default_rng(9)
    parts = [generate_part(rng, 1280, 1024, "Mono8", 0.5) for _ in range(12)]
    held_out = [LabelledImage(ImageInput(image, "Mono8"), truth.defective) for image, truth in parts]
    black = [ImageInput(np.zeros((1024, 1280), np.uint8), "Mono8")] * 2
    model = ModelConfig(onnx=DEMO, precision="int8", input={"min": (320, 320), "opt": (512, 640), "max": (512, 640)})
    spec = DetectorSpec(model, ("scratch", "dent", "missing_cap"), (0.5,) * 3)
    path, report = build_int8(spec, tmp_path, black, held_out, "black frames")
    assert path is None and report is not None and not report.passed
    assert report.fp32["recall"] == 1.0 and report.agreement < 0.995
    assert [p.name for p in tmp_path.iterdir()] == [int8_model_path(model, tmp_path).with_suffix(".gate.json").name]
    with pytest.raises(EngineLoadError, match="refused by its accuracy gate"):
        open_engine(spec, EngineOptions(engine_cache_dir=tmp_path))
