"""NVRTC kernels: compiled once per process and GPU arch, launched on our stream.

Split from :mod:`inference.gpu.cuda` so the buffer and stream plumbing stays one small module; the
preprocess and decode kernels are the only users. ``KernelArgs`` keeps the parameter block
preallocated because the hot path launches several kernels per frame and must not allocate.
"""

from __future__ import annotations

import ctypes
import hashlib
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from inference.gpu import enqueue as cuda_enqueue
from inference.gpu.cuda import Device, GpuError, Stream, check, driver, error_string, nvrtc, require_cuda

_MODULES: dict[tuple[str, str], Kernels] = {}  # (source sha, device:arch)
# headers every kernel source may #include by name (NVRTC has no include path of its own here)
HEADERS: dict[str, str] = {name: (Path(__file__).parent / "cu" / name).read_text() for name in ("fp16.cuh",)}
_HEADERS_DIGEST = hashlib.sha256("".join(HEADERS.values()).encode()).hexdigest()
_MODULES_LOCK = threading.Lock()


class Kernels:
    """A compiled NVRTC module and its functions (compiled once per process and GPU arch)."""

    def __init__(self, source: str, names: Sequence[str], arch: tuple[int, int], options: Sequence[str] = ()):
        require_cuda()
        self.source_hash = _source_key(source)[:16]
        prog = check(
            nvrtc.nvrtcCreateProgram(source.encode(), b"linecheck.cu", len(HEADERS),
                                     [h.encode() for h in HEADERS.values()], [n.encode() for n in HEADERS]),
            "nvrtcCreateProgram",
        )  # fmt: skip
        opts = [f"--gpu-architecture=sm_{arch[0]}{arch[1]}".encode(), b"--std=c++17", b"-default-device"]
        opts += [o.encode() for o in options]
        err = nvrtc.nvrtcCompileProgram(prog, len(opts), opts)
        if int(err[0]) != 0:
            size = check(nvrtc.nvrtcGetProgramLogSize(prog), "nvrtcGetProgramLogSize")
            log = b" " * size
            nvrtc.nvrtcGetProgramLog(prog, log)
            raise GpuError(
                f"nvrtcCompileProgram failed: {error_string(err[0])}\n{log.decode(errors='replace')}"
            )
        size = check(nvrtc.nvrtcGetCUBINSize(prog), "nvrtcGetCUBINSize")
        cubin = b" " * size
        check(nvrtc.nvrtcGetCUBIN(prog, cubin), "nvrtcGetCUBIN")
        check(nvrtc.nvrtcDestroyProgram(prog), "nvrtcDestroyProgram")
        self._cubin = cubin  # the module keeps a pointer into it while loading
        self.module = check(driver.cuModuleLoadData(cubin), "cuModuleLoadData")
        self.functions: dict[str, Any] = {
            n: check(driver.cuModuleGetFunction(self.module, n.encode()), f"cuModuleGetFunction({n})")
            for n in names
        }

    @classmethod
    def get(cls, source: str, names: Sequence[str], device: Device) -> Kernels:
        """The module for ``source`` on ``device`` (modules belong to one device's context)."""
        arch = device.compute_capability
        key = (_source_key(source), f"{device.id}:{arch[0]}{arch[1]}")
        with _MODULES_LOCK:
            mod = _MODULES.get(key)
            if mod is None:
                mod = _MODULES[key] = cls(source, names, arch)
            return mod


def _source_key(source: str) -> str:
    """What a compiled module depends on: the source and the headers it may include."""
    return hashlib.sha256((source + _HEADERS_DIGEST).encode()).hexdigest()


class KernelArgs:
    """Preallocated kernel parameter block (no Python-side allocation per launch).

    ``types`` are ctypes scalar types; ``set`` writes values in place and ``address`` is the
    ``void**`` cuLaunchKernel wants.
    """

    def __init__(self, types: Sequence[Any]) -> None:
        self._values = [t() for t in types]
        self._array = (ctypes.c_void_p * len(types))(*[ctypes.addressof(v) for v in self._values])
        self.address = ctypes.addressof(self._array)

    def set(self, *values: float | int) -> None:
        if len(values) != len(self._values):
            raise ValueError(f"kernel takes {len(self._values)} arguments, got {len(values)}")
        for slot, value in zip(self._values, values, strict=True):
            slot.value = value


def launch(
    function: Any,
    grid: tuple[int, int, int],
    block: tuple[int, int, int],
    args: KernelArgs | int,
    stream: Stream,
) -> None:
    """cuLaunchKernel on our stream; ``args`` is a KernelArgs or the address of a ``void*[]``."""
    address = args if isinstance(args, int) else args.address
    if cuda_enqueue.launch(int(function), grid, block, stream.handle, address):
        return
    check(
        driver.cuLaunchKernel(function, *grid, *block, 0, stream.handle, address, 0),
        "cuLaunchKernel",
    )
