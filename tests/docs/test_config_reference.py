"""docs/configuration.md is generated from the models; it must say what the models say."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_config_reference", REPO / "tools" / "gen_config_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_page_matches_the_models() -> None:
    page = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert page == _generator().render(), "docs/configuration.md is stale: run python tools/gen_config_reference.py"


def test_every_model_field_has_a_row() -> None:
    from line.app.config import StationConfig
    from line.recipes.model import Recipe

    page = _generator().render()
    for name in StationConfig.model_fields:
        assert f"| `{name}` |" in page
    for name in Recipe.model_fields:
        assert f"| `{name}` |" in page
    assert "| `station.overflow_policy` |" in page
    assert "| `model.input.max` |" in page


def test_check_mode_refuses_a_stale_page(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    generator = _generator()
    stale = tmp_path / "configuration.md"
    stale.write_text(generator.render().replace("`station.queue_size`", "`station.queue_len`"), encoding="utf-8")
    assert generator.main(["--check", "--output", str(stale)]) == 1
    assert "differs from the models" in capsys.readouterr().err
    assert generator.main(["--output", str(stale)]) == 0
    assert generator.main(["--check", "--output", str(stale)]) == 0


def test_hand_written_notes_name_existing_fields() -> None:
    assert _generator().stale_notes() == []
