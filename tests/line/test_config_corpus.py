"""The broken-config corpus (tests/config_corpus): ``linecheck validate`` refuses exactly the
files ``linecheck run`` refuses, with the same reason; ``run`` prints that reason, exits 2,
shows no traceback and refuses before it opens anything (no storage folder is created).

Each corpus file says in ``# expect:`` lines what its refusal must say. Station files are
run as they are; a broken recipe is run as the active recipe of a station made around it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from line.app.cli import main
from line.recipes.book import MAX_FILE_BYTES
from tests.inference.onnx_models import constant_model

CORPUS = Path(__file__).resolve().parents[1] / "config_corpus"
STATIONS = sorted(p.stem for p in (CORPUS / "station").glob("*.yaml"))
RECIPES = sorted(p.stem for p in (CORPUS / "recipe").glob("*.yaml"))
STATION_AROUND = """\
station: {{id: corpus-2}}
recipes: {{dir: recipes, active: {recipe_id}}}
cameras: [{{id: cam1, kind: synthetic, options: {{width: 640, height: 512, rate_hz: 20}}}}]
plc: {{modbus_server: {{port: 0}}}}
storage: {{dir: var}}
"""


def expected(path: Path) -> list[str]:
    return [line.removeprefix("# expect: ") for line in path.read_text().splitlines() if line.startswith("# expect: ")]


def problem_lines(stderr: str) -> list[str]:
    """The problems printed (``file: field: reason``), without log lines and warnings."""
    return [line for line in stderr.splitlines() if line and not line[:4].isdigit() and not line.startswith("warning:")]


def run_station(root: Path, config: str, duration: float = 0.5) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "line", "run", "-c", config, "--duration", str(duration)],
                          cwd=root, capture_output=True, text=True, timeout=300, check=False)  # fmt: skip


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, subprocess.CompletedProcess[str]]]]:
    """A copy of the corpus with its model, and every refusal's ``run`` done once (in parallel)."""
    root = tmp_path_factory.mktemp("corpus")
    shutil.copytree(CORPUS, root, dirs_exist_ok=True)
    constant_model(root / "recipes" / "model.onnx", np.zeros((1, 7, 4), np.float32))  # never detects
    for name in RECIPES:  # each broken recipe as the active recipe of its own station
        folder = root / "around" / name
        (folder / "recipes").mkdir(parents=True)
        shutil.copy(root / "recipes" / "model.onnx", folder / "recipes" / "model.onnx")
        shutil.copy(root / "recipe" / f"{name}.yaml", folder / "recipes" / f"{name}.yaml")
        (folder / "station.yaml").write_text(STATION_AROUND.format(recipe_id=name))
    configs = {f"station/{n}": f"station/{n}.yaml" for n in STATIONS if n != "good"}
    configs |= {f"recipe/{n}": f"around/{n}/station.yaml" for n in RECIPES}
    with ThreadPoolExecutor(max_workers=4) as pool:
        runs = dict(zip(configs, pool.map(lambda c: run_station(root, c), configs.values()), strict=True))
    # refused before anything was opened: no result log, no journal, no saved recipe
    created = [p for p in [root / "var", *(root / "around").glob("*/var")] if p.exists()]
    assert not created, created
    runs["station/good"] = run_station(root, "station/good.yaml")
    yield root, runs


def validate(root: Path, file: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    monkeypatch.chdir(root)
    status = main(["validate", file])
    out, err = capsys.readouterr()
    return status, out, err


def test_corpus_size() -> None:
    assert len(STATIONS) - 1 + len(RECIPES) >= 30  # realistic broken files, besides the good station


@pytest.mark.parametrize("name", STATIONS)
def test_station_file(name: str, corpus: tuple[Path, dict[str, subprocess.CompletedProcess[str]]],
                      capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    root, runs = corpus
    file = f"station/{name}.yaml"
    status, out, err = validate(root, file, capsys, monkeypatch)
    run = runs[f"station/{name}"]
    assert "Traceback" not in run.stderr, run.stderr
    if name == "good":
        assert status == 0 and out.startswith(f"{file}: ok (starts on recipe cap-a"), out + err
        assert run.returncode == 0, run.stderr
        return
    problems = problem_lines(err)
    assert status == 1 and problems, out + err
    assert all(line.startswith(f"{file}: ") or line.startswith(str(root)) for line in problems), problems
    for reason in expected(root / file):
        assert any(reason in line for line in problems), (reason, problems)
    assert run.returncode == 2, run.stdout + run.stderr
    assert problem_lines(run.stderr) == problems


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_file(name: str, corpus: tuple[Path, dict[str, subprocess.CompletedProcess[str]]],
                     capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    root, runs = corpus
    status, out, err = validate(root, f"recipe/{name}.yaml", capsys, monkeypatch)
    problems = problem_lines(err)
    assert status == 1 and problems, out + err
    reasons = expected(root / "recipe" / f"{name}.yaml")
    for reason in reasons:
        assert any(reason in line for line in problems), (reason, problems)
    # the station that asks for it refuses to start, with the same reason, never another recipe
    status, out, err = validate(root, f"around/{name}/station.yaml", capsys, monkeypatch)
    station_problems = problem_lines(err)
    assert status == 1, out
    assert station_problems[0].startswith(f"around/{name}/station.yaml: recipes.active: recipe '{name}' is invalid")
    for reason in reasons:
        assert any(reason in line for line in station_problems[1:]), (reason, station_problems)
    run = runs[f"recipe/{name}"]
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
    assert problem_lines(run.stderr) == station_problems


def test_oversized_recipe_is_refused_before_parsing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    big = tmp_path / "big.yaml"
    # valid YAML that would take long to validate: tens of thousands of ROI rectangles
    big.write_text((CORPUS / "recipes" / "cap-a.yaml").read_text() + "roi:\n" + "  - [0, 0, 10, 10]\n" * 20_000)
    assert big.stat().st_size > MAX_FILE_BYTES
    status, _, err = validate(tmp_path, "big.yaml", capsys, monkeypatch)
    assert status == 1
    assert problem_lines(err) == [f"big.yaml: file is {big.stat().st_size // 1024} KiB; the limit is {MAX_FILE_BYTES // 1024} KiB"]
