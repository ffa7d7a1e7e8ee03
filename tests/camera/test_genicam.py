"""camera.genicam against a real GenTL producer: the genicam wheel's Viky (3 virtual devices)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from camera.config import CameraConfig, CameraSettings
from camera.errors import CameraFatalError, CameraSettingError, FetchTimeout
from camera.frame import FrameReleasedError, FrameStatus
from camera.genicam import GenicamSource
from camera.nodemap import NodeInfo, SettingsPlan, Write, apply_plan
from camera.source import CameraState, open_source


def _source(cti: Path, settings: CameraSettings | None = None, **options: object):  # type: ignore[no-untyped-def]
    config = CameraConfig(id="viky", kind="genicam", options={"cti": [str(cti)], **options})
    return open_source(config, settings)


@pytest.fixture
def viky(viky_cti: Path) -> Iterator:  # type: ignore[type-arg]
    src = _source(
        viky_cti,
        CameraSettings(pixel_format="Mono8", width=320, height=240, frame_rate=200),
        serial_number="1",
    )
    src.start()
    yield src
    src.close()


def _wait_for(predicate, timeout_s: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_enumerates_the_three_viky_devices(viky_cti: Path) -> None:
    src = _source(viky_cti)
    try:
        devices = src.list_devices()
    finally:
        src.close()
    assert sorted(d["serial_number"] for d in devices) == ["0", "1", "2"]
    assert {d["model"] for d in devices} == {"Viky"}


@pytest.mark.parametrize(
    "selector", [{"serial_number": "0"}, {"serial_number": "2"}, {"model": "Viky", "index": 1}]
)
def test_acquires_from_each_device(viky_cti: Path, selector: dict[str, object]) -> None:
    src = _source(
        viky_cti, CameraSettings(pixel_format="Mono8", width=256, height=128, frame_rate=100), **selector
    )
    src.start()
    try:
        assert src.state is CameraState.ACQUIRING
        part_ids = []
        for _ in range(5):
            with src.fetch(2.0) as frame:
                assert frame.status is FrameStatus.COMPLETE
                assert frame.pixel_format == "Mono8"
                assert frame.data.shape == (128, 256)
                assert frame.data.dtype == np.uint8
                assert not frame.data.flags.owndata  # a view on the producer's buffer, no copy
                part_ids.append(frame.part_id)
        assert part_ids == list(range(part_ids[0], part_ids[0] + 5))
        assert src.counters.frames == 5
    finally:
        src.close()
    assert src.state is CameraState.CLOSED


def test_settings_change_geometry_format_and_rate(viky) -> None:  # type: ignore[no-untyped-def]
    with viky.fetch(2.0) as frame:
        assert frame.data.shape == (240, 320)
    viky.apply_settings(CameraSettings(pixel_format="RGBa8", width=400, height=300, frame_rate=50))
    with viky.fetch(2.0) as frame:
        assert frame.pixel_format == "RGBa8"
        assert frame.data.shape == (300, 400, 4)
    nodes = viky._session.nodes
    assert nodes.get("AcquisitionFrameRate") == pytest.approx(50)
    viky.apply_settings(CameraSettings(pixel_format="Mono8", width=800, height=100))
    with viky.fetch(2.0) as frame:
        assert frame.data.shape == (100, 800)


@pytest.mark.parametrize(
    ("settings", "node", "allowed"),
    [
        (CameraSettings(width=5000), "Width", "100..800"),
        (CameraSettings(height=50), "Height", "100..800"),
        (CameraSettings(frame_rate=500), "AcquisitionFrameRate", "1..200"),
        (CameraSettings(pixel_format="BayerRG8"), "PixelFormat", "one of RGBa8, Mono8"),
        (CameraSettings(exposure_us=100), "ExposureTime", "no such node"),
        (CameraSettings(trigger_mode="software"), "TriggerMode", "no such node"),
        # a valid width with an invalid format: nothing may be written
        (CameraSettings(width=640, pixel_format="RGB8"), "PixelFormat", "one of"),
    ],
)
def test_refuses_bad_values_and_keeps_running_settings(viky, settings, node, allowed) -> None:  # type: ignore[no-untyped-def]
    nodes = viky._session.nodes
    before = {n: nodes.get(n) for n in ("Width", "Height", "PixelFormat", "AcquisitionFrameRate")}
    with pytest.raises(CameraSettingError) as err:
        viky.apply_settings(settings)
    assert err.value.node == node
    assert allowed in err.value.allowed
    assert node in str(err.value) and "refused" in str(err.value)
    assert {n: nodes.get(n) for n in before} == before
    with viky.fetch(2.0) as frame:  # still streaming with the old settings
        assert frame.data.shape == (240, 320)


def test_bad_settings_refused_before_acquisition_starts(viky_cti: Path) -> None:
    src = _source(viky_cti, CameraSettings(width=320, pixel_format="Mono16"), serial_number="0")
    with pytest.raises(CameraSettingError) as err:
        src.start()
    assert err.value.node == "PixelFormat"
    assert src.state is not CameraState.ACQUIRING
    src.close()


def test_absent_device_is_fatal_and_lists_what_was_found(viky_cti: Path) -> None:
    src = _source(viky_cti, serial_number="42")
    with pytest.raises(CameraFatalError) as err:
        src.start()
    text = str(err.value)
    assert "serial_number='42'" in text and "3 found" in text
    for serial in ("0", "1", "2"):
        assert f"serial='{serial}'" in text
    src.close()


def test_producer_path_from_environment(viky_cti: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENICAM_GENTL64_PATH", str(viky_cti.parent))
    src = open_source(CameraConfig(id="env", kind="genicam", options={}))
    assert isinstance(src, GenicamSource)
    assert src.producers == [viky_cti]
    src.close()
    monkeypatch.setenv("GENICAM_GENTL64_PATH", "")
    with pytest.raises(CameraFatalError, match="GENICAM_GENTL64_PATH"):
        open_source(CameraConfig(id="env", kind="genicam", options={}))


def test_fetch_times_out_instead_of_blocking(viky_cti: Path) -> None:
    src = _source(viky_cti, CameraSettings(frame_rate=1), serial_number="2")
    src.start()
    try:
        src.fetch(3.0).release()
        with pytest.raises(FetchTimeout):
            src.fetch(0.05)
        assert src.counters.timeouts == 1
    finally:
        src.close()


def test_every_buffer_goes_back_to_the_producer(viky_cti: Path) -> None:
    """The producer's own counters prove it: once we stop fetching, every announced buffer
    gets filled and waits for delivery; a buffer we kept would be missing from that count."""
    src = _source(
        viky_cti, CameraSettings(width=200, height=200, frame_rate=200), serial_number="0", num_buffers=6
    )
    src.start()
    try:
        for _ in range(60):
            frame = src.fetch(2.0)
            frame.release()
            assert frame.release() is False  # exactly once
        assert src.outstanding_frames == 0
        info = src.stream_info()
        assert info["num_announced"] == 6
        assert info["num_delivered"] == src.counters.frames == 60
        assert _wait_for(lambda: src.stream_info()["num_awaiting_delivery"] == 6)

        # negative control: a frame we hold is a buffer the producer cannot fill
        held = src.fetch(2.0)
        for _ in range(12):
            src.fetch(2.0).release()
        time.sleep(0.2)
        assert src.stream_info()["num_awaiting_delivery"] == 5
        held.release()
        assert _wait_for(lambda: src.stream_info()["num_awaiting_delivery"] == 6)
    finally:
        src.close()


def test_frame_released_after_stop_is_harmless(viky_cti: Path) -> None:
    src = _source(viky_cti, CameraSettings(frame_rate=100), serial_number="1")
    src.start()
    frame = src.fetch(2.0)
    src.close()  # the producer revoked every buffer; the late release must not touch it
    assert frame.release() is True
    with pytest.raises(FrameReleasedError):
        _ = frame.data


class _Nodes:
    """In-memory NodeAccess whose ``fail_on`` node refuses writes (after validation passed)."""

    def __init__(self, fail_on: str) -> None:
        self.values = {"Width": 100, "Height": 100, "PixelFormat": "Mono8"}
        self.fail_on = fail_on

    def info(self, name: str) -> NodeInfo | None:
        return NodeInfo(name, "int", 1, 1000, 1) if name in self.values else None

    def get(self, name: str) -> object:
        return self.values[name]

    def set(self, name: str, value: object) -> None:
        if name == self.fail_on:
            raise RuntimeError("device busy")
        self.values[name] = value  # type: ignore[assignment]

    def execute(self, name: str) -> None:
        raise AssertionError


def test_a_write_failing_midway_is_rolled_back() -> None:
    nodes = _Nodes(fail_on="PixelFormat")
    plan = SettingsPlan([Write("Width", 640), Write("Height", 480), Write("PixelFormat", "RGB8")])
    with pytest.raises(CameraSettingError) as err:
        apply_plan(nodes, plan)
    assert err.value.node == "PixelFormat"
    assert nodes.values == {"Width": 100, "Height": 100, "PixelFormat": "Mono8"}


def test_settings_validated_before_start_without_streaming(viky_cti: Path) -> None:
    """The station validates a recipe's camera block before starting acquisition."""
    src = _source(viky_cti, serial_number="2")
    try:
        with pytest.raises(CameraSettingError):
            src.validate_settings(CameraSettings(width=900))
        assert src.state is CameraState.CONNECTED  # connected to check, not streaming
        src.validate_settings(CameraSettings(width=800, pixel_format="Mono8"))
        src.apply_settings(CameraSettings(width=640, height=480, pixel_format="Mono8"))
        src.start()
        with src.fetch(2.0) as frame:
            assert frame.data.shape == (480, 640)
    finally:
        src.close()
