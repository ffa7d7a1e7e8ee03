"""A real station (scripted camera and engine from tests/line/fakes.py, real threads, real
result log and NG archive) with the HMI served by uvicorn on a free port."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from inference.config import EngineOptions
from line.app.config import HmiSection
from line.hmi.server import HmiService, start_hmi
from line.login_guard import DEFAULT_POLICY, ThrottlePolicy
from line.loop.station import Station
from line.recipes.book import RecipeBook
from line.recipes.model import Recipe
from line.results.archive import ImageArchive
from line.results.log import ResultLog
from line.results.reader import ResultLogReader
from plc.vocabulary import Delivery, ResultSink, VerdictMessage
from tests.line.fakes import ScriptedEngine, ScriptedSource, write_recipes

PASSWORDS = {"viewer": "viewer-pw", "operator": "operator-pw", "admin": "admin-pw"}


def users_config() -> dict[str, dict[str, str]]:
    from line.passwords import hash_password

    return {name: {"role": name, "password_hash": hash_password(pw, n=1024)} for name, pw in PASSWORDS.items()}


class RecordingSink(ResultSink):
    name = "recorder"

    def __init__(self) -> None:
        self.messages: list[VerdictMessage] = []
        self.lock = threading.Lock()

    def publish(self, verdict: VerdictMessage) -> Delivery:
        with self.lock:
            self.messages.append(verdict)
            return Delivery(True, self.name, seq=len(self.messages), ack_time=time.perf_counter())


@dataclass
class Rig:
    station: Station
    source: ScriptedSource
    sink: RecordingSink
    hmi: HmiService
    recipes_dir: Path

    @property
    def url(self) -> str:
        return self.hmi.url

    def client(self, user: str | None = None) -> httpx.Client:
        auth = (user, PASSWORDS[user]) if user else None
        return httpx.Client(base_url=self.url, auth=auth, timeout=30)

    def login(self, user: str) -> httpx.Client:
        client = httpx.Client(base_url=self.url, timeout=30)
        assert client.post("/api/login", json={"username": user, "password": PASSWORDS[user]}).status_code == 200
        return client

    def events(self, kind: str) -> list[tuple[int, str, str, str, str]]:
        reader = ResultLogReader(self.station.result_log.db_path)
        try:
            return reader.events(kind)
        finally:
            reader.close()

    def wait(self, predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            assert time.monotonic() < deadline, "condition not met in time"
            time.sleep(0.02)


def engine_factory(broken: tuple[str, ...] = (), slow: dict[str, float] | None = None) -> Callable[[Recipe], Any]:
    def factory(recipe: Recipe) -> Any:
        time.sleep((slow or {}).get(recipe.id, 0.0))  # a cold preparation that takes a while
        if recipe.id in broken:
            raise RuntimeError(f"model of {recipe.id} cannot be loaded")
        return ScriptedEngine(recipe.detector_spec(), EngineOptions())

    return factory


@contextmanager
def running_rig(tmp_path: Path, recipes: int = 3, broken: tuple[str, ...] = ("r3",), hmi: dict[str, Any] | None = None,
                slow: dict[str, float] | None = None, login_policy: ThrottlePolicy = DEFAULT_POLICY,
                **source_options: Any) -> Iterator[Rig]:  # fmt: skip
    folder = write_recipes(tmp_path / "recipes", count=recipes)
    book = RecipeBook(folder, engine_factory(broken, slow), warm_max=2, check_models=False)
    assert book.switch("r1", "startup").ok
    source_options.setdefault("rate_hz", 50.0)
    source = ScriptedSource("cam1", ScriptedSource.Options(**source_options))
    log = ResultLog(tmp_path / "state" / "results.db", ImageArchive(tmp_path / "state" / "ng", 50))
    sink = RecordingSink()
    station = Station("s1", book, [source], [sink], log, fetch_timeout_s=0.2, recipe_watch_interval_s=0.2)
    options = {"enabled": True, "port": 0, "users": users_config(), **(hmi or {})}
    station.start()
    service = None
    try:
        service = start_hmi(station, HmiSection(**options), login_policy)
        yield Rig(station, source, sink, service, folder)
    finally:
        if service is not None:
            service.close()
        station.stop()
