"""The alarm set and its monitor, with an injected clock (no sleeps, no wall-clock bounds)."""

from __future__ import annotations

import threading

from line.loop.alarms import (
    AlarmKind,
    AlarmLimits,
    AlarmMonitor,
    AlarmSet,
    Readings,
    kind_of_message,
)


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def readings(verdicts: int = 0, fail_safes: int = 0, misses: int = 0, cameras: dict[str, str] | None = None,
             plc: dict[str, str] | None = None, backlog: int = 0, storage: str | None = None) -> Readings:  # fmt: skip
    return Readings(verdicts, fail_safes, misses, cameras or {}, plc or {}, backlog, storage)


def test_raise_keeps_first_seen_and_counts_events_not_held_conditions() -> None:
    clock = FakeClock()
    alarms = AlarmSet(clock)
    heard: list[tuple[str, bool]] = []
    alarms.listeners.append(lambda a, active: heard.append((a.kind.value, active)))
    alarms.raise_(AlarmKind.RECIPE_REQUEST_REFUSED, "code 9")
    clock.t += 5
    alarms.raise_(AlarmKind.RECIPE_REQUEST_REFUSED, "code 7")
    alarms.raise_(AlarmKind.LOG_BACKLOG, "600 waiting", repeat=False)
    clock.t += 1
    alarms.raise_(AlarmKind.LOG_BACKLOG, "700 waiting", repeat=False)
    by_kind = {a.kind: a for a in alarms.snapshot()}
    refused = by_kind[AlarmKind.RECIPE_REQUEST_REFUSED]
    assert (refused.first_seen, refused.last_seen, refused.count, refused.message) == (
        1000.0,
        1005.0,
        2,
        "code 7",
    )
    assert (by_kind[AlarmKind.LOG_BACKLOG].count, by_kind[AlarmKind.LOG_BACKLOG].message) == (
        1,
        "700 waiting",
    )
    assert [a.kind for a in alarms.snapshot()][0] is AlarmKind.LOG_BACKLOG  # most recently seen first
    alarms.clear(AlarmKind.LOG_BACKLOG)
    alarms.raise_(AlarmKind.LOG_BACKLOG, "again", repeat=False)
    assert {a.kind: a.count for a in alarms.snapshot()}[AlarmKind.LOG_BACKLOG] == 2  # a second occurrence
    alarms.clear_all()
    assert alarms.snapshot() == []
    assert heard == [("recipe_request_refused", True), ("log_backlog", True), ("log_backlog", False), ("log_backlog", True),
                     ("recipe_request_refused", False), ("log_backlog", False)]  # fmt: skip


def test_alarm_set_is_thread_safe() -> None:
    alarms = AlarmSet()
    barrier = threading.Barrier(4)

    def hammer() -> None:
        barrier.wait()
        for _ in range(2000):
            alarms.raise_(AlarmKind.INFERENCE_ERROR, "x")

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert alarms.snapshot()[0].count == 8000


def test_fail_safe_rate_and_deadline_misses_over_a_sliding_window() -> None:
    clock = FakeClock()
    alarms = AlarmSet(clock)
    monitor = AlarmMonitor(
        alarms, AlarmLimits(window_s=10, fail_safe_rate=0.1, min_parts=20, deadline_misses=3), clock
    )
    monitor.check(readings(0, 0, 0))
    clock.t += 1
    monitor.check(readings(10, 5, 4))  # under min_parts: the rate is not judged yet; misses are
    assert {a.kind for a in alarms.snapshot()} == {AlarmKind.DEADLINE_MISSES}
    clock.t += 1
    monitor.check(readings(40, 6, 4))
    assert {a.kind for a in alarms.snapshot()} == {AlarmKind.DEADLINE_MISSES, AlarmKind.FAIL_SAFE_RATE}
    assert "6 of 40 parts" in {a.kind: a.message for a in alarms.snapshot()}[AlarmKind.FAIL_SAFE_RATE]
    for _ in range(12):  # good parts only: the burst leaves the window
        clock.t += 1
        monitor.check(readings(40 + 10 * int(clock.t - 1002), 6, 4))
    assert alarms.snapshot() == []


def test_counter_reset_restarts_the_window() -> None:
    clock = FakeClock()
    alarms = AlarmSet(clock)
    monitor = AlarmMonitor(alarms, AlarmLimits(window_s=60, fail_safe_rate=0.1, min_parts=10), clock)
    monitor.check(readings(100, 50, 0))
    clock.t += 1
    monitor.check(readings(5, 0, 0))  # the operator reset the counters
    clock.t += 1
    monitor.check(readings(30, 0, 0))
    assert alarms.snapshot() == []


def test_plc_link_never_connected_is_waiting_not_lost() -> None:
    clock = FakeClock()
    alarms = AlarmSet(clock)
    monitor = AlarmMonitor(alarms, clock=clock)
    monitor.check(readings(plc={"modbus_server": "disconnected"}))
    assert alarms.snapshot() == []
    assert monitor.plc_link_view("modbus_server", "disconnected") == "waiting for PLC"
    monitor.check(readings(plc={"modbus_server": "connected"}))
    monitor.check(readings(plc={"modbus_server": "disconnected"}))
    assert [a.kind for a in alarms.snapshot()] == [AlarmKind.PLC_LINK_LOST]
    assert monitor.plc_link_view("modbus_server", "disconnected") == "disconnected"
    monitor.check(readings(plc={"modbus_server": "connected"}))
    assert alarms.snapshot() == []


def test_camera_backlog_and_storage_conditions() -> None:
    clock = FakeClock()
    alarms = AlarmSet(clock)
    monitor = AlarmMonitor(alarms, AlarmLimits(log_backlog=100), clock)
    monitor.check(readings(cameras={"cam2": "reconnecting"}, backlog=101, storage="disk full"))
    msgs = {a.kind: a.message for a in alarms.snapshot()}
    assert msgs == {AlarmKind.CAMERA_LOST: "camera cam2 is reconnecting", AlarmKind.STORAGE_FAULT: "disk full",
                    AlarmKind.LOG_BACKLOG: "101 records waiting for the result log (limit 100)"}  # fmt: skip
    monitor.check(readings(backlog=100))
    assert alarms.snapshot() == []


def test_free_text_alarms_map_to_kinds() -> None:
    assert (
        kind_of_message("engine cannot meet the recipe budget of 40 ms (p99 81 ms)")
        is AlarmKind.ENGINE_BELOW_BUDGET
    )
    assert kind_of_message("plc selected unknown recipe code 9") is AlarmKind.RECIPE_REQUEST_REFUSED
    assert kind_of_message("something odd") is AlarmKind.STATION
