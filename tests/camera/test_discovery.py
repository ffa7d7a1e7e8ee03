"""``linecheck cameras`` and camera.discovery against real peers: the Viky GenTL producer
(three simulated devices, through harvesters) and Aravis' fake GigE Vision camera on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from camera.discovery import discover_gentl

REPO = Path(__file__).resolve().parents[2]
VIKY_FORMATS = ["RGBa8", "Mono8"]


def cameras_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != "GENICAM_GENTL64_PATH"}
    return subprocess.run(
        [sys.executable, "-m", "line", "cameras", *args], cwd=REPO, capture_output=True, text=True, timeout=120,
        env={**base, "PYTHONPATH": str(REPO), **(env or {})},
    )  # fmt: skip


def test_gentl_discovery_lists_the_producers_devices(viky_cti: Path) -> None:
    found = discover_gentl([viky_cti])
    assert [(c.serial_number, c.device_id) for c in found] == [
        ("0", "VikyTL_DEV_red"), ("1", "VikyTL_DEV_green"), ("2", "VikyTL_DEV_blue"),
    ]  # fmt: skip
    for camera in found:
        assert (camera.backend, camera.vendor, camera.model) == ("genicam", "Machine Vision Games Ltd.", "Viky")
        assert list(camera.pixel_formats or ()) == VIKY_FORMATS  # read from each device's node map
        assert camera.producer == str(viky_cti)


def test_cli_json_finds_producers_on_the_gentl_path(viky_cti: Path) -> None:
    ran = cameras_cli("--json", "--backend", "genicam", env={"GENICAM_GENTL64_PATH": str(viky_cti.parent)})
    assert ran.returncode == 0, ran.stderr
    listing = json.loads(ran.stdout)
    assert listing["problems"] == []
    assert [c["serial_number"] for c in listing["cameras"]] == ["0", "1", "2"]
    assert {c["address"] for c in listing["cameras"]} == {"VikyTL_DEV_red", "VikyTL_DEV_green", "VikyTL_DEV_blue"}
    assert all(c["pixel_formats"] == VIKY_FORMATS and c["backend"] == "genicam" for c in listing["cameras"])


def test_cli_without_any_producer_says_what_to_do() -> None:
    ran = cameras_cli("--json", "--backend", "genicam")
    assert ran.returncode == 1
    listing = json.loads(ran.stdout)
    assert listing["cameras"] == []
    assert listing["problems"] == [
        "genicam: no GenTL producer: give a .cti file, or set GENICAM_GENTL64_PATH to the folders holding them"
    ]


def test_cli_missing_producer_file_is_a_problem_not_a_traceback(tmp_path: Path) -> None:
    ran = cameras_cli("--backend", "genicam", "--cti", str(tmp_path / "vendor.cti"))
    assert ran.returncode == 1
    assert "Traceback" not in ran.stderr
    assert f"genicam: GenTL producer not found: {tmp_path / 'vendor.cti'}" in ran.stderr
    assert ran.stdout.strip() == "no cameras found"


def test_cli_json_lists_the_fake_gige_camera(fake_camera) -> None:  # type: ignore[no-untyped-def]
    ran = cameras_cli("--json", "--backend", "aravis")
    assert ran.returncode == 0, ran.stderr
    listing = json.loads(ran.stdout)
    fake = [c for c in listing["cameras"] if c["address"] == fake_camera.address]
    assert len(fake) == 1, listing
    camera = fake[0]
    assert (camera["backend"], camera["vendor"], camera["model"], camera["serial_number"]) == ("aravis", "Aravis", "Fake", "GV01")
    assert (camera["device_id"], camera["transport"]) == ("Aravis-Fake-GV01", "GigEVision")
    assert {"Mono8", "RGB8", "BayerRG8"} <= set(camera["pixel_formats"])  # read from the camera's node map


def test_cli_table_shows_both_backends(fake_camera, viky_cti: Path) -> None:  # type: ignore[no-untyped-def]
    ran = cameras_cli("--cti", str(viky_cti))
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    assert lines[0].split() == ["BACKEND", "VENDOR", "MODEL", "SERIAL", "ADDRESS", "PIXEL", "FORMATS"]
    gentl = [line for line in lines if line.startswith("genicam ")]
    gige = [line for line in lines if line.startswith("aravis ") and fake_camera.address in line]
    assert len(gentl) == 3 and all(line.endswith("RGBa8 Mono8") for line in gentl)
    assert len(gige) == 1 and "Aravis" in gige[0] and "GV01" in gige[0] and "Mono8" in gige[0]


def test_listing_does_not_disturb_a_streaming_camera(fake_camera) -> None:  # type: ignore[no-untyped-def]
    """A station streams from the camera while someone runs ``linecheck cameras``: the camera is
    listed and the station's stream goes on."""
    from camera.config import CameraConfig, CameraSettings
    from camera.source import CameraState, open_source

    settings = CameraSettings(pixel_format="Mono8", width=640, height=480, frame_rate=50)
    config = CameraConfig(id="gige", kind="aravis", options={"address": fake_camera.address, "packet_size": 8192})
    source = open_source(config, settings)
    source.start()
    try:
        with source.fetch(5.0):
            pass
        ran = cameras_cli("--json", "--backend", "aravis")
        assert ran.returncode == 0, ran.stderr
        assert [c["serial_number"] for c in json.loads(ran.stdout)["cameras"] if c["address"] == fake_camera.address] == ["GV01"]
        before = source.counters.frames
        for _ in range(10):
            with source.fetch(5.0):
                pass
        assert source.counters.frames >= before + 10
        assert source.state is CameraState.ACQUIRING
    finally:
        source.close()
