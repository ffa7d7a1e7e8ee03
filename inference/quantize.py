"""INT8 for the ONNX Runtime CPU engine: static QDQ quantization and its accuracy gate.

Why static QDQ with per-channel weights: ONNX Runtime's CPU provider fuses QDQ pairs around
convolutions into its integer kernels (QLinearConv / MatMulInteger), so the network runs in
int8 while the file stays a plain ONNX that any ORT reads; per-channel weight scales keep the
accuracy of convolutions whose filters differ widely in range (ORT quantization docs:
"per-channel ... is recommended for CNNs"). Activations are uint8 with their own zero point
(the CPU provider's fast path: U8S8) and weights symmetric int8 in 7 bits (``reduce_range``),
so a model built on one CPU is as accurate on one without VNNI.

The detection head's decode (after the last convolution: box arithmetic, sigmoid, the concat of
boxes in pixels with scores in [0, 1]) stays fp32: one uint8 scale over 0..640 pixels and
0..1 scores rounds every score to zero (the demo model lost all recall that way), and it is a
sliver of the work.

Why a gate: calibration is statistics on a handful of images; a model can come out of it
fine on average and wrong on the parts that matter. The quantized model is only written
under its cache name when it decides like the fp32 model on held-out parts (and, where the
parts carry ground truth, with no worse recall or false-reject rate); otherwise it is refused
with the figures, and only the figures are kept (``*.gate.json``).

Cache: ``<stem>-int8-<key>.onnx`` beside TensorRT engines, the key made of the model's sha256
and every quantization setting (``QuantizationSettings``), so a changed model or setting makes
a new file and an old one is never taken for it. Calibration images are not part of the key:
what calibrated a model is recorded in its gate file.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from inference.config import ModelConfig
from inference.engine import DetectorSpec, Engine, ImageInput
from inference.letterbox import LetterboxCanvas, compute_geometry, to_tensor
from inference.pixels import prepare
from inference.precision import sha256_file

AGREEMENT_MIN = 0.995  # issue 27: verdicts like the fp32 model's on >= 99.5 % of held-out parts


@dataclass(frozen=True)
class QuantizationSettings:
    """Everything that changes the quantized model besides the source model (the cache key)."""

    quant_format: str = "QDQ"
    per_channel: bool = True
    activation_type: str = "QUInt8"
    weight_type: str = "QInt8"
    calibrate_method: str = "MinMax"
    # weights in 7 bits: x86 CPUs without VNNI (AVX2) add u8*s8 pairs in int16 and saturate;
    # the demo model kept 94.1 % of its verdicts without it, all of them with it
    reduce_range: bool = True
    version: int = 3  # of this module's recipe (node exclusions, extra options)

    def key(self, model_sha256: str) -> str:
        text = json.dumps({"model": model_sha256, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


class Int8Unavailable(RuntimeError):
    """No gated INT8 model in the cache for this model and these settings."""


@dataclass(frozen=True)
class LabelledImage:
    """A held-out part: the frame and, where known, whether it is truly defective."""

    image: ImageInput
    defective: bool | None = None


@dataclass
class GateReport:
    """Figures of the accuracy gate (written beside the model as ``*.gate.json``)."""

    parts: int
    agreement: float
    disagreements: int
    fp32: dict[str, float | None] = field(default_factory=dict)  # recall, false_reject_rate
    int8: dict[str, float | None] = field(default_factory=dict)
    passed: bool = False
    reasons: list[str] = field(default_factory=list)
    calibration: str = ""
    calibration_images: int = 0
    settings: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        def rates(r: dict[str, float | None]) -> str:
            if r.get("recall") is None:
                return "no ground truth"
            return f"recall {r['recall']:.4f}, false rejects {r['false_reject_rate']:.4f}"

        verdict = "passed" if self.passed else "REFUSED: " + "; ".join(self.reasons)
        return (f"INT8 gate {verdict} (verdict agreement {self.agreement * 100:.2f} % on {self.parts} held-out "
                f"parts, {self.disagreements} differ; fp32 {rates(self.fp32)}; int8 {rates(self.int8)})")  # fmt: skip


def int8_model_path(model: ModelConfig, cache_dir: Path, settings: QuantizationSettings | None = None) -> Path:
    settings = settings or QuantizationSettings()
    key = settings.key(sha256_file(Path(model.onnx)))
    return Path(cache_dir) / f"{Path(model.onnx).stem}-int8-{key}.onnx"


def gate_path(model_path: Path) -> Path:
    return model_path.with_suffix(".gate.json")


def cached_int8_model(model: ModelConfig, cache_dir: Path) -> Path:
    """The gated INT8 model for ``model``, or ``Int8Unavailable`` saying why there is none."""
    path = int8_model_path(model, cache_dir)
    if path.is_file():
        return path
    gate = gate_path(path)
    if gate.is_file():
        try:
            figures = json.loads(gate.read_text())
            reasons = "; ".join(figures.get("reasons", [])) or "see " + str(gate)
        except (OSError, ValueError):
            reasons = f"unreadable {gate}"
        raise Int8Unavailable(f"{model.onnx}: the INT8 model was refused by its accuracy gate ({reasons}); "
                              "use precision: fp32 or recalibrate (model.calibration) and run `linecheck build --force`")  # fmt: skip
    raise Int8Unavailable(f"{model.onnx}: precision int8 needs the quantized model {path.name} in {cache_dir}; "
                          "run `linecheck build` first (it calibrates, checks accuracy and caches it)")  # fmt: skip


def model_tensor(image: ImageInput, model: ModelConfig) -> np.ndarray:
    """A frame → the fp32 NCHW tensor the CPU engine feeds this model (letterbox, scaling)."""
    prepared = prepare(image.data, image.pixel_format, model.channels)
    h, w = prepared.image.shape[:2]
    geometry = compute_geometry(h, w, model.input, model.stride)
    canvas = LetterboxCanvas(geometry, prepared.image.shape[2] if prepared.image.ndim == 3 else 1)
    tensor: np.ndarray = to_tensor(canvas.fill(prepared.image), order=prepared.order, channels=model.channels,
                                   normalize=model.normalize).copy()  # fmt: skip
    return tensor


def quantize_model(model: ModelConfig, calibration: Iterable[ImageInput], out: Path,
                   settings: QuantizationSettings | None = None) -> int:  # fmt: skip
    """Static QDQ quantization of ``model`` calibrated on ``calibration``; written atomically
    to ``out``. Returns how many calibration images were used."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    settings = settings or QuantizationSettings()
    tensors = [model_tensor(image, model) for image in calibration]
    if not tensors:
        raise ValueError("no calibration images")
    input_name = onnx.load(str(model.onnx), load_external_data=False).graph.input[0].name

    class _Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._it = iter(tensors)

        def get_next(self) -> dict[str, np.ndarray] | None:
            t = next(self._it, None)
            return None if t is None else {input_name: t}

    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".quantize-") as tmp:
        # ORT's recommended pre-processing (shape inference + graph optimization) so that the
        # quantizer sees fused Conv+activation nodes, as the CPU provider will run them
        pre = Path(tmp) / "pre.onnx"
        try:
            quant_pre_process(str(model.onnx), str(pre), skip_symbolic_shape=True)
        except Exception:  # a model the pre-processor cannot handle is quantized as it is
            pre = Path(model.onnx)
        staged = Path(tmp) / "int8.onnx"
        tail = decode_tail(onnx.load(str(pre), load_external_data=False).graph)
        quantize_static(str(pre), str(staged), _Reader(),
                        quant_format=getattr(QuantFormat, settings.quant_format),
                        per_channel=settings.per_channel,
                        activation_type=getattr(QuantType, settings.activation_type),
                        weight_type=getattr(QuantType, settings.weight_type),
                        calibrate_method=getattr(CalibrationMethod, settings.calibrate_method),
                        reduce_range=settings.reduce_range, nodes_to_exclude=tail)  # fmt: skip
        os.replace(staged, out)  # atomic: a crash never leaves a half-written model under its name
    return len(tensors)


