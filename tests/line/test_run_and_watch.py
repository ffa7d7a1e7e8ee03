"""``linecheck run`` goes through the run module without the demo's ground-truth scorer (a
real line has no ground truth), and a station without an HMI still reloads its recipes folder:
the watcher is the station's."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from line.app.demo import GroundTruthScore, attach_scorer
from line.app.run import status_line, summary
from tests.line.fakes import RECIPE
from tests.line.test_station import make_station
from tests.reliability.station_env import linecheck, make_env

pytestmark = pytest.mark.timeout(180)


def test_run_reports_no_ground_truth_score(tmp_path: Path) -> None:
    config = make_env(tmp_path)
    proc = linecheck("run", "-c", str(config), "--duration", "3", "--json", "--free-ports")
    out, _ = proc.communicate(timeout=150)
    assert proc.returncode == 0, out[-3000:]
    result = json.loads(out.strip().splitlines()[-1])
    assert result["parts"] == result["verdicts"] > 0
    assert "recall" not in result and "false_reject_rate" not in result
    assert "recall=" not in out


def test_the_demo_scorer_adds_its_fields(tmp_path: Path) -> None:
    station, _, _ = make_station(tmp_path)
    score = attach_scorer(station)
    assert isinstance(score, GroundTruthScore) and score in station.observers
    scored = summary(station, score.summary)
    assert scored["recall"] is None and scored["false_reject_rate"] is None  # nothing scored yet: no NaN in JSON
    assert "recall=-" in status_line(0.0, scored)
    assert "recall" not in status_line(0.0, summary(station))


def test_a_station_without_hmi_reloads_its_recipes_folder(tmp_path: Path) -> None:
    station, _, _ = make_station(tmp_path, rate_hz=50)
    assert station.recipe_watcher is None  # off unless asked for (build_station: recipes.watch)
    folder = tmp_path / "recipes"
    from line.loop.station import Station

    watched = Station("s1", station.book, [], [], station.result_log, recipe_watch_interval_s=0.05)
    assert watched.recipe_watcher is not None
    reloaded = threading.Event()
    watched.recipe_watcher.listeners.append(lambda changes: reloaded.set())
    with watched:
        (folder / "r9.yaml").write_text(RECIPE.format(id="r9", code=9, budget=200.0))
        assert reloaded.wait(60)
        assert "r9" in watched.book.recipes
    assert "recipe-watch" not in {t.name for t in threading.enumerate()}


def test_the_assembly_gives_the_station_its_watcher(tmp_path: Path) -> None:
    from line.app.assembly import build_station, load_station_config

    config = load_station_config(make_env(tmp_path))
    station = build_station(config)
    try:
        assert station.recipe_watcher is not None and station.recipe_watcher.interval_s == config.recipes.watch_interval_s
    finally:
        for lane in station.lanes:
            lane.source.close()
        station.book.close()
    off = config.model_copy(update={"recipes": config.recipes.model_copy(update={"watch": False})})
    station = build_station(off)
    try:
        assert station.recipe_watcher is None
    finally:
        for lane in station.lanes:
            lane.source.close()
        station.book.close()


def test_the_moved_watch_fields_say_where_they_went(tmp_path: Path) -> None:
    import yaml

    from line.app.assembly import load_station_config
    from line.errors import ConfigError

    config = make_env(tmp_path)
    data = yaml.safe_load(config.read_text())
    data.setdefault("hmi", {})["watch_recipes"] = False
    config.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as caught:
        load_station_config(config)
    assert any("hmi.watch_recipes is now recipes.watch" in p.reason for p in caught.value.problems), caught.value.problems
