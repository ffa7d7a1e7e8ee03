"""The ``Engine`` interface shared by every backend (ONNX Runtime CPU/CUDA, TensorRT).

An engine owns the whole image → detections path so that a GPU backend can keep pixels on
the device from the camera buffer to NMS candidates: ``detect`` takes raw camera buffers
(numpy views of producer memory plus the PFNC pixel format) and returns detections in frame
pixels with per-stage timings. ``infer_raw`` runs the network alone (bench's upper bound).
"""

from __future__ import annotations

import pkgutil
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from inference.config import EngineOptions, ModelConfig, NmsConfig
from inference.detections import Detections


class EngineLoadError(Exception):
    """The model cannot serve this recipe (missing/corrupt file, outputs that do not fit)."""


@dataclass(frozen=True)
class DetectorSpec:
    """Everything an engine needs from a recipe, without knowing what a recipe is."""

    model: ModelConfig
    classes: tuple[str, ...]
    score_thresholds: tuple[float, ...]  # per class id
    nms: NmsConfig = NmsConfig()

    @property
    def min_threshold(self) -> float:
        return min(self.score_thresholds) if self.score_thresholds else 0.0


@dataclass(frozen=True)
class ImageInput:
    data: np.ndarray  # (H, W) or (H, W, C) uint8 view of the camera buffer
    pixel_format: str  # PFNC name


@dataclass(frozen=True)
class DetectionResult:
    detections: Detections
    timings_ms: dict[str, float] = field(default_factory=dict)  # preprocess, upload, engine, decode
    input_shape: tuple[int, int] = (0, 0)  # (H, W) the network saw


class Engine(ABC):
    backend: str = "abstract"

    def __init__(self, spec: DetectorSpec, options: EngineOptions) -> None:
        self.spec = spec
        self.options = options

    @abstractmethod
    def detect(self, images: Sequence[ImageInput]) -> list[DetectionResult]:
        """Preprocess, run and decode a batch of camera images (same shape and format)."""

    @abstractmethod
    def infer_raw(self, tensor: np.ndarray) -> list[np.ndarray]:
        """Run the network on an already preprocessed NCHW float tensor; host arrays out."""

    def try_launch(self, images: Sequence[ImageInput]) -> object | None:
        """Start ``detect`` on ``images`` without waiting for its result, if this engine can
        right now (an idle GPU engine: the work is queued on the device and this returns).

        Why: the camera's thread can start the GPU the moment a frame is ready, and the thread
        that decides the part catches up while the device computes. None means "call
        ``detect``" (a CPU engine, a busy one). A handle reserves the engine until it is passed
        to :meth:`finish`, exactly once, from any thread.
        """
        return None

    def finish(self, launched: object) -> list[DetectionResult]:
        """Wait for a :meth:`try_launch` and return what ``detect`` would have returned."""
        raise TypeError(f"{type(self).__name__} launches nothing: call detect()")

    def warmup(
        self, height: int, width: int, pixel_format: str = "Mono8", iterations: int = 2, batch: int = 1
    ) -> None:
        """Run the shapes production will run, so nothing is built on the first part: a GPU
        engine captures one CUDA graph per batch shape, seconds each (cuDNN search + capture)."""
        channels = 4 if pixel_format == "RGBa8" else 3 if pixel_format in ("RGB8", "BGR8") else 1
        shape = (height, width) if channels == 1 else (height, width, channels)
        image = ImageInput(np.zeros(shape, np.uint8), pixel_format)
        for size in sorted({1, batch}):
            for _ in range(iterations):
                self.detect([image] * size)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Free runtime resources."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def detect_in_batches(
    images: Sequence[ImageInput],
    batch_limit: int,
    detect_batch: Callable[[Sequence[ImageInput]], list[DetectionResult]],
) -> list[DetectionResult]:
    """``detect`` for any mix of images: those of one shape and pixel format are stacked into
    runs of at most ``batch_limit`` (a network runs one input shape per call); results come
    back in the order of ``images``. Every engine's ``detect`` goes through here."""
    results: list[DetectionResult | None] = [None] * len(images)
    groups: dict[tuple[tuple[int, ...], str], list[int]] = {}
    for i, image in enumerate(images):
        groups.setdefault((image.data.shape, image.pixel_format), []).append(i)
    for indices in groups.values():
        for start in range(0, len(indices), batch_limit):
            chunk = indices[start : start + batch_limit]
            for i, result in zip(chunk, detect_batch([images[i] for i in chunk]), strict=True):
                results[i] = result
    return [r for r in results if r is not None]


_BACKENDS: dict[tuple[str, str], str] = {
    ("onnxruntime", "cpu"): "inference.onnxruntime:OnnxRuntimeEngine",
    ("onnxruntime", "cuda"): "inference.gpu.onnxruntime_cuda:OnnxRuntimeCudaEngine",
    ("tensorrt", "cuda"): "inference.tensorrt.engine:TensorRTEngine",
}


def open_engine(spec: DetectorSpec, options: EngineOptions | None = None) -> Engine:
    options = options or EngineOptions()
    key = (options.backend, options.device)
    try:
        target = _BACKENDS[key]
    except KeyError:
        raise EngineLoadError(f"no engine for backend={options.backend} device={options.device}") from None
    cls: type[Engine] = pkgutil.resolve_name(target)
    return cls(spec, options)
