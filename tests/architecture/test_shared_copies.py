"""The few pieces that ``camera``, ``inference`` and ``plc`` must each keep a copy of (they never
import each other) stay in step: the configuration base and the reconnect backoff."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from pydantic import BaseModel

import camera.backoff
import camera.config
import inference.config
import plc.backoff
import plc.config
from line.config_model import ConfigModel

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("base", [camera.config._Frozen, inference.config._Frozen, plc.config._Frozen],
                         ids=["camera", "inference", "plc"])  # fmt: skip
def test_every_config_base_has_the_settings_of_line(base: type[BaseModel]) -> None:
    assert dict(base.model_config) == dict(ConfigModel.model_config)


def _code(path: Path) -> str:
    """The module without its docstring (which names the other copy)."""
    tree = ast.parse(path.read_text())
    del tree.body[0]
    return ast.unparse(tree)


def test_the_backoff_copies_are_the_same_code() -> None:
    assert _code(REPO / "camera/backoff.py") == _code(REPO / "plc/backoff.py")


@pytest.mark.parametrize("backoff_type", [camera.backoff.CappedBackoff, plc.backoff.CappedBackoff], ids=["camera", "plc"])
def test_backoff_doubles_to_the_cap_and_starts_over(backoff_type: type) -> None:
    backoff = backoff_type(0.1, 0.5)
    assert [backoff.next_wait() for _ in range(5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    backoff.reset()
    assert backoff.next_wait() == 0.1
