"""The HMI in a real browser (Debian chromium driven by playwright-core from hmi.mjs).

A real station runs in this process: the synthetic camera (real bottle-cap images), a
scripted engine per recipe (it marks a box whose class belongs to its recipe), the real
Modbus server sink and the HMI on free ports. The script logs in as operator, switches the
recipe on the page (cancelling the confirmation once, then confirming), waits until the
live verdicts name the new recipe; a viewer cannot switch. Here we read the Modbus
active_recipe register (address 2) with a pymodbus client before and after.
The engine fails on some parts (an inspection error: fail-safe), so the station raises alarms
and the page must show them with their time and count, the degraded reason, the fail-safes by
reason and each reject's defect classes without hovering; a tap opens a reject large.
Screenshots: artifacts/browser/hmi-*.png, and the ones docs/hmi.md shows as small palette PNGs
in artifacts/browser/docs/. ``UPDATE_DOCS_SCREENSHOTS=1`` writes those to docs/images/ instead (a
test run leaves the tree clean otherwise).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from camera.synthetic import SyntheticSource
from inference.config import EngineOptions
from inference.detections import Detections
from inference.engine import DetectionResult, Engine, ImageInput
from line.app.config import HmiSection
from line.hmi.server import start_hmi
from line.loop.station import Station
from line.recipes.book import RecipeBook
from line.recipes.model import Recipe
from line.results.archive import ImageArchive
from line.results.log import ResultLog
from plc.config import ModbusServerConfig
from tests.hmi.helpers import PASSWORDS, users_config

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
RECIPE = """\
id: {id}
code: {code}
description: {desc}
model: {{onnx: model.onnx, layout: yolov8}}
classes: [{classes}]
thresholds: {{default: 0.5}}
reject:
  - {{classes: [{first}], bin: 1}}
