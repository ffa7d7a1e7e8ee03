"""The station loop: acquire → infer → decide → signal, one frame at a time per camera,
with a deadline per part (docs/architecture.md, "Deadlines and fail-safe").

Hot path per part: engine.detect → decision → journal append → PLC sinks (bounded) → hand the
record to the result log's writer. Logging to SQLite, image encoding and MES publication run
elsewhere. Sinks never kill the loop: a failing sink yields ``Delivery(delivered=False)``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from camera.frame import Frame
from camera.source import CameraState, FrameSource
from inference.engine import DetectionResult, ImageInput
from line.loop.alarms import (
    ERROR_KINDS,
    AlarmKind,
    AlarmMonitor,
    AlarmSet,
    Readings,
    kind_of_message,
)
from line.loop.batcher import Batcher
from line.loop.decision import Verdict
from line.loop.finisher import Finisher, PendingInspection
from line.loop.gc_watch import GcWatch, freeze_startup_heap
from line.loop.lane import CameraLane, PartTicket
from line.loop.request_worker import RequestWorker
from line.loop.station_report import mes_state, snapshot
from line.loop.stats import StationStats
from line.loop.verdict_records import build_message, build_record
from line.recipes.book import PreparedRecipe, RecipeBook, SwitchResult
from line.recipes.model import Recipe
from line.results.log import ResultLog, ResultRecord
from plc.vocabulary import Delivery, ResultCode, ResultSink, StatusBits, VerdictMessage

log = logging.getLogger(__name__)

PLC_SINKS = ("modbus_client", "opcua_client", "modbus_server")  # the links to the PLC, in mes_state's order

# a stop's bounds: each lane (a hung camera or engine), then the result log (a locked
# database); the sinks bound their own closes (an unreachable PLC)
LANE_STOP_S = 1.5
LOG_CLOSE_S = 2.0
REQUESTS_STOP_S = 0.5
COMMAND_WAIT_S = 1.0
SWITCH_WAIT_S = 60.0  # an engine build on a recipe switch takes seconds, a TensorRT build longer


@dataclass(frozen=True)
class Outcome:
    """What observers (the demo's scorer, the HMI, tests) see of each decided part."""

    ticket: PartTicket
    record: ResultRecord
    verdict: Verdict
    deliveries: tuple[Delivery, ...]


Observer = Callable[[Outcome], None]


class LiveTap(Protocol):
    def offer(self, frame: Frame, verdict: Verdict, recipe: Recipe) -> None: ...


class Station:
    def __init__(
        self,
        station_id: str,
        book: RecipeBook,
        sources: list[FrameSource],
        sinks: list[ResultSink],
        result_log: ResultLog,
        queue_size: int = 4,
        overflow_policy: str = "drop_oldest",
        fetch_timeout_s: float = 1.0,
        archive_ng: bool = True,
        max_batch: int = 1,
        pad_to: int | None = None,
        batch_wait_s: float = 0.001,
        early_launch: bool = True,
    ) -> None:
        if book.active is None:
            raise ValueError("the recipe book has no active recipe")
        self.station_id = station_id
        self.book = book
        self.sinks = sinks
        self.result_log = result_log
        self.archive_ng = archive_ng
        self.stats = StationStats()
        self.gc_watch = GcWatch()
        self.observers: list[Observer] = []
        self.lanes = [CameraLane(s, self, queue_size, overflow_policy, fetch_timeout_s) for s in sources]
        self._emit_lock = threading.Lock()
        self._batching = (max_batch, pad_to, batch_wait_s) if max_batch > 1 and len(sources) > 1 else None
        self.batcher: Batcher | None = None
        self.finisher: Finisher | None = None
        for lane in self.lanes:
            lane.pipelined = self._batching is not None
            lane.early_launch = early_launch and not lane.pipelined
        self._status = StatusBits.READY
        self._running = False
        self._monitor: threading.Thread | None = None
        self._stop = threading.Event()
        self.alarm_set = AlarmSet()  # the one set every face shows (line/loop/alarms.py)
        self.alarm_monitor = AlarmMonitor(self.alarm_set)
        self._cameras_down: set[str] = set()  # lanes whose camera failed (camera_lost .. camera_back)
        self._final_recipe: str | None = None
        self.switching = False
        # verdicts emitted since this station started: the operator's counters (``stats``) are
        # reset from the HMI or the PLC, this is what the stop summary and the exit status read
        self.verdicts_since_start = 0
        self.requests = RequestWorker()
        self.stop_report: dict[str, object] = {}
        # optional live-view tap (the HMI): ``offer`` is called on the hot path and must return
        # at once (it throttles, and copies a downscaled image only when one is due)
        self.live_tap: LiveTap | None = None
        # more taps with the same contract (the flywheel's capture and shadow, line/flywheel/)
        self.frame_taps: list[LiveTap] = []
        book.listeners.append(self._on_switch)

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        # Everything loaded so far (models, schemas, libraries) lives as long as the process:
        # frozen out of the collector, a full collection (which holds the GIL, so every lane
        # waits) no longer walks it. Cyclic garbage made before this point is collected first.
        if os.environ.get("LINECHECK_GC_FREEZE", "1") != "0":  # "0": A/B measurements
            freeze_startup_heap()
        self.gc_watch.install()
        self._register_camera_buffers()
        self.result_log.start()
        self.requests.start()
        for sink in self.sinks:
            sink.start()
        self._publish_status(StatusBits.READY | StatusBits.RUNNING)
        if self._batching is not None:
            max_batch, pad_to, wait_s = self._batching
            self.batcher = Batcher(max_batch, pad_to, wait_s, expected=self._lanes_up)
            self.finisher = Finisher()
            self.batcher.on_done = self.finisher.wake
            for lane in self.lanes:
                lane.finisher = self.finisher
        for lane in self.lanes:
            lane.start()
        self._running = True
        self._monitor = threading.Thread(target=self._watch, name="station-monitor", daemon=True)
        self._monitor.start()

    def stop(self) -> None:
        """Decide every part already acquired, flush the log, close the ports; every step has
        an upper bound (a hung camera, a locked database, an unreachable PLC), and what a step
        left behind is logged and kept in :attr:`stop_report`."""
        if not self._running:
            return
        self._running = False
        t0 = time.monotonic()
        stuck: list[str] = []
        for lane in self.lanes:
            stuck += lane.stop(LANE_STOP_S)
        if self.finisher is not None:
            self.finisher.close()
        if self.batcher is not None:
            self.batcher.close()
        self._stop.set()
        if self._monitor is not None:
            self._monitor.join(1.0)
            if self._monitor.is_alive():
                stuck.append(self._monitor.name)
        if not self.requests.close(REQUESTS_STOP_S):
            stuck.append(self.requests.name)
        self._publish_status(StatusBits.NONE)
        self.gc_watch.remove()
        for sink in self.sinks:
            try:
                sink.close()
            except Exception:
                log.exception("sink %s failed to close", sink.name)
        self.result_log.close(LOG_CLOSE_S)
        self._final_recipe = self.book.active.recipe.id if self.book.active else None
        self.book.close()
        self.stop_report = {
            "stop_s": round(time.monotonic() - t0, 3), "threads_left": stuck,
            "log_kept_in_journal": self.result_log.journal.uncommitted(), "log_lost": self.result_log.lost,
        }  # fmt: skip
        if stuck:
            log.warning("stopped with threads left behind: %s", ", ".join(stuck))

    def _register_camera_buffers(self) -> None:
        """Page-lock the cameras' buffers for a GPU engine now, not on their second frame
        (each registration is ~1 ms, and 8 cameras x 6 buffers stalled the first 100 ms)."""
        active = self.book.active
        register = getattr(active.engine, "register_host_buffers", None) if active else None
        if register is None:
            return
        for lane in self.lanes:
            try:
                register(lane.source.host_buffers())
            except Exception:  # an optimisation: unregistered buffers are still uploaded
                log.warning("camera %s: buffers not page-locked up front", lane.camera_id, exc_info=True)

    def _lanes_up(self) -> int:
        """Lanes whose camera delivers frames: the most one batch can gather."""
        return sum(1 for lane in self.lanes if lane.source.state is CameraState.ACQUIRING)

    # --- Decider (called by lanes) -----------------------------------------------------------
    def budget_s(self) -> float:
        active = self.book.active
        return (active.recipe.cycle_budget_ms if active else 40.0) / 1000.0

    def submit(self, ticket: PartTicket, frame: Frame) -> PendingInspection | None:
        """Start judging a part; None when its deadline already passed (decided fail-safe).

        With a batcher this returns at once, so the lane can hand over its next frame while
        this one is in the batch: the GPU keeps working while lanes decide and write to the PLC.
        """
        if ticket.claimed:  # its deadline passed while it waited: already decided fail-safe
            self.stats.count("late_discarded")
            self.stats.slow_parts.offer_part(ticket, True)
            return None
        prepared = self.book.active  # read once: this part is judged by exactly this recipe
        assert prepared is not None  # noqa: S101 - the constructor guarantees an active recipe
        t0 = ticket.stamps["submitted"] = time.perf_counter()
        image = ImageInput(frame.data, frame.pixel_format)
        if self.batcher is not None:
            return PendingInspection(prepared, t0, self.batcher.submit(prepared.engine, image), None)
        return PendingInspection(prepared, t0, None, prepared.engine.detect([image])[0])

    def launch(self, ticket: PartTicket, frame: Frame) -> PendingInspection | None:
        """From the camera's thread: start the engine on this frame if it is idle and can run
        without blocking (a GPU engine queues the work and returns); None: inspect as usual."""
        prepared = self.book.active
        if prepared is None or self.batcher is not None or ticket.claimed:
            return None
        t0 = ticket.stamps["submitted"] = time.perf_counter()
        launched = prepared.engine.try_launch([ImageInput(frame.data, frame.pixel_format)])
        return None if launched is None else PendingInspection(prepared, t0, None, None, launched)

    def abandon(self, pending: PendingInspection) -> None:
        """A launched part that will not be decided here (dropped, shut down): free the engine."""
        pending.prepared.engine.finish(pending.launched)

    def complete(self, ticket: PartTicket, frame: Frame, pending: PendingInspection) -> None:
        """Decide and signal a submitted part (raises what the engine raised: the lane fail-safes)."""
        prepared = pending.prepared
        if pending.launched is not None:  # first: finishing gives the engine back
            result: DetectionResult | None = prepared.engine.finish(pending.launched)[0]
        else:
            result = pending.result if pending.request is None else Batcher.wait(pending.request)
        assert result is not None  # noqa: S101
        t_detected = ticket.stamps["detected"] = time.perf_counter()
        verdict = prepared.policy.decide(result.detections)
        t_decided = ticket.stamps["decided"] = time.perf_counter()
        timings = result.timings_ms  # each result's own dict (the engine copies it per image)
        timings["acquire_wait"] = (pending.t0 - frame.t_ready) * 1000
        timings["detect"] = (t_detected - pending.t0) * 1000  # the engine call as the station sees it
        timings["decision"] = (t_decided - t_detected) * 1000
        if self.live_tap is not None:
            try:
                self.live_tap.offer(frame, verdict, prepared.recipe)
            except Exception:
                log.exception("live view tap failed")
        for tap in self.frame_taps:
            try:
                tap.offer(frame, verdict, prepared.recipe)
            except Exception:
                log.exception("frame tap failed")
        late = t_decided > ticket.deadline
        if late:  # judged too late: the part gets the fail-safe verdict
            self.stats.count("late_discarded")
            self._emit(ticket, prepared, prepared.policy.fail_safe("timeout"), timings, None)
        else:  # the NG picture is copied after the PLC write (the frame is held until we return)
            ng_view = frame.data if (self.archive_ng and verdict.result_code is ResultCode.REJECT) else None
            late = not self._emit(ticket, prepared, verdict, timings, ng_view)
            if late:
                self.stats.count("late_discarded")
        self.stats.slow_parts.offer_part(ticket, late, timings, pending.request)

    def fail_safe(self, ticket: PartTicket, reason: str) -> None:
        prepared = self.book.active
        assert prepared is not None  # noqa: S101
        if reason == "timeout":  # the watchdog, at the deadline (the part's timeline shows it)
            ticket.stamps["deadline"] = time.perf_counter()
        self._emit(ticket, prepared, prepared.policy.fail_safe(reason), {}, None)

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

    # --- emission ----------------------------------------------------------------------------
    def _emit(
        self, ticket: PartTicket, prepared: PreparedRecipe, verdict: Verdict, timings: dict[str, float],
        ng_view: np.ndarray | None,
    ) -> bool:
        if not ticket.claim():
            return False
        now = time.perf_counter()
        processing_us = int((now - ticket.t_ready) * 1e6)
        if "engine" in timings:  # what the station adds around its network, part by part: free
            # of the network's own run-to-run spread, which on a shared CPU is larger than this
            timings["beyond_engine"] = processing_us / 1000 - timings["engine"]
        recipe = prepared.recipe
        record = build_record(ticket, recipe, verdict, processing_us)
        archive = self.result_log.archive
        image_ref = f"{record.result_id}.{archive.fmt}" if ng_view is not None and archive else ""
        message = build_message(ticket, recipe, verdict, record, now, image_ref)
        self.result_log.journal_append(record)  # before the PLC write: crash-durable
        with self._emit_lock:
            deliveries = tuple(self._publish(sink, message) for sink in self.sinks)
            self.verdicts_since_start += 1
        t_ack = time.perf_counter()
        if "deadline" not in ticket.stamps:  # the real verdict's write, not the watchdog's
            ticket.stamps["acked"] = t_ack
        plc = next((d for d in deliveries if d.seq is not None), None)
        record.delivered = int(all(d.delivered for d in deliveries)) if deliveries else None
        record.plc_seq = plc.seq if plc else None
        if deliveries:
            self.result_log.journal_delivery(record)
        timings["plc_write"] = (t_ack - now) * 1000
        record.timings_json = json.dumps({k: round(v, 3) for k, v in timings.items()})
        if ng_view is not None:
            record.image = ng_view.copy()
        self.result_log.submit(record)
        self._count(verdict, deliveries)
        self.stats.record(processing_us / 1000, (t_ack - ticket.t_ready) * 1000 if deliveries else None, timings)
        outcome = Outcome(ticket, record, verdict, deliveries)
        for observer in self.observers:
            try:
                observer(outcome)
            except Exception:  # an observer never kills the loop
                log.exception("observer failed")
        return True

    def _publish(self, sink: ResultSink, message: VerdictMessage) -> Delivery:
        try:
            return sink.publish(message)
        except Exception as exc:  # a sink is a side effect: it becomes an event, not a crash
            self.stats.count(f"sink_error.{sink.name}")
            return Delivery(False, sink.name, error=f"{type(exc).__name__}: {exc}")

    def _count(self, verdict: Verdict, deliveries: tuple[Delivery, ...]) -> None:
        self.stats.count("verdicts")
        code = verdict.result_code
        self.stats.count({ResultCode.PASS: "passed", ResultCode.REJECT: "rejected"}.get(code, "fail_safe"))
        if verdict.reason:
            self.stats.count(f"fail_safe.{verdict.reason}")
        for d in deliveries:
            if not d.delivered:
                self.stats.count(f"undelivered.{d.sink}")

    # --- status, alarms, switching -------------------------------------------------------------
    def raise_alarm(self, message: str, kind: AlarmKind | None = None) -> None:
        """Raise an alarm in the station's one set (every face shows it). ``kind`` None: told
        from the message."""
        log.warning("ALARM %s", message)
        self.alarm_set.raise_(kind or kind_of_message(message), message)

    @property
    def phase(self) -> str:
        """starting (built, not started yet) | running | stopped: a station that is still
        starting (models loading, the MES process spawning) is not shown as failed."""
        if self._running:
            return "running"
        return "stopped" if self._monitor is not None else "starting"

    @property
    def alarms(self) -> list[str]:
        """Active alarms as text lines (most recent first), for logs and older readers."""
        return [f"{a.kind.value}: {a.message}" for a in self.alarm_set.snapshot()]

    def _status_bits(self) -> StatusBits:
        bits = StatusBits.READY | (StatusBits.RUNNING if self._running else StatusBits.NONE)
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
        if self.switching:
            bits |= StatusBits.SWITCHING
        return bits

    def _publish_status(self, bits: StatusBits) -> None:
        self._status = bits
        active = self.book.active
        for sink in self.sinks:
            try:
                sink.set_status(bits, active.recipe.code if active else 0)
            except Exception:
                log.exception("sink %s refused the status", sink.name)

    def _watch(self) -> None:
        ticks = 0
        while not self._stop.wait(0.1):
            ticks += 1
            bits = self._status_bits()
            if bits != self._status:
                self._publish_status(bits)
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

    def _publish_state(self) -> None:
        """Counters and link states for sinks that mirror the station (the MES server)."""
        state = mes_state(self)
        for sink in self.sinks:
            update = getattr(sink, "update_state", None)
            if update is not None:
                try:
                    update(**state)
                except Exception:
                    log.exception("sink %s refused the state", sink.name)

    def request_switch(self, recipe_id: str, source: str, user: str = "") -> SwitchResult:
        """Switch the recipe on the station's request worker (one at a time, with the PLC's
        requests) and wait for the outcome; runs here when the worker is not running (not
        started, stopped) or this already is the worker."""
        if not self.requests.running or self.requests.is_current_thread():
            return self._switch_now(recipe_id, source, user)
        done = self.requests.submit(lambda: self._switch_now(recipe_id, source, user))
        if done is None:
            return SwitchResult(False, recipe_id, "the station is not taking requests now (too many waiting)")
        try:
            result = done.result(SWITCH_WAIT_S)
        except TimeoutError:
            return SwitchResult(False, recipe_id, f"still switching after {SWITCH_WAIT_S:.0f} s; see the events")
        assert isinstance(result, SwitchResult)  # noqa: S101
        return result

    def _switch_now(self, recipe_id: str, source: str, user: str) -> SwitchResult:
        self.switching = True
        try:
            return self.book.switch(recipe_id, source, user)
        finally:
            self.switching = False

    def _on_switch(self, new: PreparedRecipe, old: PreparedRecipe | None, source: str, user: str) -> None:
        data = {"from": old.recipe.id if old else None, "to": new.recipe.id, "source": source, "user": user,
                "prepare_s": round(new.prepare_s, 4)}  # fmt: skip
        audit = self.book.last_audit  # set by the book just before it calls its listeners
        if audit is not None and audit.ok and audit.to_id == new.recipe.id:
            data.update(prepare_s=round(audit.prepare_s, 4), switch_s=round(audit.switch_s, 4), warm=audit.warm)
        self.result_log.event("recipe_switch", "info", f"recipe {data['from']} -> {data['to']} by {source}", data)
        self._publish_status(self._status_bits())

    # PlcRequests -------------------------------------------------------------------------
    def select_recipe_code(self, code: int, source: str) -> None:
        recipe = self.book.by_code(code)
        if recipe is None:
            self.raise_alarm(f"{source} selected unknown recipe code {code}")
            return
        if self.book.active is not None and self.book.active.recipe.id == recipe.id:
            return
        recipe_id = recipe.id
        if self.requests.submit(lambda: self._switch_now(recipe_id, source, "")) is None:
            self.raise_alarm(f"{source} recipe request {code} refused: requests are not being taken")

    def command(self, command: int, source: str) -> None:
        """Operator commands (from the PLC's or the HMI's request thread), run on the station's
        request worker in the order they came; the caller waits (briefly) until it ran, so a reset
        the HMI acknowledges has happened."""
        if not self.requests.running:  # not started (or stopped): nothing else is running either
            self._run_command(command, source)
            return
        done = self.requests.submit(lambda: self._run_command(command, source))
        if done is None:
            self.raise_alarm(f"{source} command {command} refused: requests are not being taken")
            return
        try:
            done.result(COMMAND_WAIT_S)
        except Exception as exc:  # still queued behind a recipe switch, or it failed (logged)
            log.warning("%s command %d not done yet: %s", source, command, type(exc).__name__)

    def _run_command(self, command: int, source: str) -> None:
        if command == 1:
            self.stats.reset()
        elif command == 2:
            self.alarm_set.clear_all()  # a condition that still holds is raised again within a second
            for lane in self.lanes:
                lane.camera_errors = 0
        self.result_log.event("command", "info", f"command {command} from {source}", {"command": command})

    def snapshot(self) -> dict[str, object]:
        return snapshot(self)
