"""Control of the station: recipe switches and the PLC's, HMI's and MES's requests, all run
one at a time on the station's one bounded request worker (a switch never races a command,
and a flood of requests is refused, never queued without bound)."""

from __future__ import annotations

import logging

from line.loop.request_worker import RequestWorker
from line.loop.station_monitor import StationMonitor
from line.loop.stats import StationStats
from line.recipes.book import PreparedRecipe, RecipeBook, SwitchResult
from line.results.log import ResultLog

log = logging.getLogger(__name__)

COMMAND_WAIT_S = 1.0
SWITCH_WAIT_S = 60.0  # an engine build on a recipe switch takes seconds, a TensorRT build longer

COMMAND_RESET_COUNTERS = 1
COMMAND_CLEAR_ALARMS = 2


class StationControl:
    """Implements the sinks' ``PlcRequests`` (``select_recipe_code``, ``command``)."""

    def __init__(self, book: RecipeBook, stats: StationStats, result_log: ResultLog, monitor: StationMonitor) -> None:
        self.book = book
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
