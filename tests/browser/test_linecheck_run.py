"""``linecheck run -c <config>`` as a subprocess with the HMI enabled, driven in chromium.

The repo's demo recipes (recipes/demo-parts.yaml -> demo-parts-strict.yaml, the demo model)
when the model file is present; without it, a tiny generated ONNX "detector" (onnx.helper:
one constant candidate box whose class score is 0.9) so the wiring of the real service is
still tested: recipe A rejects every part (threshold 0.5), recipe B passes every part (0.95). The node script switches A -> B
on the page; the Modbus active_recipe register (address 2) follows.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.browser.test_hmi_browser import CHROMIUM, HERE, ROOT, read_active_recipe
from tests.hmi.helpers import PASSWORDS, users_config

DEMO = ROOT / "recipes" / "demo-parts.yaml"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists() or not (HERE / "node_modules" / "playwright-core").is_dir(),
    reason="needs /usr/bin/chromium and `npm install` in tests/browser",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tiny_model(path: Path) -> None:
    """[1,3,H,W] -> [1, 4+3, 1] (yolov8 layout): one box around the frame centre, class 0 at 0.9."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    const = helper.make_tensor("c", TensorProto.FLOAT, [1, 7, 1], [320, 256, 160, 128, 0.9, 0.0, 0.0])
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["m"], keepdims=1),  # [1,1,1,1]: ties the output to the input
        helper.make_node("Mul", ["m", "zero"], ["z"]),
        helper.make_node("Reshape", ["z", "shape"], ["z3"]),
        helper.make_node("Add", ["c", "z3"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, "h", "w"])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 7, 1])],
        initializer=[const, helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
                     helper.make_tensor("shape", TensorProto.INT64, [3], [1, 1, 1])],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def write_recipes(folder: Path) -> tuple[str, str]:
    """The repo's two demo recipes (model path made absolute) or, without the demo model, two
    recipes over the tiny generated model."""
    folder.mkdir()
    strict = DEMO.with_name("demo-parts-strict.yaml")
    onnx_path = DEMO.parent / "demo" / "demo-parts.onnx"
    if DEMO.exists() and strict.exists() and onnx_path.exists():
        recipes = [yaml.safe_load(DEMO.read_text()), yaml.safe_load(strict.read_text())]
        for recipe in recipes:
            recipe["model"]["onnx"] = str(onnx_path)
    else:
        tiny_model(folder / "tiny.onnx")
        base = {"model": {"onnx": "tiny.onnx", "layout": "yolov8", "input": {"min": [320, 320], "opt": [512, 640], "max": [512, 640]}},
                "classes": ["scratch", "dent", "missing_cap"], "reject": [{"classes": ["scratch", "dent"], "bin": 2}],
                "camera": {"pixel_format": "Mono8", "width": 1280, "height": 1024}}  # fmt: skip
        recipes = [{**base, "id": "line-a", "code": 1, "thresholds": {"default": 0.5}},  # rejects every part
                   {**base, "id": "line-b", "code": 2, "thresholds": {"default": 0.95}}]  # passes every part  # fmt: skip
    for recipe in recipes:
        recipe["cycle_budget_ms"] = max(400, recipe.get("cycle_budget_ms", 0))  # a loaded 2-core CI box
        (folder / f"{recipe['id']}.yaml").write_text(yaml.safe_dump(recipe))
    return recipes[0]["id"], recipes[1]["id"]


def test_linecheck_run_with_hmi_switch_on_the_page(tmp_path: Path) -> None:
    first, second = write_recipes(tmp_path / "recipes")
    modbus_port, hmi_port = free_port(), free_port()
    config = {
        "station": {"id": "run-test"},
        "recipes": {"dir": str(tmp_path / "recipes"), "active": first, "warm_max": 2},
        "cameras": [{"id": "cam1", "kind": "synthetic", "fetch_timeout_ms": 1000,
                     "options": {"width": 1280, "height": 1024, "pixel_format": "Mono8", "rate_hz": 5, "seed": 4}}],
        "engine": {"backend": "onnxruntime", "device": "cpu", "intra_op_threads": 1},
        "plc": {"modbus_server": {"enabled": True, "host": "127.0.0.1", "port": modbus_port, "heartbeat_ms": 250}},
        "storage": {"dir": str(tmp_path / "state"), "archive_format": "jpg"},
        "hmi": {"enabled": True, "host": "127.0.0.1", "port": hmi_port, "users": users_config(), "live_fps": 5},
    }  # fmt: skip
    config_path = tmp_path / "station.yaml"
    config_path.write_text(yaml.safe_dump(config))
    proc = subprocess.Popen([sys.executable, "-m", "line", "run", "-c", str(config_path), "--duration", "170"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    url = f"http://127.0.0.1:{hmi_port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the service did not come up"
            time.sleep(0.3)
        assert read_active_recipe(modbus_port) == 1
        artifacts = ROOT / "artifacts" / "browser" / "run"
        artifacts.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "HMI_URL": url, "OUT_DIR": str(artifacts), "OPERATOR_PASSWORD": PASSWORDS["operator"],
               "VIEWER_PASSWORD": PASSWORDS["viewer"], "FROM_RECIPE": first, "TO_RECIPE": second}  # fmt: skip
        run = subprocess.run(["node", "hmi.mjs"], cwd=HERE, env=env, capture_output=True, text=True, timeout=180)
        lines = [line for line in run.stdout.splitlines() if line.startswith("{")]
        assert lines, f"no result from hmi.mjs (rc {run.returncode}): {run.stderr[-3000:]}"
        seen = json.loads(lines[-1])
        assert seen["ok"] and run.returncode == 0, seen.get("error") or run.stderr[-3000:]
        assert f"recipe {first}" in seen["live_before"] and f"recipe {second}" in seen["live_after"], seen
        assert (seen["viewer_switch_status"], seen["viewer_active"]) == (403, second), seen
        assert read_active_recipe(modbus_port) == 2
        events = httpx.get(f"{url}/api/events", auth=("viewer", PASSWORDS["viewer"]), timeout=10).json()
        switch = next(e for e in events if e["kind"] == "recipe_switch")
        data = json.loads(switch["data"])
        assert data["to"] == second and data["source"] == "hmi" and data["user"] == "operator" and "switch_s" in data
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()
