"""Garbage-collector pauses, measured where they happen (``gc.callbacks``).

A collection holds the GIL: every lane, the batcher and the PLC writer wait until it ends, so
a long one is a burst of late parts. The station freezes its start-up heap out of the
collector (``gc.freeze``) and records every later pause here, so a stall on the line can be
told apart from a slow engine (bench JSON ``gc_pause_ms``, station snapshot).
"""

from __future__ import annotations

import gc
import threading
import time
from typing import Any

from line.loop.stats import LatencyRing


class GcWatch:
    def __init__(self) -> None:
        self.pauses = LatencyRing(8192)
        self.full_collections = 0
        self._t0: dict[int, float] = {}
        self._installed = False

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        tid = threading.get_ident()
        if phase == "start":
            self._t0[tid] = time.perf_counter()
            return
        t0 = self._t0.pop(tid, None)
        if t0 is not None:
            self.pauses.add((time.perf_counter() - t0) * 1000)
            if info.get("generation") == 2:
                self.full_collections += 1

    def install(self) -> None:
        if not self._installed:
            gc.callbacks.append(self._callback)
            self._installed = True

    def remove(self) -> None:
        if self._installed:
            gc.callbacks.remove(self._callback)
            self._installed = False

    def snapshot(self) -> dict[str, Any]:
        return {**self.pauses.percentiles(), "full": self.full_collections}


def freeze_startup_heap() -> None:
    """Collect what start-up left behind, then move every surviving object to the permanent
    generation: later collections walk only what the running line allocates."""
    gc.collect()
    gc.freeze()
