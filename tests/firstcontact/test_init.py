"""``linecheck init DIR``: an editable copy of the shipped demo station that runs as written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from line import demo_station
from line.app.assembly import load_station_config
from line.recipes.book import load_recipe


def _init(target: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "line", "init", str(target)], capture_output=True, text=True, timeout=120)


def test_init_writes_the_demo_station_as_plain_editable_files(tmp_path: Path) -> None:
    target = tmp_path / "station"
    proc = _init(target)
    assert proc.returncode == 0, proc.stderr
    for name in demo_station.SHIPPED:
        copy = target / name
        assert copy.is_file() and not copy.is_symlink(), name
        assert copy.read_bytes() == (demo_station.root() / name).read_bytes(), name
    config = target / demo_station.CONFIG_NAME
    assert f"linecheck run -c {config}" in proc.stdout
    assert "python -m line.passwords" in proc.stdout

    # the copy's relative paths stay inside the copy: recipes, model and state
    station = load_station_config(config)
    assert station.recipes.dir == (target / "recipes").resolve()
    assert station.storage.dir == (target / "var" / "demo").resolve()
    assert Path(station.opcua_server.state_dir) == (target / "var" / "demo" / "opcua").resolve()
    recipe = load_recipe(target / "recipes" / "demo-parts.yaml")
    assert Path(recipe.model.onnx) == (target / "recipes" / "demo" / "demo-parts.onnx").resolve()

    checked = subprocess.run([sys.executable, "-m", "line", "validate", str(config), *map(str, sorted((target / "recipes").glob("*.yaml")))],
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.count(": ok") == 3


def test_init_into_an_existing_empty_folder(tmp_path: Path) -> None:
    assert _init(tmp_path).returncode == 0
    assert (tmp_path / demo_station.CONFIG_NAME).is_file()


def test_init_refuses_a_folder_with_anything_in_it(tmp_path: Path) -> None:
    (tmp_path / "mine.yaml").write_text("my station\n")
    proc = _init(tmp_path)
    assert proc.returncode == 2
    assert "not an empty folder" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["mine.yaml"]
    assert (tmp_path / "mine.yaml").read_text() == "my station\n"


def test_init_refuses_a_file(tmp_path: Path) -> None:
    target = tmp_path / "station"
    target.write_text("x")
    assert _init(target).returncode == 2
    assert target.read_text() == "x"
