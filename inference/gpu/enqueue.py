"""Enqueue-only CUDA driver calls that keep the GIL.

cuda-python releases the GIL around every call. For a call that only enqueues work (a few
microseconds), taking the GIL back afterwards is the expensive part in a busy process: at 8
cameras, ~30 Python threads want the GIL, and the batcher thread queued behind them after each
of the ~25 enqueues of a batch. The 8-frame upload stage took 1.2 ms of device time inside the
station against 0.29 ms alone (the GPU idled between our enqueues). These wrappers call libcuda
through ``ctypes.PyDLL``, which holds the GIL for the call. Anything that can block
(synchronize, allocate) stays on cuda-python, which releases it.

``EngineOptions.cuda_keep_gil`` (on by default) switches them off: every call then goes
through cuda-python (an A/B, or a driver whose libcuda cannot be loaded this way). The switch
is process-wide, like ``EngineOptions.cuda_wait``: the last engine opened sets it.
"""

from __future__ import annotations

import ctypes
from typing import Any

from inference.gpu.errors import GpuError

_c = ctypes
_lib: Any = None
_tried = False
_keep_gil = True


def keep_gil(enabled: bool) -> None:
    """Use the GIL-holding calls (True, the default) or cuda-python for every call (False)."""
    global _keep_gil
    _keep_gil = enabled


def _load() -> Any:
    global _lib, _tried
    if not _keep_gil:
        return None
    if not _tried:
        _tried = True
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
