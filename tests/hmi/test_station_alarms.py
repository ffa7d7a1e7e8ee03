"""The station's monitor raises and clears alarms from its own readings: a camera that fails
and comes back, the result log's backlog and storage fault (read through the accessor names in
line/loop/alarms.py), the engine-budget entry point, and the operator's clear (Modbus command 2)."""

from __future__ import annotations

from pathlib import Path

from line.loop.alarms import AlarmKind
from plc.vocabulary import StatusBits
from tests.hmi.helpers import Rig, running_rig


def active(rig: Rig) -> set[AlarmKind]:
    return {a.kind for a in rig.station.alarm_set.snapshot()}


def test_camera_failure_raises_camera_lost_and_its_return_clears_it(tmp_path: Path) -> None:
    with running_rig(tmp_path, fail_parts=(100,)) as rig:  # about 2 s in, after the listener is there
        heard: list[tuple[AlarmKind, bool]] = []
        rig.station.alarm_set.listeners.append(lambda alarm, on: heard.append((alarm.kind, on)))
        assert rig.source.options.fail_parts[0] > sum(lane.parts for lane in rig.station.lanes)
        rig.wait(lambda: (AlarmKind.CAMERA_LOST, False) in heard, 30)  # the camera delivered again
        assert heard.index((AlarmKind.CAMERA_LOST, True)) < heard.index((AlarmKind.CAMERA_LOST, False))


def test_log_backlog_and_storage_fault_set_alarm_and_error_bits(tmp_path: Path) -> None:
    with running_rig(tmp_path) as rig:
        log = rig.station.result_log
        # the readings a full disk and a locked database give (tests/reliability/test_durability.py
        # makes both for real); here only how the alarm faces show them
        log.storage_fault = lambda: "No space left on device"  # type: ignore[method-assign]
        log.backlog = lambda: 10_000  # type: ignore[method-assign]
        rig.wait(lambda: {AlarmKind.STORAGE_FAULT, AlarmKind.LOG_BACKLOG} <= active(rig), 30)
        bits = StatusBits(rig.station.status_bits())
        assert StatusBits.ERROR in bits and StatusBits.ALARM in bits
        status = rig.client("viewer").get("/api/status").json()
        assert {"storage_fault", "log_backlog"} <= {a["kind"] for a in status["alarms"]}
        log.storage_fault = lambda: None  # type: ignore[method-assign]
        log.backlog = lambda: 0  # type: ignore[method-assign]
        rig.wait(lambda: not ({AlarmKind.STORAGE_FAULT, AlarmKind.LOG_BACKLOG} & active(rig)), 30)


def test_engine_budget_message_and_operator_clear(tmp_path: Path) -> None:
    with running_rig(tmp_path) as rig:
        rig.station.raise_alarm("engine p99 81 ms cannot meet the recipe budget of 40 ms")  # as assembly raises it
        assert active(rig) == {AlarmKind.ENGINE_BELOW_BUDGET}
        rig.wait(lambda: StatusBits.ALARM in StatusBits(rig.station.published_status), 30)
        rig.station.command(2, "test")  # the operator clears: an event alarm stays cleared
        looks = rig.station.alarm_monitor.checks
        rig.wait(lambda: rig.station.alarm_monitor.checks >= looks + 2, 30)  # the monitor looked again
        assert AlarmKind.ENGINE_BELOW_BUDGET not in active(rig)
