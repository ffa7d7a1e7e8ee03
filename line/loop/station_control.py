"""Control of the station: recipe switches, the remote halt and the PLC's, HMI's and MES's
requests, all run one at a time on the station's one bounded request worker (a switch never
races a command or a halt, and a flood of requests is refused, never queued without bound)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from line.loop.request_worker import RequestWorker
from line.loop.run_gate import RunGate, RunMode
from line.loop.station_monitor import StationMonitor
from line.loop.stats import StationStats
from line.recipes.book import PreparedRecipe, RecipeBook, SwitchResult
from line.results.log import ResultLog

log = logging.getLogger(__name__)

COMMAND_WAIT_S = 1.0
SWITCH_WAIT_S = 60.0  # an engine build on a recipe switch takes seconds, a TensorRT build longer

COMMAND_RESET_COUNTERS = 1
COMMAND_CLEAR_ALARMS = 2

# the remote halt (line.loop.run_gate), as OPC 40100-1 names its methods
HALT, STOP, ABORT, RESET, START = "halt", "stop", "abort", "reset", "start"
CONTROL_ACTIONS = (HALT, STOP, ABORT, RESET, START)
HALT_POLL_S = 0.005


@dataclass(frozen=True)
class ControlResult:
    ok: bool
    mode: str  # the RunMode value after the request
    message: str


class StationControl:
    """Implements the sinks' ``PlcRequests`` (``select_recipe_code``, ``command``)."""

    def __init__(self, book: RecipeBook, stats: StationStats, result_log: ResultLog, monitor: StationMonitor,
                 gate: RunGate | None = None, undecided: Callable[[], int] = lambda: 0,
                 budget_s: Callable[[], float] = lambda: 0.0) -> None:  # fmt: skip
        self.book = book
        self.gate = gate or RunGate()
        self._undecided = undecided  # parts acquired and not decided yet, over all lanes
        self._budget_s = budget_s  # a part's deadline after it is ready: bounds a graceful halt
        self.stats = stats
        self.result_log = result_log
        self.monitor = monitor
        self.requests = RequestWorker()
        self._switching = False
        book.listeners.append(self._on_switch)

    @property
    def switching(self) -> bool:
        """A recipe switch is being prepared (the SWITCHING status bit)."""
        return self._switching

    def request_switch(self, recipe_id: str, source: str, user: str = "") -> SwitchResult:
        """Switch the recipe on the request worker (one at a time, with the PLC's requests) and
        wait for the outcome; runs here when the worker is not running (not started, stopped)
        or this already is the worker."""
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
        self._switching = True
        try:
            return self.book.switch(recipe_id, source, user)
        finally:
            self._switching = False

    def _on_switch(self, new: PreparedRecipe, old: PreparedRecipe | None, source: str, user: str) -> None:
        data = {"from": old.recipe.id if old else None, "to": new.recipe.id, "source": source, "user": user,
                "prepare_s": round(new.prepare_s, 4)}  # fmt: skip
        audit = self.book.last_audit  # set by the book just before it calls its listeners
        if audit is not None and audit.ok and audit.to_id == new.recipe.id:
            data.update(prepare_s=round(audit.prepare_s, 4), switch_s=round(audit.switch_s, 4), warm=audit.warm)
        self.result_log.event("recipe_switch", "info", f"recipe {data['from']} -> {data['to']} by {source}", data)
        self.monitor.publish_current()

    def select_recipe_code(self, code: int, source: str) -> None:
        recipe = self.book.by_code(code)
        if recipe is None:
            self.monitor.raise_alarm(f"{source} selected unknown recipe code {code}")
            return
        if self.book.active is not None and self.book.active.recipe.id == recipe.id:
            return
        recipe_id = recipe.id
        if self.requests.submit(lambda: self._switch_now(recipe_id, source, "")) is None:
            self.monitor.raise_alarm(f"{source} recipe request {code} refused: requests are not being taken")

    def command(self, command: int, source: str) -> None:
        """Operator commands (from the PLC's or the HMI's request thread), run on the request
        worker in the order they came; the caller waits (briefly) until it ran, so a reset the
        HMI acknowledges has happened."""
        if not self.requests.running:  # not started (or stopped): nothing else is running either
            self._run_command(command, source)
            return
        done = self.requests.submit(lambda: self._run_command(command, source))
        if done is None:
            self.monitor.raise_alarm(f"{source} command {command} refused: requests are not being taken")
            return
        try:
            done.result(COMMAND_WAIT_S)
        except Exception as exc:  # still queued behind a recipe switch, or it failed (logged)
            log.warning("%s command %d not done yet: %s", source, command, type(exc).__name__)

    def _run_command(self, command: int, source: str) -> None:
        if command == COMMAND_RESET_COUNTERS:
            self.stats.reset()
        elif command == COMMAND_CLEAR_ALARMS:
            self.monitor.clear_alarms()
        self.result_log.event("command", "info", f"command {command} from {source}", {"command": command})

    # --- the remote halt -------------------------------------------------------------------
    def request_control(self, action: str, source: str, user: str = "") -> ControlResult:
        """Halt, stop, abort, reset or start the station's deciding, on the request worker (one
        at a time with recipe switches and commands), and wait for the outcome."""
        if action not in CONTROL_ACTIONS:
            return ControlResult(False, self.gate.mode.value, f"unknown control action {action!r}")
        if not self.requests.running or self.requests.is_current_thread():
            return self._control_now(action, source, user)
        done = self.requests.submit(lambda: self._control_now(action, source, user))
        if done is None:
            return ControlResult(False, self.gate.mode.value, "the station is not taking requests now (too many waiting)")
        try:
            result = done.result(SWITCH_WAIT_S)
        except TimeoutError:
            return ControlResult(False, self.gate.mode.value, f"{action} still waiting after {SWITCH_WAIT_S:.0f} s")
        assert isinstance(result, ControlResult)  # noqa: S101
        return result

    def _control_now(self, action: str, source: str, user: str) -> ControlResult:
        before = self.gate.mode
        ok, message = True, ""
        if action in (HALT, STOP):
            if before in (RunMode.DECIDING, RunMode.READY):
                self._halt_gracefully()
            message = "halted: every part gets the fail-safe result"
        elif action == ABORT:
            self.gate.abort()
            message = "aborted: parts in flight and every new part get the fail-safe result"
        elif action == RESET:
            self.monitor.clear_alarms()  # the operator's reset; a condition that holds comes back
            if before is RunMode.HALTED:
                self.gate.mode = RunMode.READY
            message = "reset: waiting for a start" if self.gate.mode is RunMode.READY else "reset: alarms cleared"
        else:  # START
            if before is RunMode.HALTING:
                ok, message = False, "still halting"
            else:
                self.gate.mode = RunMode.DECIDING
                message = "deciding parts"
        after = self.gate.mode
        self.monitor.publish_current()  # the PLC sees it now, not at the monitor's next look
        data = {"action": action, "from": before.value, "to": after.value, "source": source, "user": user, "ok": ok}
        self.result_log.event(
            "station_control", "info" if ok else "warning", f"{action} by {source} {user}: {before.value} -> {after.value}", data
        )
        log.info("%s by %s %s: %s -> %s (%s)", action, source, user, before.value, after.value, message)
        return ControlResult(ok, after.value, message)

    def _halt_gracefully(self) -> None:
        """New parts get the fail-safe result at once; the station is HALTED once the parts in
        flight are decided: none undecided, or their deadline passed (the watchdog decided them)."""
        self.gate.mode = RunMode.HALTING
        end = time.monotonic() + self._budget_s()
        while self._undecided() and time.monotonic() < end:
            time.sleep(HALT_POLL_S)
        self.gate.mode = RunMode.HALTED
