"""A throw-away station for process-level tests: recipes with a tiny ONNX model, a station
config for the synthetic camera, and helpers to run ``linecheck run`` as a real process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

from tests.inference.onnx_models import constant_model

REPO = Path(__file__).resolve().parents[2]

RECIPE = {
    "model": {"onnx": "tiny.onnx", "layout": "yolov8", "input": {"min": [320, 320], "opt": [320, 320], "max": [640, 640]}},
    "classes": ["scratch", "dent", "missing_cap"],
    "thresholds": {"default": 0.5},
    "reject": [{"classes": ["missing_cap"], "bin": 1}, {"classes": ["scratch", "dent"], "bin": 2}],
    "camera": {"pixel_format": "Mono8"},
    "cycle_budget_ms": 150,
}


def make_env(root: Path, *, plc_port: int | None = None, server_port: int | None = 0, rate_hz: float = 50,
             width: int = 640, height: int = 512, extra: dict | None = None) -> Path:  # fmt: skip
    recipes = root / "recipes"
    recipes.mkdir(parents=True, exist_ok=True)
    # one strong detection of class 2 (missing_cap) at the centre of a 320-wide input, on every part
    out = np.zeros((1, 7, 4), np.float32)
    out[0, :, 0] = [160, 160, 40, 40, 0.0, 0.0, 0.9]
    constant_model(recipes / "tiny.onnx", out)
    for rid, code in (("alpha", 1), ("beta", 2)):
        (recipes / f"{rid}.yaml").write_text(yaml.safe_dump({"id": rid, "code": code, **RECIPE}))
    plc: dict = {"modbus_server": {"enabled": server_port is not None, "port": server_port or 0}}
    if plc_port is not None:
        plc["modbus_client"] = {"enabled": True, "port": plc_port, "write_timeout_ms": 50}
    config = {
        "station": {"id": "test-1"},
        "recipes": {"dir": "recipes", "active": "alpha"},
        "cameras": [{"id": "cam1", "kind": "synthetic",
                     "options": {"width": width, "height": height, "rate_hz": rate_hz, "seed": 3}}],
        "plc": plc,
        "storage": {"dir": "state", "archive_max_images": 20},
        **(extra or {}),
    }  # fmt: skip
    path = root / "station.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def linecheck(*args: str, **kwargs: object) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "line", *args], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kwargs)  # type: ignore[call-overload]
