"""The station: the facade that owns the loop's parts and their lifecycle.

One job per part: :class:`~line.loop.inspector.Inspector` inspects a part (the lanes' decider),
:class:`~line.loop.verdict_emitter.VerdictEmitter` turns a decided part into the journal entry,
the PLC write, the log record and the observers' outcome,
:class:`~line.loop.station_control.StationControl` runs recipe switches and requests on one
bounded worker, :class:`~line.loop.station_monitor.StationMonitor` keeps the status bits, the
alarms and the mirrored state. The station wires them, starts and stops them in order
(docs/architecture.md, "Threads"), and moves through explicit states
(:mod:`line.loop.station_state`).
"""

from __future__ import annotations

import logging
import time
from types import TracebackType

from camera.source import CameraState, FrameSource
from line.loop.alarms import AlarmKind, AlarmMonitor, AlarmSet
from line.loop.batcher import Batcher
from line.loop.capabilities import HostBufferRegistrar
from line.loop.finisher import Finisher
from line.loop.gc_watch import GcWatch, freeze_startup_heap
from line.loop.inspector import Inspector, LiveTap
from line.loop.lane import CameraLane
from line.loop.request_worker import RequestWorker
from line.loop.run_gate import RunGate
from line.loop.station_control import ControlResult, StationControl
from line.loop.station_monitor import StationMonitor
from line.loop.station_report import CameraSnapshot, StationSnapshot
from line.loop.station_state import StationLifecycle, StationState
from line.loop.stats import StationStats
from line.loop.verdict_emitter import Observer, Outcome, VerdictEmitter
from line.recipes.book import RecipeBook, SwitchResult
from line.recipes.watch import RecipeWatcher
from line.results.log import ResultLog
from plc.vocabulary import ResultSink, StatusBits

__all__ = ["LiveTap", "Observer", "Outcome", "Station"]

log = logging.getLogger(__name__)

