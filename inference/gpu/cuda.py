"""CUDA plumbing through cuda-python (``cuda.bindings``): device, streams, events, buffers.

Why one module: every GPU backend (ONNX Runtime CUDA, TensorRT) needs the same few things —
a stream we own, device buffers whose pointers we hand to the runtime, pinned or
registered host memory so uploads are DMA rather than a pageable bounce, and NVRTC
kernels compiled once per process. Every CUDA call goes through :func:`check`, which
raises :class:`GpuError` naming the call and CUDA's own error string, so a failure on a
line reads "cudaHostRegister failed: invalid argument" instead of a bare tuple.

Nothing here is imported by the CPU path (``inference/__init__`` does not import it).
Buffers are pooled by (name, size): after warm-up nothing is allocated per frame.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from inference.gpu import enqueue as cuda_enqueue
from inference.gpu.errors import GpuError

try:  # cuda-python 12.6+ / 13
    from cuda.bindings import driver, nvrtc, runtime
except ImportError:  # pragma: no cover - only on hosts without cuda-python
    driver = nvrtc = runtime = None


def error_string(err: Any) -> str:
    """CUDA's name and text for a cuda-python / NVRTC error code (best effort)."""
    try:
        if runtime is not None and isinstance(err, runtime.cudaError_t):
            text = runtime.cudaGetErrorString(err)[1]
        elif driver is not None and isinstance(err, driver.CUresult):
            text = driver.cuGetErrorString(err)[1]
        elif nvrtc is not None and isinstance(err, nvrtc.nvrtcResult):
            text = nvrtc.nvrtcGetErrorString(err)[1]
        else:
            text = None
    except Exception:  # noqa: BLE001 - the string is best effort, the code is not
        text = None
    name = getattr(err, "name", str(err))
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return f"{name} ({text})" if text else str(name)


def check(result: Any, call: str) -> Any:
    """Unpack a cuda-python ``(err, *values)`` tuple; raise :class:`GpuError` unless success.

    Returns None, the single value, or the tuple of values.
    """
    if isinstance(result, tuple):
        err, values = result[0], result[1:]
    else:
        err, values = result, ()
    if int(err) != 0:
        raise GpuError(f"{call} failed: {error_string(err)}")
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def require_cuda() -> None:
    """Raise :class:`GpuError` saying how to install cuda-python when it is missing."""
    if runtime is None:
        raise GpuError("cuda-python is not installed (pip install 'cuda-python>=12.6')")


def cuda_available() -> tuple[bool, str]:
    """(True, device name) when a CUDA device is usable, else (False, reason) — never raises."""
    if runtime is None:
        return False, "cuda-python is not installed"
    try:
        count = check(runtime.cudaGetDeviceCount(), "cudaGetDeviceCount")
    except GpuError as exc:
        return False, str(exc)
    if not count:
        return False, "no CUDA device"
    try:
        return True, Device(0).name
    except GpuError as exc:
        return False, str(exc)


_current = threading.local()  # the device this thread last made current through ``Device``


class Device:
    """One GPU; ``activate`` makes its primary context current on the calling thread."""

    def __init__(self, device_id: int = 0) -> None:
        require_cuda()
        self.id = device_id
        check(runtime.cudaSetDevice(device_id), "cudaSetDevice")
        _current.device = device_id
        check(runtime.cudaFree(0), "cudaFree(0) (context init)")
        props = check(runtime.cudaGetDeviceProperties(device_id), "cudaGetDeviceProperties")
        raw = props.name
        self.name: str = (raw.decode() if isinstance(raw, bytes) else str(raw)).rstrip("\x00").strip()
        self.compute_capability: tuple[int, int] = (int(props.major), int(props.minor))
        self.total_memory: int = int(props.totalGlobalMem)

    def activate(self) -> None:
        """Once per thread and device switch, not per frame (each call is a GIL round trip)."""
        if getattr(_current, "device", None) == self.id:
            return
        check(runtime.cudaSetDevice(self.id), "cudaSetDevice")
        _current.device = self.id

    def set_wait(self, wait: str) -> None:
        """How a host thread waits for this GPU, for the whole process (``EngineOptions.cuda_wait``).

        CUDA's default spins a core per waiting thread while the context count is below the
        core count. That is the lowest wake-up latency on a dedicated box, and the most CPU:
        on a VM whose host throttles busy vCPUs (``tools.bench.host_steal``) it can cost more than it
        saves. ``block`` sleeps on an OS primitive; ``yield`` spins with ``sched_yield``."""
        if wait == "auto":
            return
        flag = {"spin": runtime.cudaDeviceScheduleSpin, "yield": runtime.cudaDeviceScheduleYield,
                "block": runtime.cudaDeviceScheduleBlockingSync}[wait]  # fmt: skip
        self.activate()
        current = int(check(runtime.cudaGetDeviceFlags(), "cudaGetDeviceFlags"))
        mask = int(runtime.cudaDeviceScheduleMask)
        check(runtime.cudaSetDeviceFlags((current & ~mask) | int(flag)), "cudaSetDeviceFlags")

    def synchronize(self) -> None:
        check(runtime.cudaDeviceSynchronize(), "cudaDeviceSynchronize")

    def memory_used_mb(self) -> float:
        """Device memory in use by every process on this GPU (the driver has no per-process
        figure without NVML): the bench reads it in a process that is the GPU's only user."""
        self.activate()
        free, total = check(runtime.cudaMemGetInfo(), "cudaMemGetInfo")
        return (int(total) - int(free)) / 2**20


