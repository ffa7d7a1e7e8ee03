"""The GPU detection pipeline shared by the ONNX Runtime CUDA and TensorRT engines.

Per batch, all on one stream we own: camera buffer --DMA--> staging --kernel--> engine
input (letterboxed, normalized, fp16/fp32) → network → prefilter kernel → few candidate rows
to the host → exact decode + NMS (``inference.decode``/``inference.nms``) → frame pixels.
A backend supplies only ``_run`` (enqueue the network on our stream, bound to our buffers).

Timings come from CUDA events around each stage (the device's own clock), plus the host
time for decode + NMS.
"""

from __future__ import annotations

import threading
import time
from abc import abstractmethod
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from inference.config import EngineOptions, InputProfile
from inference.decode import Candidates
from inference.detections import Detections
from inference.engine import DetectionResult, DetectorSpec, Engine, ImageInput
from inference.gpu import BufferPool, Device, Event, Stream, check, driver
from inference.gpu_decode import GpuDecoder
from inference.gpu_host import CopyCounters, HostRegistry
from inference.gpu_preprocess import GpuPreprocessor
from inference.letterbox import LetterboxGeometry, compute_geometry
from inference.postprocess import finish_detections


class GpuPipelineEngine(Engine):
    """Base class: subclasses set ``_profile``, ``_half_input``, ``_static_batch`` and ``_run``."""

    backend = "gpu"

    def __init__(self, spec: DetectorSpec, options: EngineOptions) -> None:
        super().__init__(spec, options)
        self.device = Device(options.device_id)
        self.stream = Stream()
        self.pool = BufferPool()
        self.registry = HostRegistry.shared(options.device_id)
        self._events = [Event() for _ in range(4)]
        self._geometries: dict[tuple[int, int], LetterboxGeometry] = {}
        self._preprocessor: GpuPreprocessor | None = None
        self._decoder: GpuDecoder | None = None
        self._profile: InputProfile = spec.model.input
        self._half_input = False
        self._static_batch: int | None = None
        self._lock = threading.RLock()

    # -- backend hooks ------------------------------------------------------------------------

    @abstractmethod
    def _run(
        self, input_ptr: int, batch: int, height: int, width: int
    ) -> tuple[int, tuple[int, int, int], bool]:
        """Enqueue the network on ``self.stream``; return (output ptr, output shape, fp16?)."""

    def _setup(self) -> None:
        """Create the preprocessor/decoder once the backend knows its input dtype."""
        model = self.spec.model
        self._preprocessor = GpuPreprocessor(
            self.device,
            self.stream,
            self.pool,
            self.registry,
            channels=model.channels,
            normalize=model.normalize,
            half=self._half_input,
        )
        self._decoder = GpuDecoder(
            self.device, self.stream, self.pool, model.layout, np.asarray(self.spec.score_thresholds)
        )

    # -- Engine interface ---------------------------------------------------------------------

    @property
    def counters(self) -> CopyCounters:
        assert self._preprocessor is not None  # noqa: S101 - set in __init__ of every backend
        return self._preprocessor.counters

    def register_host_buffers(self, arrays: Iterable[np.ndarray]) -> None:
        """Page-lock a camera pool once so every frame is DMA'd without a host copy."""
        self.device.activate()
        self.registry.register(arrays)

    def detect(self, images: Sequence[ImageInput]) -> list[DetectionResult]:
        """Thread-safe: calls on one engine are serialized (one stream, one set of buffers);
        run one engine per camera for parallel cameras."""
        with self._lock:
            return self._detect(images)

    def _detect(self, images: Sequence[ImageInput]) -> list[DetectionResult]:
        self.device.activate()
        results: list[DetectionResult | None] = [None] * len(images)
        groups: dict[tuple[tuple[int, ...], str], list[int]] = {}
        for i, image in enumerate(images):
            groups.setdefault((image.data.shape, image.pixel_format), []).append(i)
        step = self._static_batch or self.options.max_batch
        for indices in groups.values():
            for start in range(0, len(indices), step):
                chunk = indices[start : start + step]
                for i, result in zip(chunk, self._detect_batch([images[i] for i in chunk]), strict=True):
                    results[i] = result
        return [r for r in results if r is not None]

    def infer_raw(self, tensor: np.ndarray) -> list[np.ndarray]:
        """Host NCHW tensor → host output: upload, run on our buffers, download (bench, tests)."""
        if tensor.ndim != 4:
            raise ValueError(f"infer_raw needs an NCHW tensor, got shape {tensor.shape}")
        with self._lock:
            self.device.activate()
            batch, _, h, w = tensor.shape
            staged = host_view(
                self.pool, "raw:in", np.float16 if self._half_input else np.float32, tensor.shape
            )
            staged[...] = tensor
            dst = self.pool.device(f"input:{batch}x{h}x{w}", staged.nbytes)
            dst.upload(staged, self.stream)
            out_ptr, shape, half = self._run(dst.ptr, batch, h, w)
            out = host_view(self.pool, "raw:out", np.float16 if half else np.float32, shape)
            check(
                driver.cuMemcpyDtoHAsync(out.ctypes.data, out_ptr, out.nbytes, self.stream.handle),
                "cuMemcpyDtoHAsync",
            )
            self.stream.synchronize()
            return [np.array(out, np.float32)]

    def preprocess_only(self, images: Sequence[ImageInput]) -> tuple[int, LetterboxGeometry, int]:
        """Run upload + kernel into the engine input buffer (bench/tests); returns (ptr, geometry, batch)."""
        self.device.activate()
        frame_h, frame_w = images[0].data.shape[:2]
        geometry = self.geometry(frame_h, frame_w)
        batch = self._static_batch or len(images)
        key = f"input:{batch}x{geometry.input_h}x{geometry.input_w}"  # stable address per shape (graphs)
        dst = self.pool.device(key, self._preprocessor_checked().output_nbytes(geometry, batch))
        self._preprocessor_checked().run(
            [im.data for im in images], images[0].pixel_format, geometry, dst.ptr
        )
        return dst.ptr, geometry, batch

    def geometry(self, frame_h: int, frame_w: int) -> LetterboxGeometry:
        key = (frame_h, frame_w)
        geometry = self._geometries.get(key)
        if geometry is None:
            geometry = self._geometries[key] = compute_geometry(
                frame_h, frame_w, self._profile, self.spec.model.stride
            )
        return geometry

    def close(self) -> None:
        self.device.activate()
        self.stream.synchronize()
        HostRegistry.release_shared(self.options.device_id)
        self.pool.close()
        for e in self._events:
            e.close()
        self.stream.close()

    # -- internals ----------------------------------------------------------------------------

    def _preprocessor_checked(self) -> GpuPreprocessor:
        if self._preprocessor is None:
            raise RuntimeError("backend did not call _setup()")
        return self._preprocessor

    def _detect_batch(self, images: Sequence[ImageInput]) -> list[DetectionResult]:
        e0, e1, e2, e3 = self._events
        t0 = time.perf_counter()
        e0.record(self.stream)
        input_ptr, geometry, batch = self.preprocess_only(images)
        e1.record(self.stream)
        out_ptr, out_shape, half = self._run(input_ptr, batch, geometry.input_h, geometry.input_w)
        e2.record(self.stream)
        assert self._decoder is not None  # noqa: S101
        candidates = self._decoder.decode(out_ptr, out_shape, half)[: len(images)]
        e3.record(self.stream)
        detections = [self._finish(c, geometry) for c in candidates]
        e3.synchronize()
        t1 = time.perf_counter()
        timings = {
            "preprocess": e1.elapsed_ms(e0),  # upload + kernel, device time
            "engine": e2.elapsed_ms(e1),
            "decode": e3.elapsed_ms(e2),  # prefilter kernel + candidate copy, device time
            "total": (t1 - t0) * 1e3,  # host wall time incl. host decode + NMS
        }
        shape = (geometry.input_h, geometry.input_w)
        return [DetectionResult(d, dict(timings), shape) for d in detections]

    def _finish(self, candidates: Candidates, geometry: LetterboxGeometry) -> Detections:
        return finish_detections(candidates, geometry, self.spec.nms)


def host_view(pool: BufferPool, name: str, dtype: Any, shape: tuple[int, ...]) -> np.ndarray:
    """A pinned host array (pooled) for results that must come back whole (``infer_raw``)."""
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    return pool.pinned(name, nbytes).view(dtype, shape)