cycle_budget_ms: 200
"""

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists() or not (HERE / "node_modules" / "playwright-core").is_dir() or shutil.which("node") is None,
    reason="needs /usr/bin/chromium (apt-get install chromium) and `npm install` in tests/browser",
)


class MarkingEngine(Engine):
    """Finds the darkest 48x48 cell of the picture and reports it as its recipe's first class
    on about a third of the parts (a stand-in model: the point is who judged, not how well)."""

    backend = "scripted"

    def detect(self, images: Sequence[ImageInput]) -> list[DetectionResult]:
        out = []
        for image in images:
            data = image.data if image.data.ndim == 2 else image.data[..., 0]
            h, w = data.shape
            cells = data[: h - h % 48, : w - w % 48].reshape(h // 48, 48, w // 48, 48).mean(axis=(1, 3))
            y, x = np.unravel_index(int(np.argmin(cells[1:-1, 1:-1])), cells[1:-1, 1:-1].shape)
            if int(data[::89, ::97].sum()) % 9 == 0:
                raise RuntimeError("scripted inspection failure")  # the lane decides the part fail-safe
            if int(data[::97, ::89].sum()) % 3 == 0:
                box = np.array([[(x + 1) * 48 - 20, (y + 1) * 48 - 20, (x + 2) * 48 + 20, (y + 2) * 48 + 20]], np.float32)
                det = Detections(box, np.array([0.91], np.float32), np.array([0], np.int32))
            else:
                det = Detections.empty()
            out.append(DetectionResult(det, {"engine": 1.0}))
        return out

    def infer_raw(self, tensor: np.ndarray) -> list[np.ndarray]:
        return [tensor]


def factory(recipe: Recipe) -> Any:
    time.sleep(0.2)  # a cold preparation takes a moment (the page shows progress)
    return MarkingEngine(recipe.detector_spec(), EngineOptions())


def read_active_recipe(port: int) -> int:
    from pymodbus.client import ModbusTcpClient

    client = ModbusTcpClient("127.0.0.1", port=port, timeout=3)
    try:
        assert client.connect()
        reply = client.read_holding_registers(2, count=1, device_id=1)
        assert not reply.isError(), reply
        return int(reply.registers[0])
    finally:
        client.close()


def save_for_docs(artifacts: Path, shots: Sequence[tuple[str, int]]) -> None:
    """The screenshots docs/hmi.md shows, as palette PNGs under 200 KB (the repository keeps them)."""
    from PIL import Image

    docs = ROOT / "docs" / "images" if os.environ.get("UPDATE_DOCS_SCREENSHOTS") == "1" else artifacts / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    for name, max_px in shots:  # a photo-like picture needs fewer pixels to stay small
        with Image.open(artifacts / name) as shot:
            small = shot.convert("RGB")
            small.thumbnail((max_px, max_px))
            small = small.quantize(colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
            small.save(docs / name, optimize=True)
        assert (docs / name).stat().st_size < 200_000, name


def test_operator_switches_on_the_page_viewer_cannot(tmp_path: Path) -> None:
    from plc.modbus_server import ModbusServerSink

    folder = tmp_path / "recipes"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(b"scripted")
    (folder / "cap-a.yaml").write_text(RECIPE.format(id="cap-a", code=1, desc="red caps", classes="scratch, dent", first="scratch"))
    (folder / "cap-b.yaml").write_text(RECIPE.format(id="cap-b", code=2, desc="blue caps", classes="dent, missing_cap", first="dent"))
    book = RecipeBook(folder, factory, warm_max=2, check_models=False)
    assert book.switch("cap-a", "startup").ok
    camera = SyntheticSource("cam1", SyntheticSource.Options(width=1280, height=1024, rate_hz=10, defect_rate=0.3, seed=3))
    log = ResultLog(tmp_path / "state" / "results.db", ImageArchive(tmp_path / "state" / "ng", 50, "jpg"))
    station = Station("hmi-test", book, [camera], [], log, fetch_timeout_s=0.5)
    modbus = ModbusServerSink(ModbusServerConfig(port=0, heartbeat_ms=250), requests=station)
    station.sinks.append(modbus)
    station.start()
    hmi = None
    artifacts = ROOT / "artifacts" / "browser"
    artifacts.mkdir(parents=True, exist_ok=True)
    try:
        hmi = start_hmi(station, HmiSection(enabled=True, port=0, users=users_config(), live_fps=5))
        assert read_active_recipe(modbus.port) == 1
        env = {**os.environ, "HMI_URL": hmi.url, "OUT_DIR": str(artifacts), "OPERATOR_PASSWORD": PASSWORDS["operator"],
               "VIEWER_PASSWORD": PASSWORDS["viewer"], "FROM_RECIPE": "cap-a", "TO_RECIPE": "cap-b",
               "EXPECT_ALARM": "inference_error"}  # fmt: skip
        run = subprocess.run(["node", "hmi.mjs"], cwd=HERE, env=env, capture_output=True, text=True, timeout=180)
        lines = [line for line in run.stdout.splitlines() if line.startswith("{")]
        assert lines, f"no result from hmi.mjs (rc {run.returncode}): {run.stdout[-2000:]} {run.stderr[-3000:]}"
        seen = json.loads(lines[-1])
        assert seen["ok"] and run.returncode == 0, seen.get("error") or run.stderr[-3000:]
        assert "recipe cap-a" in seen["live_before"] and "recipe cap-b" in seen["live_after"]
        assert seen["confirm_text"] == "Switch the line from cap-a to cap-b?" and seen["active_after_cancel"] == "cap-a"
        assert seen["switch_status"].startswith("switched to cap-b")
        assert seen["image_size"] == [640, 512]
        assert seen["viewer_switch_button_visible"] is False and seen["viewer_reset_button_visible"] is False
        assert seen["viewer_select_disabled"] is True
        shown = {a["kind"]: a["text"] for a in seen["alarms"]}
        assert "Inspection error" in shown["inference_error"] and "since " in shown["inference_error"], shown
        assert {a.kind.value for a in station.alarm_set.snapshot()} >= {"inference_error"}
        assert seen["health"] == "degraded" and seen["health_reason_visible"] and "Inspection error" in seen["health_reason"]
        assert seen["thumb_defects_visible"] and set(seen["thumb_defects"]) <= {"scratch", "dent", "missing_cap"}
        assert any(r.startswith("inspection error: ") for r in seen["fail_safe_reasons"]), seen["fail_safe_reasons"]
        assert ["state-waiting", "PLC modbus_server: waiting for PLC"] in seen["links"] or any(
            cls == "state-ok" and "modbus_server" in t for cls, t in seen["links"]), seen["links"]  # fmt: skip
        for jargon in ("µs", "warm", "hot-path", "p50", "p99", "t_ready"):
            assert jargon not in seen["page_text"], jargon
        assert seen["min_button_height"] >= 44
        assert seen["large_width"] > 600 and any(c in seen["large_caption"] for c in ("scratch", "dent", "missing_cap"))
        assert (seen["viewer_switch_status"], seen["viewer_active"]) == (403, "cap-b"), seen
        assert read_active_recipe(modbus.port) == 2  # the PLC sees the switch
        assert station.book.last_audit is not None and station.book.last_audit.user == "operator"
        assert (artifacts / "hmi-live.png").stat().st_size > 10_000
        save_for_docs(artifacts, (("hmi-operator.png", 1280), ("hmi-reject-large.png", 640), ("hmi-viewer.png", 960)))
    finally:
        if hmi is not None:
            hmi.close()
        station.stop()
