"""The finisher decides a part as soon as its result is in: never behind another lane's part
that waits for a later batch, and always in its own lane's order."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from inference.engine import ImageInput
from line.loop.batcher import BatchRequest
from line.loop.finisher import Finisher, PendingInspection

WAIT_S = 5.0


class Decisions:
    """What the finisher decided, in order, from any number of recording lanes."""

    def __init__(self) -> None:
        self.decided: list[str] = []
        self.changed = threading.Condition()

    def lane(self, name: str) -> RecordingLane:
        return RecordingLane(name, self)

    def wait_for(self, predicate: Callable[[list[str]], bool], timeout_s: float = WAIT_S) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: predicate(self.decided), timeout_s)


class RecordingLane:
    def __init__(self, name: str, decisions: Decisions) -> None:
        self.name, self._decisions = name, decisions

    def finish(self, ticket: Any, item: Any, pending: Any) -> None:
        with self._decisions.changed:
            self._decisions.decided.append(f"{self.name}:{ticket}")
            self._decisions.changed.notify_all()


def pending_batch() -> PendingInspection:
    image = ImageInput(np.zeros((4, 4), np.uint8), "Mono8")
    return PendingInspection(prepared=None, t0=0.0, request=BatchRequest(engine=None, image=image), result=None)  # type: ignore[arg-type]


def done(finisher: Finisher, *parts: PendingInspection) -> None:
    """What the batcher does when a batch's results are in."""
    for part in parts:
        assert part.request is not None
        part.request.done.set()
    finisher.wake()


def test_a_ready_part_is_decided_while_another_lanes_earlier_part_waits_for_its_batch() -> None:
    decisions = Decisions()
    cam1, cam2 = decisions.lane("cam1"), decisions.lane("cam2")
    finisher = Finisher()
    try:
        next_batch, this_batch = pending_batch(), pending_batch()
        # cam2 handed over first, but its frame went into the next batch (the lane lost the CPU
        # between its submit and its hand-over); cam1's frame is in the batch that just finished
        finisher.put(cam2, 7, None, next_batch)
        finisher.put(cam1, 7, None, this_batch)
        done(finisher, this_batch)
        assert decisions.wait_for(lambda decided: "cam1:7" in decided)
        assert decisions.decided == ["cam1:7"]  # cam2's part is still in the engine
        done(finisher, next_batch)
        assert decisions.wait_for(lambda decided: len(decided) == 2)
        assert decisions.decided == ["cam1:7", "cam2:7"]
    finally:
        finisher.close()


def test_a_lanes_parts_are_decided_in_its_own_order() -> None:
    decisions = Decisions()
    cam1 = decisions.lane("cam1")
    finisher = Finisher()
    try:
        first, second = pending_batch(), pending_batch()
        finisher.put(cam1, 1, None, first)
        finisher.put(cam1, 2, None, second)
        finisher.put(cam1, 3, None, None)  # a dropped frame: decided fail-safe, in its place
        done(finisher, second)
        assert not decisions.wait_for(bool, 0.2)  # part 1 holds the lane
        done(finisher, first)
        assert decisions.wait_for(lambda decided: len(decided) == 3)
        assert decisions.decided == ["cam1:1", "cam1:2", "cam1:3"]
    finally:
        finisher.close()


def test_close_decides_what_is_in_flight() -> None:
    decisions = Decisions()
    cam1 = decisions.lane("cam1")
    finisher = Finisher()
    last = pending_batch()
    finisher.put(cam1, 1, None, RuntimeError("engine gone"))  # an error at submit: decided at once
    finisher.put(cam1, 2, None, last)
    threading.Timer(0.1, done, (finisher, last)).start()
    finisher.close()  # returns once part 2's result came in and it was decided
    assert decisions.decided == ["cam1:1", "cam1:2"]
