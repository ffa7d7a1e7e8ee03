"""Recipe faults under a running station: a recipe file replaced by garbage (picked up by the
recipe watcher), and a switch whose preparation fails (the ONNX file corrupted on disk after
its YAML validated, or an engine factory that raises). Each is refused with its reason, the
active recipe stays, and parts keep being decided by it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import line.app.assembly
from line.recipes.book import RecipeBook
from line.recipes.watch import RecipeWatcher
from tests.reliability.faults import (
    assert_every_part_logged_once,
    real_verdicts,
    running_station,
    set_recipe,
    wait_for,
)
from tests.reliability.station_env import RECIPE, make_env

GARBAGE = "id: [unclosed\n\tcode: :::\n\x00"


def _more_verdicts(station, n: int = 25) -> None:  # type: ignore[no-untyped-def]
    """Deciding goes on: ``n`` more parts judged by the model (fail-safes do not count)."""
    at = real_verdicts(station)
    wait_for(lambda: real_verdicts(station) >= at + n, 30, f"{n} more real verdicts")


def test_recipe_files_replaced_by_garbage_while_running(tmp_path: Path) -> None:
    config = make_env(tmp_path)
    recipes = tmp_path / "recipes"
    with running_station(config) as station:
        book = station.book
        watcher = RecipeWatcher(book, interval_s=0.1)
        watcher.start()
        try:
            _more_verdicts(station)
            (recipes / "beta.yaml").write_text(GARBAGE)  # another product's file
            wait_for(lambda: str(recipes / "beta.yaml") in book.invalid, 10, "beta listed invalid")
            # let that reload finish: a change made while the watcher reloads is missed
            wait_for(lambda: watcher.reloads >= 1, 10, "the watcher's reload")
            assert "beta" not in book.recipes
            refused = station.request_switch("beta", "test")
            assert not refused.ok and "beta" in refused.message
            (recipes / "alpha.yaml").write_text("id: alpha\ncode: not-a-number\n")  # the active one
            wait_for(lambda: str(recipes / "alpha.yaml") in book.invalid, 10, "alpha listed invalid")
            problems = book.invalid[str(recipes / "alpha.yaml")]
            assert any(p.path == "code" for p in problems), problems
            assert book.active is not None and book.active.recipe.id == "alpha"
            _more_verdicts(station)  # judged by the prepared alpha
            assert watcher.reloads >= 2 and not watcher.last_error
        finally:
            watcher.close()
    rows = assert_every_part_logged_once(station, config)
    assert all(r.recipe_id == "alpha" for r in rows)
    assert not [r for r in rows if r.reason == "inference_error"]


def test_switch_to_recipe_with_corrupt_onnx_is_refused(tmp_path: Path) -> None:
    config = make_env(tmp_path)
    recipes = tmp_path / "recipes"
    (recipes / "beta.onnx").write_bytes((recipes / "tiny.onnx").read_bytes())
    set_recipe(config, "beta", model={**RECIPE["model"], "onnx": "beta.onnx"})  # type: ignore[dict-item]
    with running_station(config) as station:
        _more_verdicts(station)
        assert "beta" in station.book.recipes  # validated at start, model check included
        (recipes / "beta.onnx").write_bytes(b"\x08\x07garbage, not a protobuf" * 50)
        result = station.request_switch("beta", "test")
        assert not result.ok
        assert result.message, "a refusal must carry its reason"
        assert station.book.active is not None and station.book.active.recipe.id == "alpha"
        assert station.book.last_audit is not None and not station.book.last_audit.ok
        _more_verdicts(station)
    rows = assert_every_part_logged_once(station, config)
    assert all(r.recipe_id == "alpha" for r in rows)


def test_switch_with_failing_engine_build_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = make_env(tmp_path)
    real_open = line.app.assembly.open_engine

    def open_engine(spec, options):  # type: ignore[no-untyped-def]
        if "beta" in str(getattr(spec, "name", "")) or _building_beta[0]:
            raise RuntimeError("engine build failed: out of device memory (injected)")
        return real_open(spec, options)

    _building_beta = [False]
    monkeypatch.setattr(line.app.assembly, "open_engine", open_engine)
    with running_station(config) as station:
        _more_verdicts(station)
        _building_beta[0] = True
        result = station.request_switch("beta", "test")
        _building_beta[0] = False
        assert not result.ok and "out of device memory" in result.message
        assert station.book.active is not None and station.book.active.recipe.id == "alpha"
        assert (
            not station.switching
            and station.book.preparing is not None
            and station.book.preparing.stage == "failed"
        )
        _more_verdicts(station)
        switched_ns = time.time_ns()
        assert station.request_switch("beta", "test").ok  # the fault gone, the same switch works
        _more_verdicts(station)
    rows = assert_every_part_logged_once(station, config)
    assert all(r.recipe_id == "alpha" for r in rows if r.t_verdict_ns < switched_ns)
    assert rows[-1].recipe_id == "beta"


def test_watcher_does_not_miss_a_change_made_during_a_reload(tmp_path: Path) -> None:
    make_env(tmp_path)
    recipes = tmp_path / "recipes"
    book = RecipeBook(recipes, lambda recipe: None, check_models=False)  # type: ignore[arg-type,return-value]
    watcher = RecipeWatcher(book, interval_s=60)  # polled by hand below, the thread is never started
    refresh = book.refresh

    def slow_refresh() -> dict[str, list[str]]:
        changes = refresh()
        (recipes / "alpha.yaml").write_text(GARBAGE)  # an operator saves while the reload runs
        return changes

    book.refresh = slow_refresh  # type: ignore[method-assign]
    (recipes / "beta.yaml").write_text(GARBAGE)
    assert watcher.check()
    book.refresh = refresh  # type: ignore[method-assign]
    watcher.check()
    assert str(recipes / "alpha.yaml") in book.invalid, "the edit of alpha.yaml was never loaded"
