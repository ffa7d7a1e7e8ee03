"""A promotion is written to the recipe file (atomically, comments kept) and its rollback record
beside it: a station restarted from the same folders keeps the promoted model deciding, the
one-step rollback still works after the restart, and the station restarted after it runs the
old model again. The recipe folder watcher reloads the rewritten file as the book already has it."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from inference.engine import Engine
from line.flywheel.service import EngineFactory, Flywheel
from line.loop.station import Station
from line.recipes.book import RecipeBook
from line.recipes.model import Recipe
from line.results.archive import ImageArchive
from line.results.log import ResultLog
from tests.flywheel.helpers import factory, write_recipe
from tests.hmi.helpers import RecordingSink
from tests.line.fakes import ScriptedSource

PROD_SHA = hashlib.sha256(b"production model").hexdigest()
CAND_SHA = hashlib.sha256(b"candidate model").hexdigest()


@dataclass
class Running:
    station: Station
    sink: RecordingSink
    flywheel: Flywheel

    def decided_by(self, parts: int) -> list[str]:
        """The model (sha256) that decided each of the first ``parts`` verdicts of this run."""
        _wait(lambda: len(self.sink.messages) >= parts)
        with self.sink.lock:
            messages = [m for m in self.sink.messages[:parts] if not m.reason]
        assert messages, "every part fail-safed"

        def written() -> bool:
            self.flywheel.flush()
            return {m.result_id for m in messages} <= {r for r, _, _ in self.flywheel.store.decided_by_all()}

        _wait(written)
        decided = {r: sha for r, sha, _ in self.flywheel.store.decided_by_all()}
        return [decided[m.result_id] for m in messages]


def _wait(predicate, timeout_s: float = 30.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


@contextmanager
def station(tmp: Path, watch: bool = False, book_factory: EngineFactory = factory) -> Iterator[Running]:
    """A station started from ``tmp/recipes`` and ``tmp/state`` as they are (a restart)."""
    book = RecipeBook(tmp / "recipes", book_factory, check_models=False)
    assert book.switch(book.default_id(), "startup").ok
    sink = RecordingSink()
    src = ScriptedSource("cam1", ScriptedSource.Options(rate_hz=100.0, defective_parts=tuple(range(3, 10_000, 4))))
    st = Station("s1", book, [src], [sink], ResultLog(tmp / "state" / "results.db", ImageArchive(tmp / "state" / "ng", 50)),
                 fetch_timeout_s=0.2, recipe_watch_interval_s=3600.0 if watch else None)  # fmt: skip
    fly = Flywheel(tmp / "state" / "flywheel", st, factory)
    fly.attach()
    st.start()
    try:
        yield Running(st, sink, fly)
    finally:
        st.stop()
        fly.close()
        book.close()


def test_promotion_survives_a_restart_and_so_does_its_rollback(tmp_path: Path) -> None:
    folder = write_recipe(tmp_path / "recipes")
    recipe_file = folder / "r1.yaml"
    recipe_file.write_text("# cap line 3: approved by QA\n" + recipe_file.read_text())
    with station(tmp_path, watch=True) as run:
        assert set(run.decided_by(5)) == {PROD_SHA}
        assert not run.flywheel.promoter.can_rollback("r1")
        run.flywheel.register_candidate("r1", folder / "candidate.onnx", {"default": 0.95}, "qa")
        assert run.flywheel.promote("r1", "qa").ok
        text = recipe_file.read_text()
        assert "candidate.onnx" in text and "0.95" in text and text.startswith("# cap line 3: approved by QA\n")
        # the watcher sees the rewritten file: a reload that changes nothing and fails nothing
        watcher = run.station.recipe_watcher
        assert watcher is not None and watcher.check()
        assert watcher.last_error == "" and watcher.last_changes["changed"] == [] and run.station.book.invalid == {}
        n = len(run.sink.messages)
        assert run.station.book.active is not None and run.station.book.active.recipe.model.onnx.name == "candidate.onnx"
        assert run.decided_by(n + 5)[-1] == CAND_SHA
    assert not list(folder.glob(".*.tmp")) and not list(folder.glob(".*.check"))  # no temp file left behind

    with station(tmp_path) as run:  # restarted: the promoted model decides from the first part
        assert set(run.decided_by(5)) == {CAND_SHA}
        assert run.flywheel.promoter.can_rollback("r1")
        assert run.flywheel.rollback("r1", "qa").ok
        n = len(run.sink.messages)
        assert run.decided_by(n + 5)[-1] == PROD_SHA
        assert not run.flywheel.rollback("r1", "qa").ok  # one step only
    text = recipe_file.read_text()
    assert "model.onnx" in text and "candidate.onnx" not in text and "0.95" not in text and "default: 0.5" in text

    with station(tmp_path) as run:  # restarted again: the old model decides
        assert set(run.decided_by(5)) == {PROD_SHA}
        assert not run.flywheel.promoter.can_rollback("r1")
        history = run.flywheel.store.promotions("r1")
    assert [(h["action"], h["user"], h["from"], h["to"]) for h in history[:3]] == [
        ("rollback_refused", "qa", PROD_SHA, PROD_SHA), ("rollback", "qa", CAND_SHA, PROD_SHA), ("promote", "qa", PROD_SHA, CAND_SHA)]  # fmt: skip


def test_a_promotion_the_station_refuses_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    folder = write_recipe(tmp_path / "recipes")
    before = (folder / "r1.yaml").read_text()
    with station(tmp_path, book_factory=_production_only) as run:
        run.flywheel.register_candidate("r1", folder / "candidate.onnx", {"default": 0.95}, "qa")  # the shadow loads it
        result = run.flywheel.promote("r1", "qa")
        assert not result.ok and "still decides" in result.message
        assert run.station.book.recipes["r1"].model.onnx.name == "model.onnx"
        assert not run.flywheel.promoter.can_rollback("r1")
    assert (folder / "r1.yaml").read_text() == before


def _production_only(recipe: Recipe) -> Engine:
    """The station's engines: this one cannot load the candidate (a switch it refuses)."""
    if recipe.model.onnx.name == "candidate.onnx":
        raise RuntimeError("engine cannot load candidate.onnx")
    return factory(recipe)