def decode_tail(graph: Any) -> list[str]:
    """Names of the nodes no convolution depends on (the head's decode), kept fp32."""
    producers = {out: node for node in graph.node for out in node.output}
    feeding: set[int] = set()
    stack = [node for node in graph.node if node.op_type == "Conv"]
    while stack:
        node = stack.pop()
        if id(node) in feeding:
            continue
        feeding.add(id(node))
        stack.extend(producers[name] for name in node.input if name in producers)
    return [node.name for node in graph.node if id(node) not in feeding and node.name]


def part_verdicts(engine: Engine, parts: Sequence[LabelledImage]) -> list[frozenset[int]]:
    """Per part, the classes the engine detects at the recipe's thresholds: two models that
    agree on these agree on any reject rule built from classes."""
    return [frozenset(int(c) for c in engine.detect([part.image])[0].detections.class_id) for part in parts]


def _rates(verdicts: list[frozenset[int]], parts: Sequence[LabelledImage]) -> dict[str, float | None]:
    truth = [(bool(v), p.defective) for v, p in zip(verdicts, parts, strict=True) if p.defective is not None]
    defective = [rejected for rejected, bad in truth if bad]
    good = [rejected for rejected, bad in truth if not bad]
    return {
        "recall": float(np.mean(defective)) if defective else None,
        "false_reject_rate": float(np.mean(good)) if good else None,
    }


