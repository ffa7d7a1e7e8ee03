"""End to end: ``linecheck run`` on the hardware backends' station configs for a few seconds.

configs/aravis-fake.yaml runs as shipped against the fake GigE camera. configs/genicam-viky.yaml
runs with its recipes folder swapped for a copy of recipes/demo-parts.yaml whose camera block
fits Viky (at most 800x800): the shipped demo recipe asks for 1280x1024, which Viky refuses
at the recipe switch, exactly as a real station must.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tests.camera.fake_gige import FakeCamera

REPO = Path(__file__).resolve().parents[2]


def _run(config: Path, state_dir: Path, seconds: float = 4.0) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "line", "run", "-c", str(config), "--duration", str(seconds), "--json",
         "--state-dir", str(state_dir), "--port", "0"],  # fmt: skip
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no JSON summary (rc {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    summary: dict[str, Any] = json.loads(lines[-1])
    assert proc.returncode == 0, f"rc {proc.returncode}: {summary}\n{proc.stderr[-3000:]}"
    return summary


def test_linecheck_run_on_the_aravis_fake_camera(
    fake_camera_factory: Callable[..., FakeCamera], tmp_path: Path
) -> None:
    fake_camera_factory()
    summary = _run(REPO / "configs" / "aravis-fake.yaml", tmp_path / "state")
    assert summary["parts"] >= 10
    assert summary["verdicts"] == summary["parts"]
    assert "camera_error" not in summary.get("fail_safe_reasons", {})


def test_linecheck_run_on_viky(viky_cti: Path, tmp_path: Path) -> None:
    station = yaml.safe_load((REPO / "configs" / "genicam-viky.yaml").read_text())
    recipe = yaml.safe_load((REPO / "recipes" / "demo-parts.yaml").read_text())
    recipe["model"]["onnx"] = str((REPO / "recipes" / recipe["model"]["onnx"]).resolve())
    recipe["camera"] = {"pixel_format": "Mono8", "width": 800, "height": 640}
    recipe["roi"] = [[0, 0, 800, 640]]
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "demo-parts.yaml").write_text(yaml.safe_dump(recipe))
    station["recipes"]["dir"] = str(recipes)
    station["recipes"]["active"] = "demo-parts"  # the one recipe this test writes
    station["cameras"][0]["options"]["cti"] = [str(viky_cti)]
    config = tmp_path / "genicam-viky.yaml"
    config.write_text(yaml.safe_dump(station))
    summary = _run(config, tmp_path / "state")
    assert summary["parts"] >= 10
    assert summary["verdicts"] == summary["parts"]
    assert "camera_error" not in summary.get("fail_safe_reasons", {})
