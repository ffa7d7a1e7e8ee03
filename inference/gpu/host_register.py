"""Camera buffers we did not allocate, made DMA-able: ``cudaHostRegister`` with an LRU bound,
and the counters that prove zero-copy uploads (split from :mod:`inference.gpu.cuda`)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from inference.gpu.cuda import GpuError, check, runtime


def _root_array(array: np.ndarray) -> np.ndarray:
    """The ndarray that owns (or first wraps) the memory a view looks into."""
    root = array
    while isinstance(root.base, np.ndarray):
        root = root.base
    return root


@dataclass
class _Registration:
    array: np.ndarray  # strong reference: the memory must outlive its registration
    start: int
    end: int


class HostRegistry:
    """cudaHostRegister for buffers we did not allocate (the camera's pool arrays).

    A registered range is DMA-able by ``cuMemcpyHtoDAsync`` without a staging copy. Camera
    pools hand out views into a few long-lived buffers, so the whole owning array is
    registered once (up front through ``register``, or the second time it is seen) and
    looked up by address afterwards. An LRU bound (``capacity`` roots)
    keeps stray one-off arrays from pinning unbounded memory; eviction unregisters.

    The bound must exceed every camera buffer in flight (8 cameras x 16 GenTL buffers = 128):
    a pool that cycles through more roots than the bound re-registers and unregisters on
    every frame (~1 ms each, and unregistering synchronises the device). Registration is
    per CUDA context, so engines on one device share one registry (``shared``): a second
    registry would fail on memory the first already registered.
    """

    _shared: ClassVar[dict[int, tuple[HostRegistry, int]]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def shared(cls, device_id: int) -> HostRegistry:
        """The registry of ``device_id``'s primary context; pair with :meth:`release_shared`."""
        with cls._shared_lock:
            registry, users = cls._shared.get(device_id, (None, 0))
            if registry is None:
                registry = cls()
            cls._shared[device_id] = (registry, users + 1)
            return registry

    @classmethod
    def release_shared(cls, device_id: int) -> None:
        """The last engine on a device gone: unregister everything."""
        with cls._shared_lock:
            registry, users = cls._shared.get(device_id, (None, 0))
            if registry is None:
                return
            if users > 1:
                cls._shared[device_id] = (registry, users - 1)
                return
            del cls._shared[device_id]
        registry.close()

    def __init__(self, capacity: int = 256, enabled: bool = True) -> None:
        self.capacity = max(1, capacity)
        self.enabled = enabled  # False: never register (every frame staged, and counted)
        self._regs: OrderedDict[int, _Registration] = OrderedDict()
        self._seen: OrderedDict[tuple[int, int], bool] = OrderedDict()  # roots met once
        self._lock = threading.Lock()
        self.registered = 0
        self.failures = 0
        self.epoch = 0  # bumped when a registration goes away: caches of "registered" drop then

    def _find(self, start: int, end: int) -> _Registration | None:
        reg = self._regs.get(start)  # a camera buffer: the registered root itself
        if reg is not None and end <= reg.end:
            return reg
        for key, reg in self._regs.items():
            if reg.start <= start and end <= reg.end:
                self._regs.move_to_end(key)
                return reg
        return None

    def ensure(self, array: np.ndarray, *, eager: bool = False) -> bool:
        """True when ``array``'s memory is registered (registering its root if it is reused).

        A root seen for the first time is not registered (unless ``eager``): registration
        costs about as much as copying the buffer a few times, so only buffers that come
        back — a camera pool — are worth it; one-off arrays are staged through pinned memory.
        """
        start = int(array.ctypes.data)
        end = start + array.nbytes
        with self._lock:
            if self._find(start, end) is not None:
                return True
            if not self.enabled:
                return False
            root = _root_array(array)
            r_start = int(root.ctypes.data)
            r_end = r_start + root.nbytes
            if not (r_start <= start and end <= r_end):  # exotic view: register the view itself
                root, r_start, r_end = array, start, end
            if not eager and self._seen.pop((r_start, r_end), None) is None:
                self._seen[(r_start, r_end)] = True
                while len(self._seen) > 4 * self.capacity:
                    self._seen.popitem(last=False)
                return False
            result = runtime.cudaHostRegister(r_start, r_end - r_start, runtime.cudaHostRegisterDefault)
            if result[0] == runtime.cudaError_t.cudaErrorHostMemoryAlreadyRegistered:
                runtime.cudaGetLastError()
                return True  # someone else's registration (a test's own registry): DMA works
            if int(result[0]) != 0:
                self.failures += 1
                runtime.cudaGetLastError()  # clear the sticky-free error so later calls are clean
                return False
            self._regs[r_start] = _Registration(root, r_start, r_end)
            self.registered += 1
            while len(self._regs) > self.capacity:
                _, old = self._regs.popitem(last=False)
                self.epoch += 1
                check(runtime.cudaHostUnregister(old.start), "cudaHostUnregister")
            return True

    def register(self, arrays: Iterable[np.ndarray]) -> None:
        """Register a camera pool up front (so the first frames pay nothing)."""
        for a in arrays:
            if not self.ensure(a, eager=True):
                raise GpuError(f"cudaHostRegister failed for a {a.nbytes} B buffer")

    def close(self) -> None:
        with self._lock:
            for reg in self._regs.values():
                runtime.cudaHostUnregister(reg.start)
            self._regs.clear()
            self.epoch += 1


@dataclass
class CopyCounters:
    """How pixel data reached the device: zero ``host_copies`` means zero-copy upload."""

    dma_uploads: int = 0  # camera buffer → device straight from registered memory
    host_copies: int = 0  # pageable frame staged through pinned memory (a host copy)