def accuracy_gate(fp32: Engine, int8: Engine, parts: Sequence[LabelledImage]) -> GateReport:
    """Verdict agreement of ``int8`` with ``fp32`` on held-out ``parts`` (>= 99.5 %) and, where
    they carry ground truth, recall no lower and false-reject rate no higher than fp32's."""
    want, got = part_verdicts(fp32, parts), part_verdicts(int8, parts)
    differ = sum(a != b for a, b in zip(want, got, strict=True))
    agreement = 1.0 - differ / len(parts) if parts else 0.0
    report = GateReport(len(parts), agreement, differ, _rates(want, parts), _rates(got, parts))
    if not parts:
        report.reasons.append("no held-out parts")
    if agreement < AGREEMENT_MIN:
        report.reasons.append(f"verdict agreement {agreement * 100:.2f} % < {AGREEMENT_MIN * 100:.1f} %")
    for name, worse in (("recall", lambda a, b: a < b), ("false_reject_rate", lambda a, b: a > b)):
        a, b = report.int8[name], report.fp32[name]
        if a is not None and b is not None and worse(a, b):
            report.reasons.append(f"{name.replace('_', ' ')} {a:.4f} against fp32 {b:.4f}")
    report.passed = not report.reasons
    return report


def spec_for(spec: DetectorSpec, onnx_path: Path) -> DetectorSpec:
    """``spec`` running the model at ``onnx_path`` as it is (no precision conversion)."""
    return replace(spec, model=spec.model.model_copy(update={"onnx": onnx_path, "precision": "fp32"}))


def write_gate(model_path: Path, report: GateReport) -> None:
    path = gate_path(model_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(report), indent=2))


def build_int8(spec: DetectorSpec, cache_dir: Path, calibration: Sequence[ImageInput], held_out: Sequence[LabelledImage],
               calibration_source: str, force: bool = False, intra_op_threads: int = 0) -> tuple[Path | None, GateReport | None]:  # fmt: skip
    """Quantize ``spec``'s model and gate it: ``(cached path, report)`` when it passes (report
    None when the cached model was reused), ``(None, report)`` when refused (only the figures
    are kept, so the engine explains the refusal instead of running an unchecked model)."""
    from inference.config import EngineOptions
    from inference.engine import open_engine

    settings = QuantizationSettings()
    target = int8_model_path(spec.model, cache_dir, settings)
    if target.is_file() and not force:
        return target, None
    target.unlink(missing_ok=True)
    candidate = target.with_suffix(".candidate.onnx")
    used = quantize_model(spec.model, calibration, candidate, settings)
    options = EngineOptions(intra_op_threads=intra_op_threads, mono_fold=False)  # the same input tensor both ways
    fp32 = open_engine(spec_for(spec, Path(spec.model.onnx)), options)
    int8 = open_engine(spec_for(spec, candidate), options)
    try:
        report = accuracy_gate(fp32, int8, held_out)
    finally:
        fp32.close()
        int8.close()
    report.calibration, report.calibration_images, report.settings = calibration_source, used, asdict(settings)
    write_gate(target, report)
    if report.passed:
        os.replace(candidate, target)
        return target, report
    candidate.unlink(missing_ok=True)
    return None, report
