"""The finisher decides a part as soon as its result is in: never behind another lane's part
that waits for a later batch, and always in its own lane's order."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from inference.engine import ImageInput
from line.batcher import BatchRequest
from line.finisher import Finisher, PendingInspection

WAIT_S = 5.0


class RecordingLane:
    def __init__(self, name: str, decided: list[str], changed: threading.Condition) -> None:
        self.name, self._decided, self._changed = name, decided, changed

    def finish(self, ticket: Any, item: Any, pending: Any) -> None:
        with self._changed:
            self._decided.append(f"{self.name}:{ticket}")
            self._changed.notify_all()


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
    decided: list[str] = []
    changed = threading.Condition()
    cam1, cam2 = RecordingLane("cam1", decided, changed), RecordingLane("cam2", decided, changed)
    finisher = Finisher()
    try:
        next_batch, this_batch = pending_batch(), pending_batch()
        # cam2 handed over first, but its frame went into the next batch (the lane lost the CPU
        # between its submit and its hand-over); cam1's frame is in the batch that just finished
        finisher.put(cam2, 7, None, next_batch)
        finisher.put(cam1, 7, None, this_batch)
        done(finisher, this_batch)
        with changed:
            assert changed.wait_for(lambda: "cam1:7" in decided, WAIT_S)
            assert decided == ["cam1:7"]  # cam2's part is still in the engine
        done(finisher, next_batch)
        with changed:
            assert changed.wait_for(lambda: len(decided) == 2, WAIT_S)
        assert decided == ["cam1:7", "cam2:7"]
    finally:
        finisher.close()


def test_a_lanes_parts_are_decided_in_its_own_order() -> None:
    decided: list[str] = []
    changed = threading.Condition()
    cam1 = RecordingLane("cam1", decided, changed)
    finisher = Finisher()
    try:
        first, second = pending_batch(), pending_batch()
        finisher.put(cam1, 1, None, first)
        finisher.put(cam1, 2, None, second)
        finisher.put(cam1, 3, None, None)  # a dropped frame: decided fail-safe, in its place
        done(finisher, second)
        with changed:
            assert not changed.wait_for(lambda: bool(decided), 0.2)  # part 1 holds the lane
        done(finisher, first)
        with changed:
            assert changed.wait_for(lambda: len(decided) == 3, WAIT_S)
        assert decided == ["cam1:1", "cam1:2", "cam1:3"]
    finally:
        finisher.close()


def test_close_decides_what_is_in_flight() -> None:
    decided: list[str] = []
    changed = threading.Condition()
    cam1 = RecordingLane("cam1", decided, changed)
    finisher = Finisher()
    last = pending_batch()
    finisher.put(cam1, 1, None, RuntimeError("engine gone"))  # an error at submit: decided at once
    finisher.put(cam1, 2, None, last)
    threading.Timer(0.1, done, (finisher, last)).start()
    finisher.close()  # returns once part 2's result came in and it was decided
    assert decided == ["cam1:1", "cam1:2"]
