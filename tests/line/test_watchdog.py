"""The deadline watchdog of an unbatched lane: a part decided on time leaves the watchdog's
list at once, so the watchdog does not wake at that part's deadline (on a 2-core CPU such a
wake-up lands in a later part's engine run and takes a core from the engine's threads)."""

from __future__ import annotations

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
