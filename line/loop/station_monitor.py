"""Monitoring the station: the status bits written to the PLC, the one alarm set every face
shows, camera events, and the counters mirrored to sinks that want them (the MES server). Its
thread looks ten times a second (status bits) and once a second (alarms, mirrored state)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from camera.source import CameraState
from line.loop.alarms import ERROR_KINDS, AlarmKind, AlarmMonitor, AlarmSet, Readings, kind_of_message
from line.loop.capabilities import StateMirror, UplinkFigures
from line.loop.lane import CameraLane
from line.loop.run_gate import RunGate, RunMode
from line.loop.stats import StationStats
from line.recipes.book import RecipeBook
from line.results.log import ResultLog
from plc.vocabulary import ResultSink, StatusBits

log = logging.getLogger(__name__)

PLC_SINKS = ("modbus_client", "opcua_client", "modbus_server")  # the links to the PLC, in this order
MONITOR_JOIN_S = 1.0


class StationMonitor:
    def __init__(self, lanes: list[CameraLane], sinks: list[ResultSink], result_log: ResultLog, book: RecipeBook,
                 stats: StationStats, is_running: Callable[[], bool], is_switching: Callable[[], bool],
                 gate: RunGate | None = None) -> None:  # fmt: skip
        self.lanes = lanes
        self.gate = gate or RunGate()
        self.sinks = sinks
        self.result_log = result_log
        self.book = book
        self.stats = stats
        self._is_running = is_running
        self._is_switching = is_switching
        self.alarm_set = AlarmSet()  # the one set every face shows (line/loop/alarms.py)
        self.alarm_monitor = AlarmMonitor(self.alarm_set)
        self._cameras_down: set[str] = set()  # lanes whose camera failed (camera_lost .. camera_back)
        self._published = StatusBits.READY
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="station-monitor", daemon=True)

    @property
    def published_status(self) -> StatusBits:
        """The status bits last written to the sinks (what the PLC reads now)."""
        return self._published

    @property
    def name(self) -> str:
        return self._thread.name

    def start(self) -> None:
        self._thread.start()

    def close(self, timeout_s: float = MONITOR_JOIN_S) -> bool:
        """False: the thread is still in a look after ``timeout_s`` and is left behind."""
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def raise_alarm(self, message: str, kind: AlarmKind | None = None) -> None:
        """Raise an alarm in the station's one set (every face shows it). ``kind`` None: told
        from the message."""
        log.warning("ALARM %s", message)
        self.alarm_set.raise_(kind or kind_of_message(message), message)

    def camera_event(self, camera_id: str, kind: str, message: str) -> None:
        severity = "info" if kind.endswith("_back") else "alarm"
        self.result_log.event(kind, severity, f"{camera_id}: {message}", {"camera_id": camera_id})
        if kind == "camera_lost":
            self._cameras_down.add(camera_id)
        elif kind == "camera_back":
            self._cameras_down.discard(camera_id)
        if severity == "alarm":
            alarm_kind = {"camera_lost": AlarmKind.CAMERA_LOST, "inference_error": AlarmKind.INFERENCE_ERROR}.get(kind)
            self.raise_alarm(f"camera {camera_id}: {message}", alarm_kind)

    def clear_alarms(self) -> None:
        """The operator's reset: a condition that still holds is raised again within a second."""
        self.alarm_set.clear_all()
        for lane in self.lanes:
            lane.camera_errors = 0

    def status_bits(self) -> StatusBits:
        """The status the station is in now (published when it differs from the last one)."""
        bits = StatusBits.READY | (StatusBits.RUNNING if self._is_running() else StatusBits.NONE)
        mode = self.gate.mode
        if mode is RunMode.HALTED:  # the PLC sees a station that decides nothing: it may stop the line
            bits = StatusBits.NONE
        elif mode is RunMode.READY:  # reset, waiting for a start
            bits = StatusBits.READY
        if any(lane.source.state in (CameraState.FAILED, CameraState.RECONNECTING) or lane.camera_errors for lane in self.lanes):
            bits |= StatusBits.ERROR
        active = self.alarm_set.snapshot()
        if active:
            bits |= StatusBits.ALARM
        if any(a.kind in ERROR_KINDS for a in active):
            bits |= StatusBits.ERROR
        if any(a.kind is AlarmKind.FAIL_SAFE_RATE for a in active):
            bits |= StatusBits.FAIL_SAFE
        if self.result_log.storage_fault() is not None:  # the journal, database or archive refuse writes
            bits |= StatusBits.ERROR
        if self._is_switching():
            bits |= StatusBits.SWITCHING
        return bits

    def publish_status(self, bits: StatusBits) -> None:
        self._published = bits
        active = self.book.active
        for sink in self.sinks:
            try:
                sink.set_status(bits, active.recipe.code if active else 0)
            except Exception:
                log.exception("sink %s refused the status", sink.name)

    def publish_current(self) -> None:
        self.publish_status(self.status_bits())

    def _watch(self) -> None:
        ticks = 0
        while not self._stop.wait(0.1):
            ticks += 1
            bits = self.status_bits()
            if bits != self._published:
                self.publish_status(bits)
            if ticks % 10 == 0:
                self._check_alarms()
                self._publish_state()
            for lane in self.lanes:
                lane.camera_errors = 0 if lane.source.state is CameraState.ACQUIRING else lane.camera_errors

    def _check_alarms(self) -> None:
        """The monitor's look, once a second: the station's readings into the alarm set."""
        try:
            counts = self.stats.counts
            down = {lane.camera_id: lane.source.state.value for lane in self.lanes
                    if lane.source.state in (CameraState.FAILED, CameraState.RECONNECTING)}  # fmt: skip
            down.update({cam: "lost" for cam in self._cameras_down if cam not in down})
            links = {}
            for sink in self.sinks:
                try:
                    links[sink.name] = sink.link_state.value
                except Exception:
                    links[sink.name] = "failed"
            fault = self.result_log.storage_fault()
            self.alarm_monitor.note_links({n: s for n, s in links.items() if n not in PLC_SINKS})
            self.alarm_monitor.check(Readings(
                counts.get("verdicts", 0), counts.get("fail_safe", 0), counts.get("fail_safe.timeout", 0), down,
                {n: s for n, s in links.items() if n in PLC_SINKS}, self.result_log.backlog(), fault,
            ))  # fmt: skip
        except Exception:  # the monitor never dies of one bad reading
            log.exception("alarm check failed")

    def mirrored_state(self) -> dict[str, object]:
        """Counters and link states for sinks that mirror the station (the MES server)."""
        counts = self.stats.counts
        cameras_up = all(lane.source.state is CameraState.ACQUIRING and not lane.camera_errors for lane in self.lanes)
        plc_links = [s.link_state.value for name in PLC_SINKS for s in self.sinks if s.name == name]
        active = self.book.active
        return {
            "inspected": counts.get("verdicts", 0), "rejected": counts.get("rejected", 0),
            "fail_safe": counts.get("fail_safe", 0), "deadline_misses": counts.get("fail_safe.timeout", 0),
            "camera_link": "connected" if cameras_up else "disconnected",
            "plc_link": plc_links[0] if plc_links else "connected",
            "active_recipe": active.recipe.id if active else None,
            "active_recipe_reason": self.book.active_reason,
            "alarms": tuple((a.kind.value, a.message) for a in self.alarm_set.snapshot()),
            **next((s.uplink_figures() for s in self.sinks if isinstance(s, UplinkFigures)), {}),
        }  # fmt: skip

    def _publish_state(self) -> None:
        mirrors = [sink for sink in self.sinks if isinstance(sink, StateMirror)]
        if not mirrors:
            return
        state = self.mirrored_state()
        for sink in mirrors:
            try:
                sink.update_state(**state)
            except Exception:
                log.exception("sink %s refused the state", sink.name)
