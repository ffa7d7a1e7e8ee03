"""The deadline watchdog of an unbatched lane: a part decided on time leaves the watchdog's
list at once, so the watchdog does not wake at that part's deadline (on a 2-core CPU such a
wake-up lands in a later part's engine run and takes a core from the engine's threads)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from tests.line.test_station import make_station


def _wait(condition, timeout_s: float) -> bool:  # noqa: ANN001
    end = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.005)
    return True


def test_a_part_decided_on_time_leaves_the_watchdog_at_once(tmp_path: Path) -> None:
    station, source, sink = make_station(tmp_path, budget_ms=5000, rate_hz=50, max_parts=3)
    lane = station.lanes[0]
    station.start()
    try:
        assert _wait(lambda: len(sink.messages) == 3, 10)
        # the deadlines are 5 s away; the decided tickets are gone long before
        assert _wait(lambda: not lane._pending, 0.5), f"{len(lane._pending)} decided tickets wait for their deadline"
    finally:
        station.stop()
    assert [m.part_id for m in sink.messages] == [1, 2, 3]
    assert station.stats.counts.get("fail_safe.timeout", 0) == 0


def test_the_watchdog_still_decides_a_stalled_part_at_its_deadline(tmp_path: Path) -> None:
    station, source, sink = make_station(tmp_path, budget_ms=60, rate_hz=20, max_parts=4, stalling_parts=(2,))
    station.book.active.engine.stall_s = 0.3  # type: ignore[union-attr]
    station.start()
    try:
        assert _wait(lambda: len(sink.messages) == 4, 10)
    finally:
        station.stop()
    by_part = {m.part_id: m for m in sink.messages}
    assert sorted(by_part) == [1, 2, 3, 4]
    assert by_part[1].reason == ""
    assert by_part[2].reason == "timeout"  # at its 60 ms deadline, while the engine still held it


def test_a_part_reaching_an_idle_lane_does_not_wake_the_watchdog(tmp_path: Path) -> None:
    """One wake-up per part, after its verdict (the retire), none at its hand-over: that one
    fell between the camera thread's hand-over and the inference thread's start."""
    station, source, sink = make_station(tmp_path, budget_ms=2000, rate_hz=20, max_parts=6)
    lane = station.lanes[0]
    notifies: list[str] = []
    plain_notify = lane._pending_cond.notify

    def counting_notify(n: int = 1) -> None:
        notifies.append(threading.current_thread().name)
        plain_notify(n)

    lane._pending_cond.notify = counting_notify  # type: ignore[method-assign]
    station.start()
    try:
        assert _wait(lambda: len(sink.messages) == 6, 10)
        running = list(notifies)  # stop() notifies too
    finally:
        station.stop()
    assert running == ["infer-cam1"] * 6, running


def test_a_shorter_budget_still_wakes_the_watchdog_for_the_earlier_deadline(tmp_path: Path) -> None:
    station, source, sink = make_station(tmp_path, budget_ms=5000, rate_hz=20, max_parts=4, stalling_parts=(3,))
    station.book.active.engine.stall_s = 0.5  # type: ignore[union-attr]
    lane = station.lanes[0]
    station.start()
    try:
        assert _wait(lambda: len(sink.messages) == 1, 10)
        assert _wait(lambda: lane._watchdog_wakes_at > lane.clock() + 4.0, 1.0), "the idle watchdog waits one budget"
        budgets = iter([0.06] * 1000)
        lane.decider.budget_s = lambda: next(budgets)  # type: ignore[method-assign]  # a recipe with a 60 ms budget
        assert _wait(lambda: len(sink.messages) == 4, 10)
    finally:
        station.stop()
    by_part = {m.part_id: m for m in sink.messages}
    assert by_part[3].reason == "timeout"  # at 60 ms, not when the 5 s look would have come
