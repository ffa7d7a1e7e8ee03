"""The station starts on the recipe it was asked for or not at all (issue 20, section 3): a
missing or invalid ``--recipe`` / ``recipes.active`` refuses the start; a recipe restored from
the last switch is said in the snapshot (and so the HMI) with the reason; a saved recipe that
became invalid is an alarm and the configured one runs; a recipe whose engine cannot meet its
cycle budget is an alarm at start and a problem for ``validate --engines``."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

import line.app.assembly
import line.recipes.book
from line.app.assembly import build_station, load_station_config
from line.app.cli import main
from line.errors import ConfigError
from line.loop.station import Station
from line.recipes.model import Recipe
from tests.inference.onnx_models import constant_model

CORPUS_RECIPES = Path(__file__).resolve().parents[1] / "config_corpus" / "recipes"
STATION = """\
station: {id: start-1}
recipes: {dir: recipes, active: cap-a}
cameras: [{id: cam1, kind: synthetic, options: {width: 640, height: 512, rate_hz: 20}}]
plc: {modbus_server: {port: 0}}
storage: {dir: state}
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """cap-a (active in the config) and cap-b valid, cap-c invalid."""
    shutil.copytree(CORPUS_RECIPES, tmp_path / "recipes")
    constant_model(tmp_path / "recipes" / "model.onnx", np.zeros((1, 7, 4), np.float32))
    (tmp_path / "station.yaml").write_text(STATION)
    return tmp_path / "station.yaml"


def save_active(config: Path, recipe_id: str) -> None:
    (config.parent / "state").mkdir(exist_ok=True)
    (config.parent / "state" / "active_recipe").write_text(recipe_id + "\n")


@contextmanager
def started(config: Path, recipe: str | None = None) -> Iterator[Station]:
    station = build_station(load_station_config(config), active=recipe, file=str(config))
    station.start()
    try:
        yield station
    finally:
        station.stop()


@pytest.mark.parametrize(("recipe", "reason"), [("cap-z", "recipe 'cap-z' not found"), ("cap-c", "recipe 'cap-c' is invalid")])
def test_run_refuses_a_missing_or_invalid_requested_recipe(config: Path, recipe: str, reason: str) -> None:
    save_active(config, "cap-b")  # a valid saved recipe must not stand in for the one asked for
    result = subprocess.run([sys.executable, "-m", "line", "run", "-c", str(config), "--recipe", recipe, "--duration", "1"],
                            capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{config}: --recipe: {reason}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (config.parent / "state" / "results.db").exists()  # refused before anything opened


def test_config_recipe_invalid_refuses_even_with_a_valid_saved_one(config: Path) -> None:
    config.write_text(STATION.replace("active: cap-a", "active: cap-c"))
    save_active(config, "cap-b")
    with pytest.raises(ConfigError, match="recipes.active: recipe 'cap-c' is invalid"):
        build_station(load_station_config(config), file=str(config))


def test_configured_recipe_and_why(config: Path) -> None:
    with started(config) as station:
        snap = station.snapshot()
        assert snap["active_recipe"] == "cap-a"
        assert snap["active_recipe_reason"] == "recipes.active in the station config"
        assert not station.alarms
    assert (config.parent / "state" / "active_recipe").read_text() == "cap-a\n"


def test_restored_recipe_is_said_with_the_reason(config: Path) -> None:
    save_active(config, "cap-b")
    with started(config) as station:
        snap = station.snapshot()
        assert snap["active_recipe"] == "cap-b"
        reason = str(snap["active_recipe_reason"])
        assert reason.startswith("restored from") and "the config asks for cap-a" in reason
        assert not station.alarms


def test_requested_recipe_wins_over_the_saved_one(config: Path) -> None:
    save_active(config, "cap-b")
    with started(config, recipe="cap-a") as station:
        assert station.snapshot()["active_recipe"] == "cap-a"
        assert station.snapshot()["active_recipe_reason"] == "requested with --recipe"


@pytest.mark.parametrize(("saved", "state"), [("cap-c", "is invalid"), ("cap-q", "is no longer in the recipes folder")])
def test_saved_recipe_gone_bad_is_said_and_the_configured_one_runs(config: Path, saved: str, state: str) -> None:
    save_active(config, saved)
    with started(config) as station:
        snap = station.snapshot()
        assert snap["active_recipe"] == "cap-a"
        reason = str(snap["active_recipe_reason"])
        assert f"the saved recipe '{saved}'" in reason and state in reason and "started on cap-a" in reason
        assert any(reason in alarm for alarm in station.alarms), station.alarms


def test_switch_reason_follows_the_switch(config: Path) -> None:
    with started(config) as station:
        assert station.request_switch("cap-b", "hmi", "alice").ok
        assert station.snapshot()["active_recipe_reason"] == "switched by hmi (alice)"


def test_engine_below_budget_is_an_alarm_at_start(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(line.app.assembly, "engine_latency_ms", lambda *args, **kwargs: 6000.0)  # budget 5000
    with started(config) as station:
        assert any("recipe cap-a: the engine takes 6000.0 ms per frame, over its cycle_budget_ms 5000" in a for a in station.alarms)


def test_engine_within_budget_raises_nothing(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(line.app.assembly, "engine_latency_ms", lambda *args, **kwargs: 4999.0)
    with started(config) as station:
        assert not station.alarms


def test_engine_latency_is_the_median_of_timed_runs() -> None:
    ticks = iter([0.0, 0.010, 1.0, 1.030, 2.0, 2.020])  # 10, 30, 20 ms

    class Engine:
        calls = 0

        def detect(self, images: list[object]) -> list[object]:
            self.calls += 1
            return []

    engine = Engine()
    measured = line.recipes.book.engine_latency_ms(engine, 64, 64, "Mono8", runs=3, clock=lambda: next(ticks))  # type: ignore[arg-type]
    assert engine.calls == 3 and measured == pytest.approx(20.0)
    recipe = Recipe.model_validate(line.recipes.book.read_yaml(CORPUS_RECIPES / "cap-a.yaml") | {"cycle_budget_ms": 15})
    assert line.recipes.book.budget_problem(recipe, measured) is not None
    assert line.recipes.book.budget_problem(recipe, 15.0) is None


def test_validate_engines_names_the_recipe_over_budget(config: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    monkeypatch.setattr(line.recipes.book, "engine_latency_ms", lambda engine, *args, **kwargs: 7000.0)
    assert main(["validate", str(config)]) == 0  # without --engines nothing is built or timed
    assert main(["validate", "--engines", str(config)]) == 1
    out, err = capsys.readouterr()
    assert f"{config}: recipe cap-b: engine 7000.00 ms per frame, budget 5000 ms" in out
    for recipe_id in ("cap-a", "cap-b"):
        assert (f"{config.parent / 'recipes' / recipe_id}.yaml: cycle_budget_ms: recipe {recipe_id}: the engine takes "
                "7000.0 ms per frame, over its cycle_budget_ms 5000") in err  # fmt: skip


def test_validate_engines_times_the_real_engine(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--engines", str(config)]) == 0
    out, _ = capsys.readouterr()
    assert "recipe cap-a: engine " in out and "budget 5000 ms" in out
