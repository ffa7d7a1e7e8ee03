"""The GPU detection pipeline shared by the ONNX Runtime CUDA and TensorRT engines.

Per batch, all on one stream we own: camera buffer --DMA--> staging --kernel--> engine
input (letterboxed, normalized, fp16/fp32) → network → prefilter kernel → few candidate rows
to the host → exact decode + NMS (``inference.decode``/``inference.nms``) → frame pixels.
A backend supplies only ``_run`` (enqueue the network on our stream, bound to our buffers).

Timings come from CUDA events around each stage (the device's own clock), plus the host
time for decode + NMS.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from inference.config import EngineOptions, InputProfile
from inference.decode import Candidates
from inference.detections import Detections
from inference.engine import DetectionResult, DetectorSpec, Engine, ImageInput, detect_in_batches
from inference.gpu import enqueue as cuda_enqueue
from inference.gpu.cuda import BufferPool, Device, Event, Stream, check, driver
from inference.gpu.decode import DecodePlan, GpuDecoder
from inference.gpu.fused import CapturableNetwork, FusedGraph, FusedKey, capture
from inference.gpu.host_register import CopyCounters, HostRegistry
from inference.gpu.preprocess import GpuPreprocessor
from inference.letterbox import LetterboxGeometry, compute_geometry
from inference.postprocess import finish_detections

log = logging.getLogger(__name__)
# a launch or a collect taking longer than this is logged with what it did (a line's budget is ~20 ms)
SLOW_CALL_S = 0.010


@dataclass(eq=False)
class InFlight:
    """A launched batch: its work is queued on the engine's stream; ``finish`` collects it."""

    t0: float
    n: int
    geometry: LetterboxGeometry
    plan: DecodePlan
    fused: FusedGraph | None
    t_launched: float = 0.0  # the host's enqueue done (the rest is the device's)


