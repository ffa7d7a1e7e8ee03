"""Late parts' timelines: the hand-over stamps name the step that held a late part, on a real
station (real threads, batcher, finisher, watchdog) with one scripted slow engine call."""

from __future__ import annotations

import time
from pathlib import Path

from line.loop.part_timeline import SlowParts
from line.loop.station import Station
from line.results.log import ResultLog
from tests.line.fakes import ScriptedSource, scripted_book
from tests.line.test_station import RecordingSink, make_station, run_parts
from tools.bench.cli import print_timelines

BATCHED_STEPS = ["lane_in", "dequeued", "submitted", "batched", "result", "detected", "decided", "acked"]


def _increasing(steps: dict[str, float], names: list[str]) -> bool:
    values = [steps[n] for n in names]
    return values == sorted(values) and values[0] >= 0


def test_keeps_every_late_part_and_only_the_slowest_on_time_ones() -> None:
    slow = SlowParts(keep_slowest=2, keep_late=3)
    slow.reset(100.0)
    for part, total_ms in enumerate([1.0, 5.0, 2.0, 4.0, 3.0], start=1):
        slow.offer("cam1", part, 100.0, {"dequeued": 100.0005, "decided": 100.0 + total_ms / 1000}, late=False)
    assert [t.part_id for t in slow.slowest()] == [2, 4]  # 5 ms, 4 ms: slowest first
    for part in range(10, 15):  # late parts are kept whatever their duration, up to keep_late
        slow.offer("cam2", part, 100.5, {"dequeued": 100.5001, "decided": 100.5002}, late=True)
    summary = slow.summary()
    assert summary["late_parts"] == 5 and [t["part"] for t in summary["late"]] == [10, 11, 12]
    assert summary["late"][0]["at_s"] == 0.5
    slow.reset(200.0)
    assert slow.summary()["late_parts"] == 0 and slow.slowest() == []


def test_the_largest_step_is_the_longest_hand_over_and_skips_missing_stamps() -> None:
    slow = SlowParts()
    slow.reset(0.0)
    # no batcher on this path: dequeued → submitted → detected, then the watchdog's stamp
    slow.offer("cam1", 7, 10.0, {"lane_in": 10.0001, "dequeued": 10.030, "submitted": 10.0301, "detected": 10.032,
                                 "deadline": 10.020}, late=True)  # fmt: skip
    (timeline,) = slow.late()
    assert timeline.largest_step()[0] == "lane_in→dequeued"
    assert abs(timeline.largest_step()[1] - 29.9) < 1e-6
    assert abs(timeline.steps_ms["deadline"] - 20.0) < 1e-6 and abs(timeline.total_ms - 32.0) < 1e-6


def test_a_part_launched_from_the_camera_thread_is_told_in_the_order_it_happened() -> None:
    slow = SlowParts()
    slow.reset(0.0)
    # early launch: submitted on the camera's thread, then 6.4 ms in the queue behind the last part
    slow.offer("cam1", 8, 10.0, {"lane_in": 10.0001, "submitted": 10.0002, "dequeued": 10.0066, "detected": 10.0074,
                                 "decided": 10.0075}, late=False)  # fmt: skip
    (timeline,) = slow.slowest()
    assert list(timeline.steps_ms) == ["lane_in", "submitted", "dequeued", "detected", "decided"]
    step, ms = timeline.largest_step()
    assert step == "submitted→dequeued" and abs(ms - 6.4) < 1e-6


def test_a_stalled_batch_is_named_on_a_batched_station(tmp_path: Path) -> None:
    """Two cameras through the batcher; one engine call of cam0's part 5 takes 150 ms against a
    40 ms budget: that part is late, decided fail-safe by the watchdog at its deadline, and its
    timeline puts the time between the batcher taking it and the batch's result."""
    book = scripted_book(tmp_path / "recipes", budget_ms=40, stall_s=0.15)
    sources = [ScriptedSource(f"cam{i}", ScriptedSource.Options(rate_hz=20, max_parts=12,
                                                                stalling_parts=(5,) if i == 0 else ()))
               for i in range(2)]  # fmt: skip
    sink = RecordingSink()
    station = Station("s1", book, list(sources), [sink], ResultLog(tmp_path / "state" / "results.db", None),
                      fetch_timeout_s=0.2, max_batch=2, pad_to=2)  # fmt: skip
    station.stats.reset()
    station.start()
    deadline = time.monotonic() + 20
    while any(s._part < 12 for s in sources) and time.monotonic() < deadline:
        time.sleep(0.01)
    station.stop()
    summary = station.stats.slow_parts.summary()
    late = {(t["camera"], t["part"]): t for t in summary["late"]}
    stalled = late[("cam0", 5)]
    assert stalled["largest_step"] == "batched→result"
    assert stalled["largest_step_ms"] >= 140 and stalled["batch"] >= 1
    # the watchdog decided it at its deadline, before the stalled batch's result came back
    assert 40 <= stalled["steps_ms"]["deadline"] < stalled["steps_ms"]["result"], stalled["steps_ms"]
    assert "acked" not in stalled["steps_ms"]  # its real verdict was never written
    assert [m.reason for m in sink.messages if (m.camera_id, m.part_id) == ("cam0", 5)] == ["timeout"]
    # an on-time part carries every hand-over of the batched path, in order, inside the budget
    on_time = summary["slowest_on_time"]
    assert on_time and all(not t["late"] for t in on_time)  # "late" is the station's own budget check
    assert _increasing(on_time[-1]["steps_ms"], BATCHED_STEPS)
    assert summary["late_parts"] == len(summary["late"]) == station.stats.counts["late_discarded"]


def test_a_slow_engine_call_is_named_on_an_unbatched_lane(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    station, source, _ = make_station(tmp_path, budget_ms=40, rate_hz=20, max_parts=8, stalling_parts=(3,))
    station.book.active.engine.stall_s = 0.12  # type: ignore[union-attr]
    station.stats.reset()
    run_parts(station, source, 8)
    summary = station.stats.slow_parts.summary()
    stalled = next(t for t in summary["late"] if t["part"] == 3)
    assert stalled["largest_step"] == "submitted→detected" and stalled["largest_step_ms"] >= 110
    assert stalled["engine_ms"]["engine"] == 0.0  # the scripted engine's own figure, carried along
    fast = summary["slowest_on_time"][-1]
    assert _increasing(fast["steps_ms"], ["lane_in", "dequeued", "submitted", "detected", "decided", "acked"])
    assert "batched" not in fast["steps_ms"]
    print_timelines(summary)
    out = capsys.readouterr().out
    assert "the largest step of each: submitted→detected in" in out
    assert "cam1 part 3 at " in out and "LATE" in out