# a stop's bounds: each lane (a hung camera or engine), the batcher and finisher (a hung
# engine), then the result log (a locked database); the sinks bound their own closes
LANE_STOP_S = 1.5
ENGINE_STOP_S = 1.0
LOG_CLOSE_S = 2.0
REQUESTS_STOP_S = 0.5
WATCHER_STOP_S = 2.0


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
        gc_freeze: bool = True,
        retire_decided: bool = True,
        recipe_watch_interval_s: float | None = None,
    ) -> None:
        if book.active is None:
            raise ValueError("the recipe book has no active recipe")
        self.station_id = station_id
        self.book = book
        self.sinks = sinks
        self.result_log = result_log
        self.stats = StationStats()
        self.gc_watch = GcWatch()
        self._gc_freeze = gc_freeze
        self._lifecycle = StationLifecycle()
        self.emitter = VerdictEmitter(sinks, result_log, self.stats)
        self.lanes: list[CameraLane] = []
        self.gate = RunGate()  # halted remotely: every part gets the fail-safe result
        self.monitor = StationMonitor(self.lanes, sinks, result_log, book, self.stats,
                                      is_running=lambda: self.state is StationState.RUNNING,
                                      is_switching=lambda: self.control.switching, gate=self.gate)  # fmt: skip
        self.control = StationControl(book, self.stats, result_log, self.monitor, self.gate,
                                      undecided=lambda: sum(lane.undecided() for lane in self.lanes),
                                      budget_s=lambda: self.inspector.budget_s())  # fmt: skip
        self.inspector = Inspector(book, self.emitter, self.stats, archive_ng, self.monitor.camera_event, self.gate)
        self.lanes.extend(CameraLane(s, self.inspector, queue_size, overflow_policy, fetch_timeout_s,
                                     retire_decided=retire_decided) for s in sources)  # fmt: skip
        self._batching = (max_batch, pad_to, batch_wait_s) if max_batch > 1 and len(sources) > 1 else None
        self.finisher: Finisher | None = None
        for lane in self.lanes:
            lane.pipelined = self._batching is not None
            lane.early_launch = early_launch and not lane.pipelined
        # the recipes folder, polled while the station runs: edits reload the book (None: off)
        self.recipe_watcher = RecipeWatcher(book, recipe_watch_interval_s) if recipe_watch_interval_s else None
        self._final_recipe: str | None = None
        self.stop_report: dict[str, object] = {}

    # --- the parts, as the faces (HMI, sinks, tools) read them ----------------------------------
    @property
    def state(self) -> StationState:
        return self._lifecycle.state

    @property
    def observers(self) -> list[Observer]:
        """Called with each decided part's :class:`Outcome` on the deciding thread: return at once."""
        return self.emitter.observers

    def subscribe(self, observer: Observer) -> None:
        self.emitter.observers.append(observer)

    def unsubscribe(self, observer: Observer) -> None:
        if observer in self.emitter.observers:
            self.emitter.observers.remove(observer)

    @property
    def live_tap(self) -> LiveTap | None:
        return self.inspector.live_tap

    @live_tap.setter
    def live_tap(self, tap: LiveTap | None) -> None:
        self.inspector.live_tap = tap

    @property
    def frame_taps(self) -> list[LiveTap]:
        """Taps with the live tap's contract (the flywheel's capture and shadow): on the hot path,
        return at once."""
        return self.inspector.frame_taps

    @frame_taps.setter
    def frame_taps(self, taps: list[LiveTap]) -> None:
        self.inspector.frame_taps = taps  # replaced whole, never changed in place: lanes iterate it

    @property
    def batcher(self) -> Batcher | None:
        return self.inspector.batcher

    @property
    def archive_ng(self) -> bool:
        return self.inspector.archive_ng

    @property
    def verdicts_since_start(self) -> int:
        return self.emitter.verdicts_since_start

    @property
    def alarm_set(self) -> AlarmSet:
        return self.monitor.alarm_set

    @property
    def alarm_monitor(self) -> AlarmMonitor:
        return self.monitor.alarm_monitor

    @property
    def requests(self) -> RequestWorker:
        return self.control.requests

    @property
    def switching(self) -> bool:
        return self.control.switching

    @property
    def final_recipe(self) -> str | None:
        """The recipe that was active when the station stopped (None before the stop)."""
        return self._final_recipe

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Start every thread and port; raises ``IllegalTransition`` unless just built."""
        self._lifecycle.advance(StationState.STARTING)
        try:
            self._start_parts()
        except BaseException:
            self._lifecycle.advance(StationState.STOPPED)
            raise
        self._lifecycle.advance(StationState.RUNNING)
        self.monitor.start()

    def _start_parts(self) -> None:
        if self._gc_freeze:
            # Everything loaded so far (models, schemas, libraries) lives as long as the process:
            # frozen out of the collector, a full collection (which holds the GIL, so every lane
            # waits) no longer walks it. Cyclic garbage made before this point is collected first.
            freeze_startup_heap()
        self.gc_watch.install()
        self._register_camera_buffers()
        self.result_log.start()
        self.control.requests.start()
        for sink in self.sinks:
            sink.start()
        self.monitor.publish_status(StatusBits.READY | StatusBits.RUNNING)
        if self._batching is not None:
            max_batch, pad_to, wait_s = self._batching
            batcher = Batcher(max_batch, pad_to, wait_s, expected=self._lanes_up)
            self.finisher = Finisher()
            batcher.on_done = self.finisher.wake
            self.inspector.batcher = batcher
            for lane in self.lanes:
                lane.finisher = self.finisher
        for lane in self.lanes:
            lane.start()
        if self.recipe_watcher is not None:
            self.recipe_watcher.start()

    def stop(self) -> None:
        """Decide every part already acquired, flush the log, close the ports; every step has
        an upper bound (a hung camera or engine, a locked database, an unreachable PLC), and
        what a step left behind is logged and kept in :attr:`stop_report`. A station that is
        not running (never started, already stopped) is left as it is."""
        if self.state is not StationState.RUNNING:
            return
        self._lifecycle.advance(StationState.STOPPING)
        t0 = time.monotonic()
        stuck: list[str] = []
        if self.recipe_watcher is not None and not self.recipe_watcher.close(WATCHER_STOP_S):
            stuck.append("recipe-watch")
        for lane in self.lanes:
            stuck += lane.stop(LANE_STOP_S)
        if self.finisher is not None and not self.finisher.close(ENGINE_STOP_S):
            stuck.append(self.finisher.name)
        batcher = self.inspector.batcher
        if batcher is not None and not batcher.close(ENGINE_STOP_S):
            stuck.append(batcher.name)
        if not self.monitor.close():
            stuck.append(self.monitor.name)
        if not self.control.requests.close(REQUESTS_STOP_S):
            stuck.append(self.control.requests.name)
        self.monitor.publish_status(StatusBits.NONE)
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
            "log_kept_in_journal": self.result_log.journal.uncommitted(), "log_lost": self.result_log.lost, "log_spilled": self.result_log.spilled,
        }  # fmt: skip
        self._lifecycle.advance(StationState.STOPPED)
        if stuck:
            log.warning("stopped with threads left behind: %s", ", ".join(stuck))

    def __enter__(self) -> Station:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def _register_camera_buffers(self) -> None:
        """Page-lock the cameras' buffers for a GPU engine now, not on their second frame
        (each registration is ~1 ms, and 8 cameras x 6 buffers stalled the first 100 ms)."""
        active = self.book.active
        engine = active.engine if active else None
        if not isinstance(engine, HostBufferRegistrar):
            return
        for lane in self.lanes:
            try:
                engine.register_host_buffers(lane.source.host_buffers())
            except Exception:  # an optimisation: unregistered buffers are still uploaded
                log.warning("camera %s: buffers not page-locked up front", lane.camera_id, exc_info=True)

    def _lanes_up(self) -> int:
        """Lanes whose camera delivers frames: the most one batch can gather."""
        return sum(1 for lane in self.lanes if lane.source.state is CameraState.ACQUIRING)

    # --- what the faces call -------------------------------------------------------------------
    def budget_s(self) -> float:
        return self.inspector.budget_s()

    def camera_event(self, camera_id: str, kind: str, message: str) -> None:
        self.monitor.camera_event(camera_id, kind, message)

    def raise_alarm(self, message: str, kind: AlarmKind | None = None) -> None:
        self.monitor.raise_alarm(message, kind)

    def status_bits(self) -> StatusBits:
        """The status the station is in now (the monitor publishes it within 0.1 s)."""
        return self.monitor.status_bits()

    @property
    def published_status(self) -> StatusBits:
        """The status bits last written to the PLC."""
        return self.monitor.published_status

    def request_switch(self, recipe_id: str, source: str, user: str = "") -> SwitchResult:
        return self.control.request_switch(recipe_id, source, user)

    def request_control(self, action: str, source: str, user: str = "") -> ControlResult:
        """The remote halt: ``halt``/``stop`` (after the parts in flight), ``abort`` (at once),
        ``reset``, ``start`` (``line.loop.run_gate``); audited in the result log."""
        return self.control.request_control(action, source, user)

    # PlcRequests (the Modbus sinks call these from their request threads)
    def select_recipe_code(self, code: int, source: str) -> None:
        self.control.select_recipe_code(code, source)

    def command(self, command: int, source: str) -> None:
        self.control.command(command, source)

    @property
    def phase(self) -> str:
        """starting (built, not started yet) | running | stopped: a station that is still
        starting (models loading, the MES process spawning) is not shown as failed."""
        state = self.state
        if state is StationState.RUNNING:
            return "running"
        return "starting" if state in (StationState.BUILT, StationState.STARTING) else "stopped"

    @property
    def alarms(self) -> list[str]:
        """Active alarms as text lines (most recent first), for logs and older readers."""
        return [f"{a.kind.value}: {a.message}" for a in self.alarm_set.snapshot()]

    # --- reports -------------------------------------------------------------------------------
    def _active_recipe_id(self) -> str | None:
        active = self.book.active
        return active.recipe.id if active else self._final_recipe

    def snapshot(self) -> dict[str, object]:
        """The JSON-ready mapping the HMI, the metrics endpoint and the bench read."""
        log_ = self.result_log
        return {
            "station": self.station_id,
            "active_recipe": self._active_recipe_id(),
            # why it is the active one: the start-up choice (configured, --recipe, restored from the
            # last switch, or a saved recipe that had become invalid) or who switched it since
            "active_recipe_reason": self.book.active_reason,
            "status": int(self.published_status),
            "run_mode": self.gate.mode.value,  # deciding | halting | halted | ready (the remote halt)
            "cameras": {lane.camera_id: {"state": lane.source.state.value, **lane.source.counters.snapshot(),
                                         "queue_dropped": lane.queue.dropped} for lane in self.lanes},  # fmt: skip
            "sinks": {s.name: {"link": s.link_state.value, **s.counters()} for s in self.sinks},
            "log": {"written": log_.written, "dropped": log_.dropped, "pending": log_.pending(), "backlog": log_.backlog(),
                    "storage_fault": log_.storage_fault(), "journal_bytes": log_.journal.size_bytes(), "lost": log_.lost},
            "verdicts_since_start": self.verdicts_since_start,
            "gc_pause_ms": self.gc_watch.snapshot(),
            **self.stats.snapshot(),
        }  # fmt: skip

    def view(self) -> StationSnapshot:
        """The station now, typed (for programs that embed it)."""
        counts = self.stats.counts
        cameras = tuple(CameraSnapshot(lane.camera_id, lane.source.state.value, lane.parts, lane.queue.dropped)
                        for lane in self.lanes)  # fmt: skip
        return StationSnapshot(
            self.station_id, self.state.value, self._active_recipe_id(), int(self.published_status),
            self.verdicts_since_start, counts.get("passed", 0), counts.get("rejected", 0), counts.get("fail_safe", 0),
            cameras, tuple(self.alarms),
        )  # fmt: skip

    def stop_summary(self) -> dict[str, object]:
        """What a stop tells the operator and the exit status: counted from the station's own
        start, never from the counters the operator resets."""
        return {
            "parts": sum(lane.parts for lane in self.lanes), "verdicts": self.verdicts_since_start,
            "kept_in_journal": self.result_log.journal.uncommitted(), "lost": self.result_log.lost,
            **self.stop_report,
        }  # fmt: skip