class GpuPipelineEngine(Engine):
    """Base class: subclasses set ``_profile``, ``_half_input``, ``_static_batch`` and ``_run``."""

    backend = "gpu"

    def __init__(self, spec: DetectorSpec, options: EngineOptions) -> None:
        super().__init__(spec, options)
        self.device = Device(options.device_id)
        self.device.set_wait(options.cuda_wait)
        cuda_enqueue.keep_gil(options.cuda_keep_gil)
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
        # a plain Lock, not an RLock: try_launch takes it on one thread and finish (maybe on
        # another) gives it back
        self._lock = threading.Lock()
        # one CUDA graph per frame layout for kernel + network + decode (``inference.gpu.fused``)
        self.whole_graph = options.cuda_graphs and options.whole_graph
        self.whole_graph_error: str | None = None
        self._fused: dict[FusedKey, FusedGraph] = {}
        self._fused_seen: set[FusedKey] = set()
        self._fused_failed: set[FusedKey] = set()
        # launches and collects over SLOW_CALL_S that none of our own work explains (the device
        # or the host stalled): the bench counts them over its paced run
        self.unexplained_stalls = 0
        self.unexplained_stall_max_ms = 0.0

    # -- backend hooks ------------------------------------------------------------------------

    @abstractmethod
    def _run(
        self, input_ptr: int, batch: int, height: int, width: int
    ) -> tuple[int, tuple[int, int, int], bool]:
        """Enqueue the network on ``self.stream``; return (output ptr, output shape, fp16?)."""

    def _capture_network(self, input_ptr: int, batch: int, height: int, width: int) -> CapturableNetwork | None:
        """The network, enqueueable inside a stream capture; None: this backend cannot."""
        return None

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

    def try_launch(self, images: Sequence[ImageInput]) -> InFlight | None:
        """Queue one batch on the device and return at once, if the engine is idle (see
        ``Engine.try_launch``); the engine stays reserved until :meth:`finish`."""
        assert self._decoder is not None  # noqa: S101
        if self._decoder.layout == "end2end" or not images:
            return None
        if len(images) > (self._static_batch or self.options.max_batch):
            return None
        if not self._lock.acquire(blocking=False):
            return None
        try:
            self.device.activate()
            return self._launch(images)
        except BaseException:
            self._lock.release()
            raise

    def finish(self, launched: object) -> list[DetectionResult]:
        if not isinstance(launched, InFlight):
            raise TypeError(f"not a launch of this engine: {launched!r}")
        try:
            self.device.activate()
            return self._collect(launched)
        finally:
            self._lock.release()

    def _detect(self, images: Sequence[ImageInput]) -> list[DetectionResult]:
        self.device.activate()
        return detect_in_batches(images, self._static_batch or self.options.max_batch, self._detect_batch)

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
        dst = self._input_buffer(geometry, batch)
        self._preprocessor_checked().run([im.data for im in images], images[0].pixel_format, geometry, dst)
        return dst, geometry, batch

    def geometry(self, frame_h: int, frame_w: int) -> LetterboxGeometry:
        key = (frame_h, frame_w)
        geometry = self._geometries.get(key)
        if geometry is None:
            geometry = self._geometries[key] = compute_geometry(
                frame_h, frame_w, self._profile, self.spec.model.stride
            )
        return geometry

    def close(self) -> None:
        self._drop_fused()
        HostRegistry.release_shared(self.options.device_id)
        self.pool.close()
        for e in self._events:
            e.close()
        self.stream.close()

    def _drop_fused(self) -> None:
        # a launch in flight finishes first (bounded: a dead caller must not hang a shutdown)
        locked = self._lock.acquire(timeout=5.0)
        try:
            self.device.activate()
            self.stream.synchronize()
            for fused in self._fused.values():
                fused.close()
            self._fused.clear()
        finally:
            if locked:
                self._lock.release()

    # -- internals ----------------------------------------------------------------------------

    def _preprocessor_checked(self) -> GpuPreprocessor:
        if self._preprocessor is None:
            raise RuntimeError("backend did not call _setup()")
        return self._preprocessor

    def _detect_batch(self, images: Sequence[ImageInput]) -> list[DetectionResult]:
        assert self._decoder is not None  # noqa: S101
        if self._decoder.layout != "end2end":
            return self._collect(self._launch(images))
        e0, e1, e2, e3 = self._events
        t0 = time.perf_counter()
        e0.record(self.stream)
        input_ptr, geometry, batch = self.preprocess_only(images)
        e1.record(self.stream)
        out_ptr, out_shape, half = self._run(input_ptr, batch, geometry.input_h, geometry.input_w)
        e2.record(self.stream)
        candidates = self._decoder.decode(out_ptr, out_shape, half)[: len(images)]
        e3.record(self.stream)
        detections = [self._finish(c, geometry) for c in candidates]
        e3.synchronize()
        return self._results(detections, geometry, t0, True)

    def _launch(self, images: Sequence[ImageInput]) -> InFlight:
        """Upload, then the whole graph for this layout, or the steps one by one (no wait)."""
        before = self._state()
        launched = self._launch_steps(images)
        launched.t_launched = time.perf_counter()
        if launched.t_launched - launched.t0 > SLOW_CALL_S:
            self._report_slow("launch", launched.t0, before)
        return launched

    def _state(self) -> tuple[int, int, int, int]:
        pre = self._preprocessor
        return (self.pool.allocations, self.registry.epoch, pre.counters.host_copies if pre else 0,
                len(self._fused) + len(self._fused_failed))  # fmt: skip

    def _report_slow(self, what: str, t0: float, before: tuple[int, int, int, int]) -> None:
        """A stalled line needs to know where the time went: buffers grown (which re-captures
        the graphs), camera memory (un)registered, frames copied through the host, graphs
        captured; or none of these (then the device or the scheduler)."""
        deltas = [a - b for a, b in zip(self._state(), before, strict=True)]
        ms = (time.perf_counter() - t0) * 1e3
        # first use of a shape (buffers, capture) is slow by design: said, not warned about
        level = logging.INFO if any(deltas) else logging.WARNING
        if not any(deltas):
            self.unexplained_stalls += 1
            self.unexplained_stall_max_ms = max(self.unexplained_stall_max_ms, ms)
        log.log(
            level, "slow GPU %s: %.1f ms (buffer allocations +%d, registration epoch +%d, host copies +%d, "
            "graphs captured or failed +%d)", what, ms, *deltas,
        )  # fmt: skip

    def _launch_steps(self, images: Sequence[ImageInput]) -> InFlight:
        e0, e1, e2, e3 = self._events
        t0 = time.perf_counter()
        e0.record(self.stream)
        preprocessor = self._preprocessor_checked()
        pixel_format = images[0].pixel_format
        staging_ptr, h, w, pitch = preprocessor.upload([im.data for im in images], pixel_format)
        geometry = self.geometry(h, w)
        batch = self._static_batch or len(images)
        input_ptr = self._input_buffer(geometry, batch)
        key: FusedKey = (len(images), batch, h, w, pitch, pixel_format)
        fused = self._fused_graph(key, staging_ptr, input_ptr, geometry) if self.whole_graph else None
        assert self._decoder is not None  # noqa: S101
        if fused is not None:
            if not fused.timed:
                e1.record(self.stream)
            fused.graph.replay()
            if not fused.timed:
                e3.record(self.stream)
            return InFlight(t0, len(images), geometry, fused.plan, fused)
        preprocessor.launch_kernel(staging_ptr, (h, w, pitch), len(images), pixel_format, geometry, input_ptr)
        e1.record(self.stream)
        out_ptr, out_shape, half = self._run(input_ptr, batch, geometry.input_h, geometry.input_w)
        e2.record(self.stream)
        plan = self._decoder.enqueue(out_ptr, out_shape, half)
        e3.record(self.stream)
        return InFlight(t0, len(images), geometry, plan, None)

    def _collect(self, launched: InFlight) -> list[DetectionResult]:
        assert self._decoder is not None  # noqa: S101
        t0 = time.perf_counter()
        before = self._state()
        candidates = self._decoder.collect(launched.plan)[: launched.n]  # waits for the stream
        t_collected = time.perf_counter()
        if t_collected - t0 > SLOW_CALL_S:
            self._report_slow("collect (waiting for the device)", t0, before)
        detections = [self._finish(c, launched.geometry) for c in candidates]
        staged = launched.fused is None or launched.fused.timed
        results = self._results(detections, launched.geometry, launched.t0, staged)
        # host wall time: the enqueue, the wait for the device (a late part's timeline says which)
        host = {"launch": (launched.t_launched - launched.t0) * 1e3, "collect": (t_collected - t0) * 1e3}
        for result in results:
            result.timings_ms.update(host)
        return results

    def _results(
        self, detections: list[Detections], geometry: LetterboxGeometry, t0: float, staged: bool
    ) -> list[DetectionResult]:
        e0, e1, e2, e3 = self._events
        t1 = time.perf_counter()
        if staged:
            timings = {
                "preprocess": e1.elapsed_ms(e0),  # upload + kernel, device time
                "engine": e2.elapsed_ms(e1),
                "decode": e3.elapsed_ms(e2),  # prefilter kernel + candidate copy, device time
            }
        else:  # a whole graph without stage events: the upload, then everything else
            timings = {"preprocess": e1.elapsed_ms(e0), "graph": e3.elapsed_ms(e1)}
        timings["total"] = (t1 - t0) * 1e3  # host wall time incl. host decode + NMS
        shape = (geometry.input_h, geometry.input_w)
        return [DetectionResult(d, dict(timings), shape) for d in detections]

    def _input_buffer(self, geometry: LetterboxGeometry, batch: int) -> int:
        key = f"input:{batch}x{geometry.input_h}x{geometry.input_w}"  # stable address per shape (graphs)
        return self.pool.device(key, self._preprocessor_checked().output_nbytes(geometry, batch)).ptr

    def _fused_graph(
        self, key: FusedKey, staging_ptr: int, input_ptr: int, geometry: LetterboxGeometry
    ) -> FusedGraph | None:
        """The layout's graph; captured on its second batch (the first, step by step, sizes
        every buffer), again after any buffer was regrown; None where capture failed."""
        fused = self._fused.get(key)
        if fused is not None:
            if fused.epoch == self.pool.allocations:
                return fused
            fused.close()
            del self._fused[key]
        if key in self._fused_failed:
            return None
        if key not in self._fused_seen:
            self._fused_seen.add(key)
            return None
        try:
            network = self._capture_network(input_ptr, key[1], geometry.input_h, geometry.input_w)
            if network is None:
                self._fused_failed.add(key)
                return None
            assert self._decoder is not None  # noqa: S101
            fused = capture(key, staging_ptr, input_ptr, geometry, network, self._preprocessor_checked(),
                            self._decoder, self.stream, (self._events[1], self._events[2], self._events[3]))  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - an optimisation: the steps keep working
            self._fused_failed.add(key)
            self.whole_graph_error = f"{type(exc).__name__}: {exc}"[:300]
            log.warning("whole-graph capture failed for %s, running step by step: %s", key, self.whole_graph_error)
            return None
        fused.epoch = self.pool.allocations
        self._fused[key] = fused
        return fused

    def _finish(self, candidates: Candidates, geometry: LetterboxGeometry) -> Detections:
        return finish_detections(candidates, geometry, self.spec.nms, self.spec.model.layout)


def host_view(pool: BufferPool, name: str, dtype: Any, shape: tuple[int, ...]) -> np.ndarray:
    """A pinned host array (pooled) for results that must come back whole (``infer_raw``)."""
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    return pool.pinned(name, nbytes).view(dtype, shape)
