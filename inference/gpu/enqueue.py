"""Enqueue-only CUDA driver calls that keep the GIL.

cuda-python releases the GIL around every call. For a call that only enqueues work (a few
microseconds), taking the GIL back afterwards is the expensive part in a busy process: at 8
cameras, ~30 Python threads want the GIL, and the batcher thread queued behind them after each
of the ~25 enqueues of a batch. The 8-frame upload stage took 1.2 ms of device time inside the
station against 0.29 ms alone (the GPU idled between our enqueues). These wrappers call libcuda
through ``ctypes.PyDLL``, which holds the GIL for the call. Anything that can block
(synchronize, allocate) stays on cuda-python, which releases it.

``LINECHECK_CUDA_KEEP_GIL=0`` switches back to cuda-python for every call (A/B measurements).
"""

from __future__ import annotations

import ctypes
import os
from typing import Any

_c = ctypes
_lib: Any = None
_tried = False


def _load() -> Any:
    global _lib, _tried
    if not _tried:
        _tried = True
        if os.environ.get("LINECHECK_CUDA_KEEP_GIL", "1") != "0":
            try:
                lib = _c.PyDLL("libcuda.so.1")
                sig = {
                    "cuMemcpyHtoDAsync_v2": [_c.c_uint64, _c.c_void_p, _c.c_size_t, _c.c_void_p],
                    "cuMemcpyDtoHAsync_v2": [_c.c_void_p, _c.c_uint64, _c.c_size_t, _c.c_void_p],
                    "cuMemsetD8Async": [_c.c_uint64, _c.c_ubyte, _c.c_size_t, _c.c_void_p],
                    "cuEventRecord": [_c.c_void_p, _c.c_void_p],
                    "cuLaunchKernel": [_c.c_void_p] + [_c.c_uint] * 7 + [_c.c_void_p] * 3,
                    "cuEventElapsedTime": [_c.POINTER(_c.c_float), _c.c_void_p, _c.c_void_p],
                    "cuGraphLaunch": [_c.c_void_p, _c.c_void_p],
                }
                for name, argtypes in sig.items():
                    fn = getattr(lib, name)
                    fn.argtypes = argtypes
                    fn.restype = _c.c_int
                _lib = lib
            except (OSError, AttributeError):
                _lib = None
    return _lib


def available() -> bool:
    return _load() is not None


def _check(status: int, call: str) -> None:
    if status != 0:
        from inference.gpu.cuda import GpuError

        raise GpuError(f"{call} failed with CUresult {status}")


def memcpy_htod(dst: int, src: int, nbytes: int, stream: int) -> bool:
    """Enqueue a host → device copy holding the GIL; False: not available (caller falls back)."""
    lib = _load()
    if lib is None:
        return False
    _check(lib.cuMemcpyHtoDAsync_v2(dst, src, nbytes, stream), "cuMemcpyHtoDAsync")
    return True


def memcpy_dtoh(dst: int, src: int, nbytes: int, stream: int) -> bool:
    lib = _load()
    if lib is None:
        return False
    _check(lib.cuMemcpyDtoHAsync_v2(dst, src, nbytes, stream), "cuMemcpyDtoHAsync")
    return True


def memset_d8(dst: int, value: int, nbytes: int, stream: int) -> bool:
    lib = _load()
    if lib is None:
        return False
    _check(lib.cuMemsetD8Async(dst, value, nbytes, stream), "cuMemsetD8Async")
    return True


def event_record(event: int, stream: int) -> bool:
    lib = _load()
    if lib is None:
        return False
    _check(lib.cuEventRecord(event, stream), "cuEventRecord")
    return True


def launch(
    function: int, grid: tuple[int, int, int], block: tuple[int, int, int], stream: int, args: int
) -> bool:
    lib = _load()
    if lib is None:
        return False
    _check(lib.cuLaunchKernel(function, *grid, *block, 0, stream, args, None), "cuLaunchKernel")
    return True


def graph_launch(graph_exec: int, stream: int) -> bool:
    lib = _load()
    if lib is None:
        return False
    _check(lib.cuGraphLaunch(graph_exec, stream), "cuGraphLaunch")
    return True


def elapsed_ms(start: int, end: int) -> float | None:
    """Milliseconds between two completed events (a query, no wait); None: not available."""
    lib = _load()
    if lib is None:
        return None
    ms = _c.c_float()
    _check(lib.cuEventElapsedTime(_c.byref(ms), start, end), "cuEventElapsedTime")
    return float(ms.value)
