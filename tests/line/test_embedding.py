"""docs/embedding.md's example, run as it is written (a fresh interpreter, this worktree's
code): the public API builds, starts, observes and stops a station on the synthetic camera."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import line

REPO = Path(__file__).resolve().parents[2]
PAGE = REPO / "docs" / "embedding.md"

pytestmark = pytest.mark.timeout(300)


def example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)
    assert len(blocks) == 1, "docs/embedding.md has one runnable example"
    return blocks[0]


def test_the_documented_example_runs(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", example()], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=240)  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["state"] == "stopped" and result["recipe"] == "demo-parts"
    assert sum(result["codes"].values()) >= 20
    assert result["parts"] == result["verdicts"] >= 20


def test_the_public_names_are_the_documented_ones() -> None:
    page = PAGE.read_text()
    for name in line.__all__:
        assert getattr(line, name) is not None
    for name in ("load_config", "build_station", "Outcome", "StationSnapshot", "StationState", "IllegalTransition"):
        assert f"line.{name}" in page, name
    with pytest.raises(AttributeError):
        line.__getattr__("not_exported")
