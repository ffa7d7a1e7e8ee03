"""The reconnect supervisor's policy, with a scripted device (the real-peer behaviour is in
test_aravis.py: kill and restart of a real GigE Vision camera)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from camera.config import CameraSettings
from camera.errors import CameraFatalError, CameraRetryableError, CameraSettingError
from camera.nodemap import NodeInfo
from camera.session import DeviceLostError, RawFrame, Session, frame_id_gap
from camera.source import CameraState
from camera.states import CAMERA_TRANSITIONS
from camera.supervisor import SupervisedSource, SupervisorOptions
from tests.transition_log import TransitionLog, refusals


class Device:
    """A camera that can die, come back power-cycled (defaults restored) and refuse values."""

    def __init__(self) -> None:
        self.dead = False
        self.width_max = 128
        self.values: dict[str, Any] = {}
        self.power_cycle()
        self.connects = 0
        self.frame_id = 0

    def power_cycle(self) -> None:
        self.values = {"Width": 32, "Height": 32, "TriggerMode": "Off"}


class Nodes:
    def __init__(self, device: Device) -> None:
        self.device = device

    def info(self, name: str) -> NodeInfo | None:
        if name in ("Width", "Height"):
            return NodeInfo(name, "int", 16, self.device.width_max, 1)
        if name == "TriggerMode":
            return NodeInfo(name, "enum", entries=("Off", "On"))
        return None

    def get(self, name: str) -> Any:
        return self.device.values[name]

    def set(self, name: str, value: Any) -> None:
        self.device.values[name] = value

    def execute(self, name: str) -> None:
        raise AssertionError(name)


class FakeSession(Session):
    background_close = False

    def __init__(self, device: Device) -> None:
        self.device = device
        self.nodes = Nodes(device)

    def start_stream(self) -> None:
        pass

    def stop_stream(self) -> None:
        pass

    def grab(self, timeout_s: float) -> RawFrame:
        if self.device.dead:
            raise DeviceLostError("gone")
        time.sleep(0.001)
        self.device.frame_id += 1
        w, h = self.device.values["Width"], self.device.values["Height"]
        data = np.zeros((h, w), np.uint8)
        return RawFrame(data, "Mono8", w, h, self.device.frame_id, 0, time.perf_counter(), True, lambda: None)

    def probe(self) -> bool:
        return not self.device.dead

    def close(self, lost: bool) -> None:
        pass


@pytest.fixture
def device() -> Device:
    return Device()


@pytest.fixture
def source(device: Device) -> Iterator[SupervisedSource]:
    def connect() -> Session:
        if device.dead:
            raise CameraRetryableError("no answer")
        device.connects += 1
        return FakeSession(device)

    options = SupervisorOptions(probe_interval_s=0.01, backoff_initial_s=0.01, backoff_max_s=0.04)
    src = SupervisedSource("sim", CameraSettings(width=64, height=48), options, connect)
    yield src
    src.close()


def _wait(predicate: Any, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


def _outage(device: Device, src: SupervisedSource, down_s: float) -> None:
    device.dead = True
    _wait(lambda: src.state is CameraState.RECONNECTING)
    time.sleep(down_s)
    device.power_cycle()
    device.dead = False
    _wait(lambda: src.state is CameraState.ACQUIRING)


def test_reconnect_reapplies_settings_with_capped_backoff_reset_on_success(
    device: Device, source: SupervisedSource, caplog: pytest.LogCaptureFixture
) -> None:
    walked = TransitionLog()
    source.add_state_listener(walked)
    source.start()
    assert device.values["Width"] == 64
    _outage(device, source, down_s=0.3)
    assert device.values["Width"] == 64, "settings re-applied to the power-cycled camera"
    assert source.counters.reconnects == 1
    first = list(source.backoff_waits)
    assert first[:3] == [0.01, 0.02, 0.04] and set(first[3:]) <= {0.04}  # doubling, capped
    source.backoff_waits.clear()
    _outage(device, source, down_s=0.05)
    assert list(source.backoff_waits)[0] == 0.01  # reset after the successful reconnect
    assert source.counters.reconnects == 2
    with source.fetch(1.0) as frame:
        assert frame.data.shape == (48, 64)
    source.stop()
    assert walked.path() == ["closed", "connected", "acquiring", "reconnecting", "acquiring", "reconnecting",
                             "acquiring", "closed"]  # fmt: skip
    assert walked.outside(CAMERA_TRANSITIONS) == [] and refusals(caplog) == []


def test_device_returning_with_settings_it_refuses_fails_for_good(
    device: Device, source: SupervisedSource, caplog: pytest.LogCaptureFixture
) -> None:
    walked = TransitionLog()
    source.add_state_listener(walked)
    source.start()
    device.dead = True
    _wait(lambda: source.state is CameraState.RECONNECTING)
    device.width_max = 50  # another camera model was put in
    device.dead = False
    _wait(lambda: source.state is CameraState.FAILED)
    assert "Width" in (source.last_error or "")
    with pytest.raises(CameraFatalError):
        source.fetch(0.1)
    with pytest.raises(CameraRetryableError):
        source.start()  # a failed camera is only closed, not restarted in place
    source.close()
    assert walked.path() == ["closed", "connected", "acquiring", "reconnecting", "failed", "closed"]
    assert walked.outside(CAMERA_TRANSITIONS) == [] and refusals(caplog) == []


def test_failed_fetches_consume_part_ids_and_frames_carry_trigger_ids(
    device: Device, source: SupervisedSource
) -> None:
    source.start()
    with source.fetch(1.0) as frame:
        first = frame.part_id
    device.dead = True
    with pytest.raises(DeviceLostError):
        source.fetch(1.0)  # the part that was due now gets a fail-safe verdict
    with pytest.raises(CameraRetryableError):
        source.fetch(1.0)
    device.dead = False
    _wait(lambda: source.state is CameraState.ACQUIRING)
    with source.fetch(1.0) as frame:
        assert frame.part_id == first + 3
    source.trigger(900)  # free-run: the id travels with the next frame
    with source.fetch(1.0) as frame:
        assert frame.part_id == 900
    with source.fetch(1.0) as frame:
        assert frame.part_id == 901


def test_refused_settings_leave_the_device_untouched(device: Device, source: SupervisedSource) -> None:
    source.start()
    with pytest.raises(CameraSettingError):
        source.apply_settings(CameraSettings(width=100, height=500))  # height refused, width valid
    assert (device.values["Width"], device.values["Height"]) == (64, 48)


@pytest.mark.parametrize(
    ("last", "current", "gap"),
    [
        (None, 5, 0),
        (5, 6, 0),
        (5, 8, 2),
        (65534, 65535, 0),
        (65535, 1, 0),
        (65534, 2, 2),
        (100, 3, 0),
        (10, 100_000, 0),
    ],
)
def test_frame_id_gaps(last: int | None, current: int, gap: int) -> None:
    assert frame_id_gap(last, current) == gap