class Stream:
    """A non-blocking stream we own; ``handle`` is the integer the runtimes want."""

    def __init__(self) -> None:
        require_cuda()
        self._stream = check(
            runtime.cudaStreamCreateWithFlags(runtime.cudaStreamNonBlocking), "cudaStreamCreateWithFlags"
        )
        self.handle: int = int(self._stream)

    @property
    def raw(self) -> Any:
        return self._stream

    def synchronize(self) -> None:
        check(runtime.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")

    def close(self) -> None:
        if self._stream is not None:
            check(runtime.cudaStreamDestroy(self._stream), "cudaStreamDestroy")
            self._stream = None


class Event:
    def __init__(self, timing: bool = True) -> None:
        flags = runtime.cudaEventDefault if timing else runtime.cudaEventDisableTiming
        self._event = check(runtime.cudaEventCreateWithFlags(flags), "cudaEventCreateWithFlags")
        self.handle: int = int(self._event)

    def record(self, stream: Stream) -> None:
        if not cuda_enqueue.event_record(self.handle, stream.handle):
            check(runtime.cudaEventRecord(self._event, stream.raw), "cudaEventRecord")

    def record_in_capture(self, stream: Stream) -> None:
        """Record as a node of the graph being captured on ``stream`` (an external event), so
        each replay stamps it: per-stage device timings inside a whole-graph replay."""
        check(
            runtime.cudaEventRecordWithFlags(self._event, stream.raw, runtime.cudaEventRecordExternal),
            "cudaEventRecordWithFlags",
        )

    def synchronize(self) -> None:
        check(runtime.cudaEventSynchronize(self._event), "cudaEventSynchronize")

    def elapsed_ms(self, start: Event) -> float:
        ms = cuda_enqueue.elapsed_ms(start.handle, self.handle)
        if ms is not None:
            return ms
        return float(check(runtime.cudaEventElapsedTime(start._event, self._event), "cudaEventElapsedTime"))

    def close(self) -> None:
        if self._event is not None:
            check(runtime.cudaEventDestroy(self._event), "cudaEventDestroy")
            self._event = None


class DeviceBuffer:
    """cudaMalloc'd memory; ``ptr`` goes to set_tensor_address / bind_input / kernels."""

    def __init__(self, nbytes: int) -> None:
        require_cuda()
        self.nbytes = max(int(nbytes), 1)
        self.ptr: int = int(check(runtime.cudaMalloc(self.nbytes), "cudaMalloc"))

    def upload(self, host: np.ndarray, stream: Stream) -> None:
        """Async host → device copy (DMA when ``host`` is pinned or registered)."""
        if host.nbytes > self.nbytes:
            raise GpuError(f"upload of {host.nbytes} B into a {self.nbytes} B buffer")
        if cuda_enqueue.memcpy_htod(self.ptr, host.ctypes.data, host.nbytes, stream.handle):
            return
        check(
            driver.cuMemcpyHtoDAsync(self.ptr, host.ctypes.data, host.nbytes, stream.handle),
            "cuMemcpyHtoDAsync",
        )

    def download(self, host: np.ndarray, stream: Stream, nbytes: int | None = None) -> None:
        n = host.nbytes if nbytes is None else nbytes
        if cuda_enqueue.memcpy_dtoh(host.ctypes.data, self.ptr, n, stream.handle):
            return
        check(driver.cuMemcpyDtoHAsync(host.ctypes.data, self.ptr, n, stream.handle), "cuMemcpyDtoHAsync")

    def fill_zero(self, stream: Stream) -> None:
        check(runtime.cudaMemsetAsync(self.ptr, 0, self.nbytes, stream.raw), "cudaMemsetAsync")

    def free(self) -> None:
        if self.ptr:
            check(runtime.cudaFree(self.ptr), "cudaFree")
            self.ptr = 0


class PinnedBuffer:
    """Page-locked host memory with a numpy view (results come back into these)."""

    def __init__(self, nbytes: int) -> None:
        require_cuda()
        self.nbytes = max(int(nbytes), 1)
        self.ptr: int = int(check(runtime.cudaMallocHost(self.nbytes), "cudaMallocHost"))
        self.array: np.ndarray = np.ctypeslib.as_array((ctypes.c_uint8 * self.nbytes).from_address(self.ptr))

    def view(self, dtype: Any, shape: Sequence[int]) -> np.ndarray:
        count = int(np.prod(shape)) * np.dtype(dtype).itemsize
        return self.array[:count].view(dtype).reshape(tuple(shape))

    def free(self) -> None:
        if self.ptr:
            self.array = np.zeros(0, np.uint8)
            check(runtime.cudaFreeHost(self.ptr), "cudaFreeHost")
            self.ptr = 0


class BufferPool:
    """Device/pinned buffers by name, grown only when a larger size is asked for.

    Why: a per-frame cudaMalloc costs a device synchronisation; the pool makes the steady
    state allocation-free (``allocations`` stops moving after warm-up, which tests check).
    """

    def __init__(self) -> None:
        self._device: dict[str, DeviceBuffer] = {}
        self._pinned: dict[str, PinnedBuffer] = {}
        self.allocations = 0

    def device(self, name: str, nbytes: int) -> DeviceBuffer:
        buf = self._device.get(name)
        if buf is None or buf.nbytes < nbytes:
            if buf is not None:
                buf.free()
            buf = self._device[name] = DeviceBuffer(nbytes)
            self.allocations += 1
        return buf

    def pinned(self, name: str, nbytes: int) -> PinnedBuffer:
        buf = self._pinned.get(name)
        if buf is None or buf.nbytes < nbytes:
            if buf is not None:
                buf.free()
            buf = self._pinned[name] = PinnedBuffer(nbytes)
            self.allocations += 1
        return buf

    def close(self) -> None:
        for d in self._device.values():
            d.free()
        for p in self._pinned.values():
            p.free()
        self._device.clear()
        self._pinned.clear()


class CudaGraph:
    """A stream capture replayed with one cudaGraphLaunch (fewer launch gaps)."""

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self._graph: Any = None
        self._exec: Any = None

    def begin(self) -> None:
        check(
            runtime.cudaStreamBeginCapture(
                self.stream.raw, runtime.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
            ),
            "cudaStreamBeginCapture",
        )

    def end(self) -> None:
        self._graph = check(runtime.cudaStreamEndCapture(self.stream.raw), "cudaStreamEndCapture")
        self._exec = check(runtime.cudaGraphInstantiate(self._graph, 0), "cudaGraphInstantiate")

    def replay(self) -> None:
        if not cuda_enqueue.graph_launch(int(self._exec), self.stream.handle):
            check(runtime.cudaGraphLaunch(self._exec, self.stream.raw), "cudaGraphLaunch")

    def abort(self) -> None:
        """End a capture that failed halfway, so the stream is usable again."""
        status = runtime.cudaStreamEndCapture(self.stream.raw)
        graph = status[1] if isinstance(status, tuple) and len(status) > 1 else None
        if graph is not None:
            runtime.cudaGraphDestroy(graph)

    def close(self) -> None:
        if self._exec is not None:
            runtime.cudaGraphExecDestroy(self._exec)
            self._exec = None
        if self._graph is not None:
            runtime.cudaGraphDestroy(self._graph)
            self._graph = None
