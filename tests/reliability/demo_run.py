"""A 50 parts/s ``linecheck demo`` run as a real process, with something else going on while it
runs (the login floods of tests/reliability/test_fault_login_flood.py and
test_fault_opcua_login_flood.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from line import demo_station

SECONDS = 12.0
During = Callable[[dict[str, Any], threading.Event], None]  # (where it listens, stop)


def demo_config(tmp_path: Path, edit: Callable[[dict[str, Any]], None] | None = None) -> Path:
    data = yaml.safe_load(demo_station.config_path().read_text())
    data["recipes"]["dir"] = str((demo_station.config_path().parent / data["recipes"]["dir"]).resolve())
    data["cameras"][0]["options"]["rate_hz"] = 50
    data["storage"]["dir"] = str(tmp_path / "state")
    data["opcua_server"]["state_dir"] = str(tmp_path / "opcua")
    if edit is not None:
        edit(data)
    path = tmp_path / "demo50.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def run_demo(config: Path, during: During | None = None, seconds: float = SECONDS) -> dict[str, Any]:
    """One demo run on free ports; ``during(listening, stop)`` runs while it does, with the demo's
    ``{"hmi": url, "opcua": endpoint, ...}``."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "line", "demo", "-c", str(config), "--duration", str(seconds), "--json", "--free-ports"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stderr is not None and proc.stdout is not None
    listening: dict[str, Any] = {}
    for line in proc.stderr:
        if line.startswith('{"listening"'):
            listening = json.loads(line)["listening"]
            break
    assert listening.get("hmi"), "the demo did not say where it listens"
    stop = threading.Event()
    worker = threading.Thread(target=during, args=(listening, stop)) if during is not None else None
    if worker is not None:
        worker.start()
    out, err = proc.communicate(timeout=seconds + 120)
    stop.set()
    if worker is not None:
        worker.join()
    assert proc.returncode == 0, err[-2000:]
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    result["hmi"] = listening["hmi"]
    return result


def fail_safe_share(result: dict[str, Any]) -> float:
    return int(result["fail_safe"]) / int(result["parts"])
