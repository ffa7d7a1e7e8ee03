"""A fixed pool of preallocated frame buffers, shared by the simulated sources.

Like a GenTL announce/queue cycle: ``pool_size`` arrays are allocated once, a frame borrows
one, and ``Frame.release`` hands it back exactly once (``harvesters Buffer.__exit__``
requeues). When the consumer holds every buffer the producer has nowhere to write, which
is what makes a real camera drop frames; the sources count that instead of allocating.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np


class BufferPool:
    def __init__(self, size: int, shape: tuple[int, ...], dtype: type = np.uint8) -> None:
        if size < 1:
            raise ValueError(f"pool size must be >= 1, got {size}")
        self.shape = shape
        self._buffers: list[np.ndarray] = [np.zeros(shape, dtype) for _ in range(size)]
        self._free = list(range(size - 1, -1, -1))
        self._cond = threading.Condition()

    @property
    def size(self) -> int:
        return len(self._buffers)

    @property
    def free(self) -> int:
        with self._cond:
            return len(self._free)

    def try_acquire(self) -> int | None:
        """A free buffer's index, or None at once when the consumer holds them all."""
        with self._cond:
            return self._free.pop() if self._free else None

    def acquire(self, timeout_s: float) -> int | None:
        """Wait (blocking, no polling) up to ``timeout_s`` for a free buffer."""
        with self._cond:
            if not self._cond.wait_for(lambda: bool(self._free), timeout=max(0.0, timeout_s)):
                return None
            return self._free.pop()

    def buffer(self, index: int) -> np.ndarray:
        return self._buffers[index]

    def give_back(self, index: int) -> None:
        with self._cond:
            if index in self._free:
                raise RuntimeError(f"buffer {index} returned twice")
            self._free.append(index)
            self._cond.notify()

    def releaser(self, index: int) -> Callable[[], None]:
        """The callback a ``Frame`` calls once on release (``Frame`` guarantees once)."""
        return lambda: self.give_back(index)
