"""The YAML examples in the README and docs/ are accepted by the models they illustrate.

A reader copies these blocks into real files, so each block is parsed by the model that would
read it: a whole station file, a recipe, a recipe's ``camera:`` block, a ``cameras:`` list
(each camera's options by its kind's own model), an ``opcua_server:`` or an ``uplink:`` section.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from camera.config import CameraConfig, CameraSettings
from camera.source import validate_options
from inference.config import InputProfile
from line.app.config import StationConfig
from line.recipes.model import Recipe
from line.uplink.config import UplinkConfig

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
_YAML_BLOCK = re.compile(r"```yaml\n(.*?)```", re.DOTALL)


def _blocks() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        for n, block in enumerate(_YAML_BLOCK.findall(page.read_text(encoding="utf-8"))):
            found.append((f"{page.relative_to(REPO)}#{n}", block))
    return found


def _check(data: dict[str, Any]) -> str:
    """Validate one example by its shape; returns what it was taken for."""
    if "cameras" in data and ("station" in data or "engine" in data):
        config = StationConfig.model_validate(data)
        for camera in config.cameras:
            validate_options(camera)
        return "station"
    if "cameras" in data:
        for item in data["cameras"]:
            validate_options(CameraConfig.model_validate(item))
        return "cameras"
    if "model" in data and "reject" in data:
        Recipe.model_validate(data)
        return "recipe"
    if set(data) == {"input"}:  # a recipe's model.input line shown on its own
        InputProfile.model_validate(data["input"])
        return "model input"
    if set(data) == {"camera"}:
        CameraSettings.model_validate(data["camera"])
        return "camera settings"
    if set(data) == {"uplink"}:
        UplinkConfig.model_validate(data["uplink"])
        return "uplink section"
    raise AssertionError(f"an example of unknown shape: {sorted(data)}")


@pytest.mark.parametrize(("where", "block"), _blocks(), ids=[w for w, _ in _blocks()])
def test_example_is_accepted(where: str, block: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = yaml.safe_load(block)
    assert isinstance(data, dict), where
    monkeypatch.chdir(tmp_path)  # a replay camera's folder is checked: the reader has made it
    for camera in data.get("cameras") or []:
        if camera.get("kind") == "replay":
            (tmp_path / camera["options"]["folder"]).mkdir(parents=True)
    _check(data)


def test_the_examples_cover_station_recipe_and_cameras(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    kinds = set()
    for _, block in _blocks():
        data = yaml.safe_load(block)
        for camera in data.get("cameras") or []:
            if camera.get("kind") == "replay":
                (tmp_path / camera["options"]["folder"]).mkdir(parents=True, exist_ok=True)
        kinds.add(_check(data))
    assert {"station", "recipe", "cameras", "camera settings"} <= kinds


def test_a_wrong_example_is_refused() -> None:
    with pytest.raises(ValueError, match="trigger_mode"):
        _check({"camera": {"trigger_mode": "sometimes"}})
