"""The quality loop on the demo line: the demo model decides, a weaker copy of it (its weights
perturbed, so it misses defects) runs in shadow on the synthetic camera's parts and shows its
disagreements; promotion lets it decide with no part left without a verdict and no model
mixed inside a part; rollback restores the demo model; and production's verdicts on the same
frames (the synthetic camera replays them by seed) are the same with and without the shadow."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from camera.synthetic import SyntheticSource
from inference.config import EngineOptions
from inference.engine import open_engine
from line.flywheel.service import Flywheel
from line.loop.station import Station
from line.recipes.book import RecipeBook
from line.recipes.model import Recipe
from line.results.archive import ImageArchive
from line.results.log import ResultLog
from plc.vocabulary import ResultCode
from tests.flywheel.weaker import weaker_copy
from tests.hmi.helpers import RecordingSink

DEMO = Path(__file__).resolve().parents[2] / "line" / "demo_station" / "recipes"
pytestmark = pytest.mark.skipif(not (DEMO / "demo" / "demo-parts.onnx").exists(), reason="demo model not present")


def factory(recipe: Recipe):  # noqa: ANN201
    return open_engine(recipe.detector_spec(), EngineOptions())


def _station(tmp: Path, parts: int) -> tuple[Station, RecordingSink, Flywheel, Path]:
    folder = tmp / "recipes"
    shutil.copytree(DEMO, folder, ignore=shutil.ignore_patterns("demo-parts-strict.yaml"))
    book = RecipeBook(folder, factory, warm_shape=(1024, 1280, "Mono8"))
    assert book.switch("demo-parts", "startup").ok
    camera = SyntheticSource("cam1", SyntheticSource.Options(rate_hz=4, defect_rate=0.5, seed=11, max_parts=parts))
    sink = RecordingSink()
    station = Station("demo", book, [camera], [sink], ResultLog(tmp / "state" / "results.db", ImageArchive(tmp / "state" / "ng", 50)))
    fly = Flywheel(tmp / "state" / "flywheel", station, factory, shadow_nice=0)  # see helpers.fly_rig
    fly.attach()
    return station, sink, fly, weaker_copy(folder / "demo" / "demo-parts.onnx", tmp / "weaker.onnx")


def _judged_since(sink: RecordingSink, n: int) -> int:
    """Parts judged by a model (not fail-safed by a loaded host) after the first ``n`` verdicts."""
    with sink.lock:
        return sum(1 for m in sink.messages[n:] if not m.reason)


def _wait(predicate, timeout_s: float = 120.0) -> None:  # noqa: ANN001
    import time

    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_weaker_candidate_in_shadow_then_promoted_and_rolled_back(tmp_path: Path) -> None:
    station, sink, fly, weaker = _station(tmp_path, parts=10_000)
    production_sha = hashlib.sha256((tmp_path / "recipes" / "demo" / "demo-parts.onnx").read_bytes()).hexdigest()
    weaker_sha = hashlib.sha256(weaker.read_bytes()).hexdigest()
    station.start()
    try:
        fly.register_candidate("demo-parts", weaker, None, "qa")
        runner = fly.shadows["demo-parts"]
        _wait(lambda: runner.judged - runner.agreed >= 3 and runner.judged >= 20)
        report = fly.shadow_report("demo-parts")
        assert report is not None and report["agreement"] < 1.0 and report["disagreements_by_kind"]
        assert report["disagreement_images"] and report["latency_ms"]["p50"] is not None
        n = len(sink.messages)
        assert fly.promote("demo-parts", "qa").ok
        _wait(lambda: _judged_since(sink, n) >= 5)
        n = len(sink.messages)
        assert fly.rollback("demo-parts", "qa").ok
        _wait(lambda: _judged_since(sink, n) >= 5)
    finally:
        station.stop()
    with sink.lock:
        messages = list(sink.messages)
    fly.flush()
    decided = {r: sha for r, sha, _ in fly.store.decided_by_all()}
    fly.close()
    assert [m.part_id for m in messages] == list(range(1, len(messages) + 1))  # every part got a verdict
    judged = [m for m in messages if not m.reason]
    shas = [decided[m.result_id] for m in judged]
    runs = [shas[0]] + [b for a, b in zip(shas, shas[1:], strict=False) if a != b]
    assert runs == [production_sha, weaker_sha, production_sha]  # one switch each way, never mixed


def _replay(tmp: Path, shadow: bool) -> dict[int, int]:
    station, sink, fly, weaker = _station(tmp, parts=40)
    if shadow:
        fly.register_candidate("demo-parts", weaker, None, "qa")
    station.start()
    try:
        _wait(lambda: len(sink.messages) >= 40)
    finally:
        station.stop()
        judged = fly.shadows["demo-parts"].judged if shadow else 1
        fly.close()
    assert judged > 0
    return {m.part_id: int(m.result_code) for m in sink.messages if not m.reason}


def test_production_verdicts_unchanged_by_a_shadow_on_the_demo_line(tmp_path: Path) -> None:
    without, with_shadow = _replay(tmp_path / "a", False), _replay(tmp_path / "b", True)
    both = without.keys() & with_shadow.keys()
    assert len(both) >= 20 and sum(without[p] == int(ResultCode.REJECT) for p in both) >= 5
    assert {p: without[p] for p in both} == {p: with_shadow[p] for p in both}
