"""``linecheck validate``: every problem reported as ``file: field.path: reason``, non-zero exit;
a bad file never becomes an active recipe."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from line.errors import ConfigError
from line.recipes.book import RecipeBook, load_recipe
from tests.inference.onnx_models import constant_model

GOOD = """\
id: cap-a
code: 3
model: {onnx: cap-a.onnx, layout: yolov8, input: {min: [320, 320], opt: [320, 320], max: [640, 640]}}
classes: [scratch, dent, missing_cap]
thresholds: {default: 0.5, scratch: 0.4}
reject:
  - {classes: [missing_cap], bin: 1}
  - {classes: [scratch, dent], min_area_px: 40, bin: 2}
camera: {pixel_format: Mono8, width: 1280, height: 1024}
cycle_budget_ms: 40
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    constant_model(tmp_path / "cap-a.onnx", np.zeros((1, 7, 10), np.float32))  # 4 + 3 classes
    constant_model(tmp_path / "two-class.onnx", np.zeros((1, 6, 10), np.float32))  # 4 + 2 classes
    (tmp_path / "cap-a.yaml").write_text(GOOD)
    return tmp_path


def validate(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "line", "validate", *map(str, paths)], capture_output=True, text=True)


def test_good_recipe_validates(folder: Path) -> None:
    result = validate(folder / "cap-a.yaml")
    assert result.returncode == 0, result.stderr
    assert load_recipe(folder / "cap-a.yaml").model.onnx == (folder / "cap-a.onnx").resolve()


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        (("thresholds: {default: 0.5, scratch: 0.4}", "thresholds: {default: 0.5, scrach: 0.4}"), "", "unknown class name(s) ['scrach']"),
        (("thresholds: {default: 0.5, scratch: 0.4}", "thresholds: {default: -0.1}"), "thresholds", "within [0, 1]"),
        (("cycle_budget_ms: 40", "cycle_budget_ms: 40\ncolour: red"), "colour", "unknown key"),
        (("code: 3", "code: three"), "code", "valid integer"),
        (("cap-a.onnx", "missing.onnx"), "model.onnx", "model file not found"),
        (("cap-a.onnx", "two-class.onnx"), "model.onnx", "7"),
        (("{classes: [missing_cap], bin: 1}", "{classes: [missing_cap], bin: 0}"), "reject.1.bin", "greater than or equal to 1"),
        (("input: {min: [320, 320]", "input: {min: [720, 320]"), "model.input", "min <= opt <= max"),
    ],
)
def test_problems_name_file_field_and_reason(folder: Path, change: tuple[str, str], field: str, reason: str) -> None:
    bad = folder / "bad.yaml"
    bad.write_text(GOOD.replace(*change))
    result = validate(bad)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines, result.stdout
    assert all(line.startswith(f"{bad}: ") for line in lines)
    assert any(f": {field}" in line and reason in line for line in lines), lines


def test_corrupt_model_and_bad_yaml(folder: Path) -> None:
    (folder / "cap-a.onnx").write_bytes(b"\x00garbage")
    (folder / "broken.yaml").write_text("id: [unclosed\n")
    result = validate(folder / "cap-a.yaml", folder / "broken.yaml")
    assert result.returncode == 1
    assert f"{folder / 'cap-a.yaml'}: model.onnx:" in result.stderr
    assert f"{folder / 'broken.yaml'}: line 1: invalid YAML" in result.stderr or f"{folder / 'broken.yaml'}: line" in result.stderr


def test_invalid_recipe_is_listed_never_active(folder: Path) -> None:
    (folder / "bad.yaml").write_text(GOOD.replace("id: cap-a", "id: cap-b").replace("code: 3", "code: 4").replace("scratch: 0.4", "nope: 0.4"))
    book = RecipeBook(folder, lambda r: None)  # type: ignore[arg-type,return-value]
    assert list(book.recipes) == ["cap-a"]
    assert str(folder / "bad.yaml") in book.invalid
    with pytest.raises(KeyError):
        book.prepare("cap-b")


def test_station_config_errors(tmp_path: Path) -> None:
    cfg = tmp_path / "station.yaml"
    cfg.write_text("cameras: [{id: c1, kind: synthetic}]\nstation: {queue_size: 0}\nplc: {modbus_server: {port: 70000}}\n")
    from line.app.assembly import load_station_config

    with pytest.raises(ConfigError) as info:
        load_station_config(cfg)
    text = str(info.value)
    assert f"{cfg}: station.queue_size:" in text and f"{cfg}: plc.modbus_server.port:" in text
