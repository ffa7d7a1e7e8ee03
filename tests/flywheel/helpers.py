"""A real station (scripted camera, a threshold-honouring scripted engine, real result log)
with the flywheel and the HMI on a free port, and users of every role."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from inference.config import EngineOptions
from inference.detections import Detections
from inference.engine import DetectionResult, ImageInput
from line.app.config import HmiSection
from line.flywheel.service import Flywheel
from line.hmi.server import HmiService, start_hmi
from line.loop.station import Station
from line.recipes.book import RecipeBook
from line.recipes.model import Recipe
from line.results.archive import ImageArchive
from line.results.log import ResultLog
from tests.hmi.helpers import RecordingSink
from tests.line.fakes import ScriptedEngine, ScriptedSource

PASSWORDS = {"viewer": "viewer-pw", "operator": "operator-pw", "qa": "qa-pw", "admin": "admin-pw"}
RECIPE = """\
id: r1
code: 1
model: {onnx: model.onnx, layout: yolov8}
classes: [scratch, dent]
thresholds: {default: 0.5}
reject:
  - {classes: [scratch], bin: 1}
cycle_budget_ms: 500
capture: {rejects: true, uncertain_band: 0.0, pass_share: %s, per_minute: 1000, per_hour: 10000, per_day: 100000}
"""


class ThresholdEngine(ScriptedEngine):
    """A defect (class scratch, score 0.9) on frames whose first pixel is 255, dropped below the
    recipe's class threshold like a real decoder: a candidate with threshold 0.95 misses it."""

    def detect(self, images: Sequence[ImageInput]) -> list[DetectionResult]:
        out = []
        for image in images:
            if int(image.data.flat[0]) == 255 and self.spec.score_thresholds[0] <= 0.9:
                det = Detections(np.array([[10, 10, 30, 30]], np.float32), np.array([0.9], np.float32), np.array([0], np.int32))
            else:
                det = Detections.empty()
            out.append(DetectionResult(det, {"preprocess": 0.0, "engine": 0.0, "decode": 0.0}))
        return out


def factory(recipe: Recipe) -> ThresholdEngine:
    return ThresholdEngine(recipe.detector_spec(), EngineOptions())


def users_config() -> dict[str, dict[str, str]]:
    from line.passwords import hash_password

    return {name: {"role": name, "password_hash": hash_password(pw, n=1024)} for name, pw in PASSWORDS.items()}


@dataclass
class FlyRig:
    station: Station
    source: ScriptedSource
    sink: RecordingSink
    flywheel: Flywheel
    hmi: HmiService | None
    folder: Path

    @property
    def url(self) -> str:
        assert self.hmi is not None
        return self.hmi.url

    def login(self, user: str) -> httpx.Client:
        client = httpx.Client(base_url=self.url, timeout=30)
        assert client.post("/api/login", json={"username": user, "password": PASSWORDS[user]}).status_code == 200
        return client

    @staticmethod
    def wait(predicate: Callable[[], bool], timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            assert time.monotonic() < deadline, "condition not met in time"
            time.sleep(0.02)


def write_recipe(folder: Path, pass_share: float = 0.0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(b"production model")
    (folder / "candidate.onnx").write_bytes(b"candidate model")
    (folder / "r1.yaml").write_text(RECIPE % pass_share)
    return folder


@contextmanager
def fly_rig(tmp: Path, hmi: bool = True, pass_share: float = 0.0, start: bool = True, shadow_nice: int = 0,
            **source: Any) -> Iterator[FlyRig]:  # fmt: skip
    """``shadow_nice`` 0: these tests look at what the shadow finds, and must see it while other
    work keeps the cores busy; the shipped default (19) is tested on its own."""
    folder = write_recipe(tmp / "recipes", pass_share)
    book = RecipeBook(folder, factory, check_models=False)
    assert book.switch("r1", "startup").ok
    src = ScriptedSource("cam1", ScriptedSource.Options(**{"rate_hz": 100.0, **source}))
    sink = RecordingSink()
    station = Station("s1", book, [src], [sink], ResultLog(tmp / "state" / "results.db", ImageArchive(tmp / "state" / "ng", 50)),
                      fetch_timeout_s=0.2)  # fmt: skip
    fly = Flywheel(tmp / "state" / "flywheel", station, factory, shadow_nice=shadow_nice)
    fly.attach()
    service = None
    if start:
        station.start()
    try:
        if hmi:
            service = start_hmi(station, HmiSection(enabled=True, port=0, users=users_config()), flywheel=fly)
        yield FlyRig(station, src, sink, fly, service, folder)
    finally:
        if service is not None:
            service.close()
        station.stop()
        fly.close()


