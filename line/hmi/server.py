"""Runs the HMI next to a station: uvicorn in its own thread, plus the live view (the
station's ``live_tap``), metrics (a station observer), and the switch audit (the recipe folder
watcher is the station's own). ``start_hmi`` wires it all, ``HmiService.close`` unwires and joins every thread.

uvicorn does not install signal handlers outside the main thread, so the CLI keeps its own.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import uvicorn

from line.app.config import HmiSection
from line.errors import ConfigError, Problem
from line.flywheel.service import Flywheel
from line.hmi.app import create_app
from line.hmi.auth import UserStore
from line.hmi.live import LiveView
from line.hmi.metrics import StationMetrics
from line.hmi.state import HmiContext
from line.login_guard import DEFAULT_POLICY, ThrottlePolicy
from line.loop.station import Station
from line.recipes.book import SwitchAudit

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 64
LOCAL_PROXIES = ("127.0.0.1", "::1")


class HmiServer:
    """uvicorn serving ``app`` in a thread; ``start`` returns once it listens."""

    def __init__(self, app: Any, host: str, port: int) -> None:
        # limit_concurrency: connections beyond it get 503 from uvicorn at once, so no client can
        # pile up work (or held login attempts) in the station's process. X-Forwarded-For/-Proto
        # are trusted from a reverse proxy on this host only (explicit: uvicorn would otherwise
        # read FORWARDED_ALLOW_IPS from the environment); see docs/security.md
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="off",
                                limit_concurrency=MAX_CONNECTIONS, proxy_headers=True,
                                forwarded_allow_ips=list(LOCAL_PROXIES))  # fmt: skip
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="hmi-server", daemon=True)
        self.host = host
        self.port = port

    def start(self, timeout_s: float = 10.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ConfigError([Problem("hmi", "port", f"the HMI could not listen on {self.host}:{self.port} (in use?)")])
            time.sleep(0.02)
        sockets = [s for server in self._server.servers for s in server.sockets]
        if sockets:
            self.port = int(sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def close(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=10)


class HmiService:
    def __init__(self, station: Station, config: HmiSection, login_policy: ThrottlePolicy = DEFAULT_POLICY,
                 flywheel: Flywheel | None = None) -> None:
        self.station = station
        self.config = config
        self.live = LiveView(config.live_fps, config.live_max_width, config.live_jpeg_quality)
        self.metrics = StationMetrics(station, self.live)
        self.watcher = station.recipe_watcher  # the station's: started and stopped by it
        self.ctx = HmiContext(station, config, UserStore(config.users), self.live, self.metrics, self.watcher, flywheel,
                              login_policy=login_policy)  # fmt: skip
        self.server = HmiServer(create_app(self.ctx), config.host, config.port)
        self._wired = False

    def _on_audit(self, audit: SwitchAudit) -> None:
        self.ctx.audits.append(audit)
        if not audit.ok:  # a successful switch is logged by the station itself
            self.station.result_log.event(
                "recipe_switch_refused", "warning", f"recipe {audit.from_id} -> {audit.to_id} by {audit.source} refused: {audit.message}",
                {"from": audit.from_id, "to": audit.to_id, "source": audit.source, "user": audit.user, "reason": audit.message,
                 "switch_s": round(audit.switch_s, 4)},
            )  # fmt: skip

    def start(self) -> None:
        self.station.live_tap = self.live
        self.station.observers.append(self.metrics.observe)
        self.station.book.audit_listeners.append(self._on_audit)
        self._wired = True
        try:
            self.server.start()
        except BaseException:
            self.close()
            raise
        log.warning("HMI on %s (%d users)", self.server.url, len(self.ctx.users))

    @property
    def url(self) -> str:
        return self.server.url

    def close(self) -> None:
        self.server.close()
        if self._wired:
            self._wired = False
            if self.station.live_tap is self.live:
                self.station.live_tap = None
            _remove(self.station.observers, self.metrics.observe)
            _remove(self.station.book.audit_listeners, self._on_audit)
        self.live.close()
        self.ctx.close()


def _remove(items: list[Any], item: Any) -> None:
    if item in items:
        items.remove(item)


def start_hmi(station: Station, config: HmiSection, login_policy: ThrottlePolicy = DEFAULT_POLICY,
              flywheel: Flywheel | None = None) -> HmiService:
    service = HmiService(station, config, login_policy, flywheel)
    service.start()
    return service
