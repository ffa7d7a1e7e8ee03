"""ONNX Runtime on the CPU: the default engine (``backend=onnxruntime, device=cpu``).

Per batch: pixels (full-resolution part only) → letterbox into a cached canvas → NCHW float32
into a cached batch tensor → ``session.run`` → decode → NMS → boxes back to frame pixels.

Buffers (canvas, tensor) are cached per frame shape / batch size and per thread (an engine
may be shared by the station threads of several cameras; ``InferenceSession.run`` is
thread-safe, our buffers are not). The plain ``run`` is used, not IOBinding: on the CPU
provider both hand ORT the numpy memory without a copy; binding a preallocated output saved
~5 us per run at 512x640 (0.077 vs 0.086 ms for a trivial graph), noise next to the network,
while adding per-shape bookkeeping. NMS follows ``inference.postprocess``: every layout but
end2end (whose graph did it already) unless the recipe's ``nms.rerun_on_end2end`` asks.

A Mono8 frame on a 3-channel model runs through a second session whose first convolution is
folded to one input channel (``inference.mono_fold``, ``EngineOptions.mono_fold``): the same
detections from a third of the tensor bytes.

``precision: int8`` runs the statically quantized copy that ``linecheck build`` made and gated
(``inference.quantize``); without one the engine refuses to load, saying why, rather than
running a model nobody checked. The INT8 model is not mono-folded: its first convolution's
weights are quantized per channel, and summing them would change their scales.

``timings_ms`` are per batch run (every image of one run reports the same numbers).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from inference.config import EngineOptions
from inference.decode import Candidates, decode
from inference.detections import Detections
from inference.engine import (
    DetectionResult,
    DetectorSpec,
    Engine,
    EngineLoadError,
    ImageInput,
    detect_in_batches,
)
from inference.letterbox import (
    LetterboxCanvas,
    LetterboxGeometry,
    compute_geometry,
    to_tensor,
)
from inference.model_check import ModelInfo, inspect_session, open_session, probe_outputs
from inference.pixels import prepare
from inference.postprocess import finish_detections


class OnnxRuntimeEngine(Engine):
    backend = "onnxruntime"

    def __init__(self, spec: DetectorSpec, options: EngineOptions) -> None:
        super().__init__(spec, options)
        path = spec.model.onnx
        if spec.model.precision == "fp16":
            raise EngineLoadError(cpu_precision_problem(spec))
        if not path.is_file():
            raise EngineLoadError(f"{path}: model file not found")
        if spec.model.precision == "int8":
            from inference.quantize import Int8Unavailable, cached_int8_model

            try:
                path = cached_int8_model(spec.model, options.engine_cache_dir)
            except Int8Unavailable as exc:
                raise EngineLoadError(str(exc)) from None
        self.model_path = path  # what runs: the recipe's model or its gated INT8 copy
        try:
            self._session: Any = open_session(path, options.intra_op_threads, options.cpu_spin)
        except Exception as exc:
            raise EngineLoadError(f"{path}: not a loadable ONNX model: {_first_line(exc)}") from exc
        info, problems = inspect_session(self._session, spec)
        if info is None or problems:
            raise EngineLoadError("; ".join(problems) or f"{path}: unusable model")
        problems = probe_outputs(self._session, info, spec)
        if problems:
            raise EngineLoadError("; ".join(problems))
        self._info: ModelInfo = info
        self._profile = info.profile(spec.model.input)
        self._thresholds = np.asarray(spec.score_thresholds, np.float32)
        self._floor = float(self._thresholds.min()) if len(self._thresholds) else None
        self._local = threading.local()
        # Mono8 frames on a 3-channel model: the folded one-channel session, made on the first
        # such frame (the recipe's warm-up); None until then or when it does not apply
        self._mono: Any = None
        self._mono_tried = False
        self.mono_fold_error: str | None = None
        self._mono_lock = threading.Lock()

    # -- Engine interface -------------------------------------------------------------------

    def detect(self, images: Sequence[ImageInput]) -> list[DetectionResult]:
        """Images of one shape and format are stacked into one run (up to the batch limit)."""
        if len(images) == 1:  # the unbatched lane's call: straight through (every step costs on cold caches)
            return self._detect_batch(images)
        return detect_in_batches(images, self._info.static_batch or self.options.max_batch, self._detect_batch)

    def infer_raw(self, tensor: np.ndarray) -> list[np.ndarray]:
        if self._session is None:
            raise RuntimeError(f"engine for {self.spec.model.onnx} is closed")
        if tensor.ndim != 4:
            raise ValueError(f"infer_raw needs an NCHW tensor, got shape {tensor.shape}")
        feed = tensor if tensor.dtype == self._info.input_dtype else tensor.astype(self._info.input_dtype)
        return [np.asarray(o) for o in self._session.run(None, {self._info.input_name: feed})]

    def close(self) -> None:
        self._session = None
        self._mono = None
        self._local = threading.local()

    # -- internals --------------------------------------------------------------------------

    def _detect_batch(self, images: Sequence[ImageInput]) -> list[DetectionResult]:
        if self._session is None:
            raise RuntimeError(f"engine for {self.spec.model.onnx} is closed")
        model = self.spec.model
        t0 = time.perf_counter()
        frame_h, frame_w = images[0].data.shape[:2]
        geometry = self._geometry(frame_h, frame_w)
        batch = self._info.static_batch or len(images)
        prepared = [prepare(image.data, image.pixel_format, model.channels) for image in images]
        session, channels = self._session, model.channels
        normalize: Literal["unit", "imagenet", "pixels"] = model.normalize
        if prepared[0].order == "L" and channels == 3:  # one pixel format per batch (see detect)
            mono = self._mono_session()
            if mono is not None:  # it scales by 1/255 in its first kernel: pixels go in as they are
                session, channels, normalize = mono, 1, "pixels"
        tensor = self._tensor(geometry, batch, channels)
        for slot, image in enumerate(prepared):
            canvas = self._canvas(geometry, image.image)
            to_tensor(
                canvas.fill(image.image),
                order=image.order,
                channels=channels,
                normalize=normalize,
                out=tensor[slot : slot + 1],
            )
        feed = tensor if self._info.input_dtype is np.float32 else tensor.astype(self._info.input_dtype)
        t1 = time.perf_counter()
        (output,) = session.run([self._info.output_name], {self._info.input_name: feed})
        t2 = time.perf_counter()
        candidates = decode(model.layout, output, self._thresholds, self._floor)[: len(images)]
        detections = [self._finish(c, geometry) for c in candidates]
        t3 = time.perf_counter()
        timings = {"preprocess": (t1 - t0) * 1e3, "engine": (t2 - t1) * 1e3, "decode": (t3 - t2) * 1e3}
        shape = (geometry.input_h, geometry.input_w)
        return [DetectionResult(d, dict(timings), shape) for d in detections]

    def _finish(self, candidates: Candidates, geometry: LetterboxGeometry) -> Detections:
        return finish_detections(candidates, geometry, self.spec.nms, self.spec.model.layout)

    def _cache(self) -> dict[Any, Any]:
        cache: dict[Any, Any] | None = getattr(self._local, "cache", None)
        if cache is None:
            cache = self._local.cache = {}
        return cache

    def _geometry(self, frame_h: int, frame_w: int) -> LetterboxGeometry:
        cache = self._cache()
        key = ("geometry", frame_h, frame_w)
        if key not in cache:
            cache[key] = compute_geometry(frame_h, frame_w, self._profile, self.spec.model.stride)
        geometry: LetterboxGeometry = cache[key]
        return geometry

    def _mono_session(self) -> Any:
        """The folded one-channel session, checked once against the model on a gray input."""
        if self._mono_tried:
            return self._mono
        with self._mono_lock:
            if not self._mono_tried:
                self._mono, self.mono_fold_error = self._open_mono()
                self._mono_tried = True
        return self._mono

    def _open_mono(self) -> tuple[Any, str | None]:
        model = self.spec.model
        if not self.options.mono_fold:
            return None, "engine.mono_fold is off"
        if self.model_path != model.onnx:
            return None, "the INT8 model is not folded (per-channel quantized weights)"
        if model.normalize != "unit":
            return None, f"normalize {model.normalize!r} differs per channel"
        from inference.mono_fold import mono_session_bytes

        folded, why = mono_session_bytes(str(model.onnx), scale=1.0 / 255.0)
        if folded is None:
            return None, why
        session = open_session(folded, self.options.intra_op_threads, self.options.cpu_spin)
        h, w = self._profile.opt
        pixels = np.random.default_rng(0).integers(0, 256, (1, 1, h, w)).astype(np.float32)
        three = np.repeat(pixels / np.float32(255.0), 3, axis=1)
        cast = self._info.input_dtype
        (want,) = self._session.run([self._info.output_name], {self._info.input_name: three.astype(cast)})
        (got,) = session.run([self._info.output_name], {self._info.input_name: pixels.astype(cast)})
        scale = float(np.abs(want).max()) or 1.0
        if got.shape != want.shape or not np.allclose(got, want, rtol=1e-3, atol=1e-3 * scale):
            return None, "the folded model disagreed with the model on a gray input"
        return session, None

    def _tensor(self, geometry: LetterboxGeometry, batch: int, channels: int) -> np.ndarray:
        cache = self._cache()
        key = ("tensor", geometry.input_h, geometry.input_w, batch, channels)
        if key not in cache:
            cache[key] = np.zeros((batch, channels, geometry.input_h, geometry.input_w), np.float32)
        tensor: np.ndarray = cache[key]
        return tensor

    def _canvas(self, geometry: LetterboxGeometry, image: np.ndarray) -> LetterboxCanvas:
        cache = self._cache()
        channels = image.shape[2] if image.ndim == 3 else 1
        key = ("canvas", geometry, channels)
        if key not in cache:
            cache[key] = LetterboxCanvas(geometry, channels)
        canvas: LetterboxCanvas = cache[key]
        return canvas


def cpu_precision_problem(spec: DetectorSpec) -> str:
    """Why ``precision: fp16`` cannot run here: this engine runs the graph in the types it was
    exported with and converts nothing, so accepting it would silently serve fp32 while the recipe
    says otherwise. (``int8`` runs the gated INT8 copy that ``linecheck build`` makes.)"""
    return (
        f"{spec.model.onnx}: model.precision {spec.model.precision} is not available on the ONNX Runtime "
        "CPU engine, which runs the model in the precision it was exported with; set model.precision: fp32 "
        "(or int8 after `linecheck build`), or run the recipe on the TensorRT engine "
        "(engine.backend: tensorrt, engine.device: cuda)"
    )


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else type(exc).__name__
