"""The deciding thread of a batching station: it decides each part as soon as its result is in.

Lanes hand their parts over right after submitting them to the batcher. An earlier finisher took
them in hand-over order, one queue for every lane, and waited on the head. A lane thread that
lost the CPU between its submit and its hand-over then put a part of the *next* batch ahead of
parts of a batch already done, and those waited for the next batch too. On a shared H100 VM, a 6 ms
host freeze grew that way into 16 ms of waiting for finished results, and 8 cameras at 190 Hz
missed their 20 ms deadline. Here each lane keeps its own order (the PLC sees a lane's parts in
sequence), and a lane whose next result is ready never waits for another lane's.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from inference.engine import DetectionResult
from line.loop.batcher import BatchRequest

if TYPE_CHECKING:
    from line.recipes.book import PreparedRecipe


@dataclass(frozen=True)
class PendingInspection:
    """A part between :meth:`Inspector.submit` and :meth:`Inspector.complete`."""

    prepared: PreparedRecipe
    t0: float
    request: BatchRequest | None  # batched: the result comes from the batcher
    result: DetectionResult | None  # unbatched: already detected
    launched: object | None = None  # launched from the camera thread: the engine's handle

    def ready(self) -> bool:
        """Deciding it now would not wait for the engine."""
        return self.request is None or self.request.done.is_set()


def is_ready(pending: Any) -> bool:
    """A hand-over the finisher can decide without blocking: a failure (None), an error raised
    at submit, or an inspection whose result is in."""
    return not isinstance(pending, PendingInspection) or pending.ready()


class FinishingLane(Protocol):
    def finish(self, ticket: Any, item: Any, pending: Any) -> None: ...


Entry = tuple[FinishingLane, Any, Any, Any]  # (lane, ticket, item, pending)


class Finisher:
    """One thread; per lane a queue in hand-over order; it decides every lane's ready head."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._lanes: dict[FinishingLane, deque[Entry]] = {}
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="finisher", daemon=True)
        self._thread.start()

    def put(self, lane: FinishingLane, ticket: Any, item: Any, pending: Any) -> None:
        with self._cond:
            self._lanes.setdefault(lane, deque()).append((lane, ticket, item, pending))
            self._cond.notify()

    def wake(self) -> None:
        """Results came in (the batcher calls this once per batch)."""
        with self._cond:
            self._cond.notify()

    def _take_ready(self) -> list[Entry] | None:
        """Every lane's ready heads, in each lane's order; None: closed and nothing left."""
        with self._cond:
            while True:
                ready: list[Entry] = []
                for entries in self._lanes.values():
                    while entries and is_ready(entries[0][3]):
                        ready.append(entries.popleft())
                if ready:
                    return ready
                if self._closed and not any(self._lanes.values()):
                    return None
                # a hand-over and each batch's completion notify; the timeout is a backstop
                # only, long enough that an idle station's finisher does not wake the CPU
                # engine's threads' cores
                self._cond.wait(1.0)

    def _run(self) -> None:
        while (ready := self._take_ready()) is not None:
            for lane, ticket, item, pending in ready:
                lane.finish(ticket, item, pending)

    @property
    def name(self) -> str:
        return self._thread.name

    def close(self, timeout_s: float = 1.0) -> bool:
        """Decide what is still in flight, then stop; False: the thread is still deciding after
        ``timeout_s`` (an engine that hangs) and is left behind, so a hung engine never hangs
        the station's stop (its parts are decided fail-safe by their lanes' watchdogs)."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout_s)
        return not self._thread.is_alive()
