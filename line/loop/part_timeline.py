"""Where a late part's time went: the hand-over stamps of each part, kept for the parts that
missed their deadline and for the slowest ones that did not.

Percentiles say *that* a tail exists; they cannot say which thread held the part. Every part
carries a few ``perf_counter`` stamps (≈ 0.1 µs each) as it passes from one thread to the
next: the acquisition thread took it from the camera (``lane_in``), the inference thread took
it from the lane's queue (``dequeued``), the station handed it to the engine or the batcher
(``submitted``), the batcher took it into a batch (``batched``) and had its result
(``result``), the deciding thread (lane or finisher) had the result in hand (``detected``),
the verdict was decided (``decided``) and the PLC write acknowledged (``acked``). A
watchdog's fail-safe at the deadline is stamped too (``deadline``). The gap between two stamps
is the time one thread (or one queue between two threads) held the part, so a late part's
largest gap names the step that stalled.
"""

from __future__ import annotations

import heapq
import threading
from dataclasses import dataclass, field
from typing import Any

# the order a batched part passes them (a stamp a path does not have is absent, never zero)
STEPS = ("lane_in", "dequeued", "submitted", "batched", "result", "detected", "decided", "acked")


@dataclass(frozen=True)
class PartTimeline:
    """One part's stamps, in ms after its frame was ready (t_ready)."""

    camera_id: str
    part_id: int
    late: bool
    at_s: float  # when its frame was ready, in s after the recording started
    steps_ms: dict[str, float]  # in time order, then "deadline" where the watchdog decided it
    engine_ms: dict[str, float] = field(default_factory=dict)  # the engine's own stages
    batch: int = 0  # images in its batch (0: not batched)

    @property
    def total_ms(self) -> float:
        return max(self.steps_ms.values(), default=0.0)

    def largest_step(self) -> tuple[str, float]:
        """(``"a→b"``, ms): the longest hand-over, counted from t_ready."""
        previous, at, best = "ready", 0.0, ("", -1.0)
        for name, ms in self.steps_ms.items():
            if name != "deadline":
                if ms - at > best[1]:
                    best = (f"{previous}→{name}", ms - at)
                previous, at = name, ms
        return best[0], max(best[1], 0.0)

    def as_dict(self) -> dict[str, Any]:
        step, ms = self.largest_step()
        return {"camera": self.camera_id, "part": self.part_id, "late": self.late, "at_s": round(self.at_s, 3),
                "total_ms": round(self.total_ms, 3), "largest_step": step, "largest_step_ms": round(ms, 3),
                "steps_ms": {k: round(v, 3) for k, v in self.steps_ms.items()},
                "engine_ms": {k: round(v, 3) for k, v in self.engine_ms.items()}, "batch": self.batch}  # fmt: skip

    def describe(self) -> str:
        step, ms = self.largest_step()
        steps = ", ".join(f"{k} {v:.2f}" for k, v in self.steps_ms.items())
        engine = ", ".join(f"{k} {v:.2f}" for k, v in self.engine_ms.items())
        batch = f", batch of {self.batch}" if self.batch else ""
        return (f"{self.camera_id} part {self.part_id} at {self.at_s:.3f} s{' LATE' if self.late else ''}: "
                f"{self.total_ms:.2f} ms, largest step {step} {ms:.2f} ms{batch}\n"
                f"      ms after t_ready: {steps}" + (f"\n      engine: {engine}" if engine else ""))  # fmt: skip


class SlowParts:
    """The timelines of every late part (the first ``keep_late``) and of the ``keep_slowest``
    slowest on-time parts, since the last :meth:`reset`.

    ``offer`` runs once per decided part on a deciding thread; an on-time part faster than the
    slowest kept costs one comparison and no lock.
    """

    def __init__(self, keep_slowest: int = 5, keep_late: int = 64) -> None:
        self.keep_slowest = keep_slowest
        self.keep_late = keep_late
        self._lock = threading.Lock()
        self.reset(0.0)

    def reset(self, epoch: float) -> None:
        with self._lock:
            self._epoch = epoch
            self._late: list[PartTimeline] = []
            self.late_seen = 0
            self._slowest: list[tuple[float, int, PartTimeline]] = []  # min-heap on total ms
            self._floor = -1.0  # the fastest kept once the heap is full
            self._n = 0

    def offer(self, camera_id: str, part_id: int, t_ready: float, stamps: dict[str, float], late: bool,
              engine_ms: dict[str, float] | None = None, batch: int = 0) -> None:  # fmt: skip
        total = (max(stamps.values()) - t_ready) * 1000 if stamps else 0.0
        if not late and total <= self._floor:
            return
        # in the order they happened: a part launched from the camera's thread is ``submitted``
        # before its inference thread ``dequeued`` it
        steps = dict(sorted(((name, (stamps[name] - t_ready) * 1000) for name in STEPS if name in stamps),
                            key=lambda step: step[1]))  # fmt: skip
        if "deadline" in stamps:
            steps["deadline"] = (stamps["deadline"] - t_ready) * 1000
        engine = {k: v for k, v in (engine_ms or {}).items() if k not in ("acquire_wait", "detect", "decision", "plc_write")}
        with self._lock:
            timeline = PartTimeline(camera_id, part_id, late, t_ready - self._epoch, steps, engine, batch)
            if late:
                self.late_seen += 1
                if len(self._late) < self.keep_late:
                    self._late.append(timeline)
                return
            self._n += 1
            entry = (total, self._n, timeline)
            if len(self._slowest) < self.keep_slowest:
                heapq.heappush(self._slowest, entry)
            else:
                heapq.heappushpop(self._slowest, entry)
            if len(self._slowest) == self.keep_slowest:
                self._floor = self._slowest[0][0]

    def offer_part(self, ticket: Any, late: bool, engine_ms: dict[str, float] | None = None,
                   request: Any = None) -> None:  # fmt: skip
        """``ticket``: a ``PartTicket``; ``request``: its ``BatchRequest`` where it was batched."""
        if not late and (max(ticket.stamps.values(), default=0.0) - ticket.t_ready) * 1000 <= self._floor:
            return  # the common case, once per part: no copy, no lock (the batcher's stamps come earlier)
        stamps = dict(ticket.stamps)  # a copy: the watchdog may still add its stamp
        batch = 0
        if request is not None and request.t_done:
            stamps["batched"], stamps["result"], batch = request.t_taken, request.t_done, request.batch
        self.offer(ticket.camera_id, ticket.part_id, ticket.t_ready, stamps, late, engine_ms, batch)

    def late(self) -> list[PartTimeline]:
        with self._lock:
            return list(self._late)

    def slowest(self) -> list[PartTimeline]:
        """Slowest first."""
        with self._lock:
            return [t for _, _, t in sorted(self._slowest, key=lambda e: -e[0])]

    def summary(self) -> dict[str, Any]:
        """For a report: how many were late, which step was the largest how often, the timelines."""
        late = self.late()
        largest: dict[str, int] = {}
        for timeline in late:
            step = timeline.largest_step()[0]
            largest[step] = largest.get(step, 0) + 1
        return {"late_parts": self.late_seen, "late_largest_steps": dict(sorted(largest.items(), key=lambda kv: -kv[1])),
                "late": [t.as_dict() for t in late], "slowest_on_time": [t.as_dict() for t in self.slowest()]}  # fmt: skip
