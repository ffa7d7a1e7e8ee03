"""The recipes folder watcher: edits reload the book, a bad file is listed and never active,
prepared copies of a changed recipe are dropped."""

from __future__ import annotations

import os
import time
from pathlib import Path

from line.recipes.book import RecipeBook
from line.recipes.watch import RecipeWatcher
from tests.hmi.helpers import engine_factory, running_rig
from tests.line.fakes import RECIPE, write_recipes


def touch_later(path: Path, text: str) -> None:
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))  # a coarse-mtime filesystem still sees it


def test_edit_add_break_and_fix_recipes(tmp_path: Path) -> None:
    folder = write_recipes(tmp_path / "recipes", count=2)
    book = RecipeBook(folder, engine_factory(), warm_max=3, check_models=False)
    assert book.switch("r1", "test").ok and book.switch("r2", "test").ok and book.switch("r1", "test").ok
    watcher = RecipeWatcher(book)
    assert not watcher.check()
    touch_later(folder / "r2.yaml", RECIPE.format(id="r2", code=2, budget=55))
    assert watcher.check() and watcher.last_changes["changed"] == ["r2"]
    assert book.recipes["r2"].cycle_budget_ms == 55 and not book.is_warm("r2") and book.is_warm("r1")
    touch_later(folder / "r3.yaml", RECIPE.format(id="r3", code=3, budget=40))
    assert watcher.check() and watcher.last_changes["added"] == ["r3"]
    # a broken active recipe: listed as invalid, the running version stays active, never the bad one
    touch_later(folder / "r1.yaml", "id: r1\ncode: 1\nmodel: {onnx: model.onnx}\nclasses: []\n")
    assert watcher.check()
    assert "r1" not in book.recipes and any(p.endswith("r1.yaml") for p in book.invalid)
    assert book.active is not None and book.active.recipe.id == "r1" and book.active.recipe.cycle_budget_ms == 200
    refused = book.switch("r1", "hmi")
    assert not refused.ok and book.active.recipe.cycle_budget_ms == 200
    touch_later(folder / "r1.yaml", RECIPE.format(id="r1", code=1, budget=33))
    assert watcher.check() and not book.invalid
    assert book.switch("r1", "hmi").ok and book.active.recipe.cycle_budget_ms == 33
    book.close()


def test_watcher_thread_in_the_running_service(tmp_path: Path) -> None:
    with running_rig(tmp_path, recipes=2) as rig:
        (rig.recipes_dir / "bad.yaml").write_text("id: [not, a, string]\n")
        viewer = rig.client("viewer")
        rig.wait(lambda: bool(viewer.get("/api/recipes").json()["invalid"]))
        invalid = viewer.get("/api/recipes").json()["invalid"]
        assert invalid[0]["file"] == "bad.yaml" and invalid[0]["problems"]
        assert any("invalid recipe" in r for r in viewer.get("/healthz").json()["reasons"])
        assert rig.hmi.watcher is not None and rig.hmi.watcher.reloads >= 1
        time.sleep(0.1)


def test_oversized_recipe_file_is_refused_before_reading(tmp_path: Path) -> None:
    folder = write_recipes(tmp_path / "recipes", count=1)
    book = RecipeBook(folder, engine_factory(), warm_max=2, check_models=False)
    watcher = RecipeWatcher(book, max_file_bytes=4096)
    refreshes: list[int] = []
    real = book.refresh
    book.refresh = lambda: refreshes.append(1) or real()  # type: ignore[method-assign,func-returns-value]
    touch_later(folder / "huge.yaml", "id: huge\n" + "# padding\n" * 1000)
    assert not watcher.check() and refreshes == []  # never read
    assert "huge.yaml" in watcher.last_error and "huge" not in book.recipes
    (folder / "huge.yaml").unlink()
    touch_later(folder / "r2.yaml", RECIPE.format(id="r2", code=2, budget=40))
    assert watcher.check() and refreshes == [1] and watcher.last_error == ""
    book.close()


def test_reload_runs_on_the_watchers_own_thread(tmp_path: Path) -> None:
    import threading

    with running_rig(tmp_path, recipes=2) as rig:
        assert rig.hmi.watcher is not None
        threads: list[str] = []
        real = rig.station.book.refresh

        def recording() -> dict[str, list[str]]:
            threads.append(threading.current_thread().name)
            return real()

        rig.station.book.refresh = recording  # type: ignore[method-assign]
        touch_later(rig.recipes_dir / "r9.yaml", RECIPE.format(id="r9", code=9, budget=40))
        rig.wait(lambda: bool(threads))
        assert set(threads) == {"recipe-watch"}
