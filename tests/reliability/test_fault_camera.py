"""Camera faults under a running station: the synthetic camera's own fault hooks (device lost
for a second, then back), and an Aravis fake GigE Vision camera (real GVCP/GVSP on loopback)
killed and restarted under the station, or losing 2 % of its stream packets.

Each test ends with the same check: every part the station knew of got exactly one verdict,
every verdict is in the result log, and the station decided real verdicts again after the
fault."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from camera.paced import PacedSource
from camera.source import CameraState
from plc.vocabulary import ResultCode, StatusBits
from tests.reliability.faults import (
    FAIL_SAFE_CODES,
    assert_every_part_logged_once,
    events,
    pass_model,
    real_verdicts,
    running_station,
    verdicts,
    wait_for,
)
from tests.reliability.station_env import make_env

FAKE_CAMERA = "arv-fake-gv-camera-0.8"
LOOPBACK = "127.0.0.1"  # the fake camera only listens on an interface address (not 127.0.0.2)


def test_synthetic_camera_lost_for_a_second_and_back(tmp_path: Path) -> None:
    config = make_env(tmp_path)
    pass_model(tmp_path / "recipes" / "tiny.onnx")
    saw_error = False
    with running_station(config) as station:
        source = station.lanes[0].source
        assert isinstance(source, PacedSource)
        wait_for(lambda: verdicts(station) >= 25, 30, "first verdicts")
        lost_ns = time.time_ns()
        source.inject_failure(duration_s=1.0)  # every fetch raises CameraRetryableError for 1 s
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            saw_error |= bool(int(station.snapshot()["status"]) & StatusBits.ERROR)  # type: ignore[call-overload]
            time.sleep(0.02)
        wait_for(lambda: source.state is CameraState.ACQUIRING, 5, "camera back")
        back = real_verdicts(station)
        wait_for(lambda: real_verdicts(station) >= back + 25, 30, "real verdicts after the camera's return")
        wait_for(lambda: not int(station.snapshot()["status"]) & StatusBits.ERROR, 5, "error bit cleared")  # type: ignore[call-overload]
    rows = assert_every_part_logged_once(station, config)
    assert saw_error, "the status never showed ERROR while the camera was away"
    lost = [r for r in rows if r.reason == "camera_error"]
    assert len(lost) >= 5, "a lost camera must give fail-safe verdicts, not silence"
    assert all(r.result_code in FAIL_SAFE_CODES for r in lost)
    assert all(r.t_verdict_ns >= lost_ns for r in lost)
    kinds = [e[1] for e in events(config)]
    assert kinds.count("camera_lost") == 1 and kinds.count("camera_back") == 1
    back_ns = events(config, "camera_back")[0][0]
    after = [r for r in rows if r.t_verdict_ns > back_ns and not r.reason]
    assert len(after) >= 20, "no real verdicts after the camera came back"
    assert source.counters.reconnects == 1


# --- Aravis fake GigE Vision camera -----------------------------------------------------------


def _aravis_missing() -> str | None:
    if shutil.which(FAKE_CAMERA) is None:
        return f"{FAKE_CAMERA} not found (apt-get install -y aravis-tools)"
    try:
        import gi

        gi.require_version("Aravis", "0.8")
        from gi.repository import Aravis  # noqa: F401
    except (ImportError, ValueError) as exc:
        return f"Aravis GObject bindings unavailable ({exc}); apt-get install -y gir1.2-aravis-0.8, pip install PyGObject"
    return None


class FakeGigECamera:
    """``arv-fake-gv-camera-0.8 -i 127.0.0.1`` as a child we can kill and restart."""

    def __init__(self, *extra: str) -> None:
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        from camera.aravis import gvcp_alive

        self.proc = subprocess.Popen([FAKE_CAMERA, "-i", LOOPBACK, *self.extra],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + 10
        while not gvcp_alive(LOOPBACK, timeout_s=0.1, tries=1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"{FAKE_CAMERA} did not come up on {LOOPBACK}")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@pytest.fixture
def gige_camera() -> Iterator[type[FakeGigECamera]]:
    missing = _aravis_missing()
    if missing:
        pytest.skip(missing)
    from camera.aravis import gvcp_alive

    # Only one fake camera fits on the loopback address: wait for another test's to go.
    deadline = time.monotonic() + 30
    while gvcp_alive(LOOPBACK, timeout_s=0.1, tries=1):
        if time.monotonic() > deadline:
            pytest.skip(f"another GigE Vision device keeps answering on {LOOPBACK}:3956")
        time.sleep(0.5)
    started: list[FakeGigECamera] = []

    def make(*extra: str) -> FakeGigECamera:
        cam = FakeGigECamera(*extra)
        started.append(cam)
        cam.start()
        return cam

    yield make  # type: ignore[misc]
    for cam in started:
        cam.kill()


def _aravis_env(tmp_path: Path, **options: object) -> Path:
    camera = {"id": "gige", "kind": "aravis", "fetch_timeout_ms": 500,
              "options": {"address": LOOPBACK, "packet_size": 8192, **options}}  # fmt: skip
    config = make_env(tmp_path, extra={"cameras": [camera]})
    pass_model(tmp_path / "recipes" / "tiny.onnx")
    return config


# Guards two bugs this test found (both fixed in camera/): the lost session's stream was
# finalized on the station's acquisition thread (7.9 s without a fail-safe verdict), and frames
# after the reconnect reused the part ids the station had given the camera_error parts.
def test_gige_camera_killed_and_restarted_under_the_station(tmp_path: Path, gige_camera) -> None:  # type: ignore[no-untyped-def]
    cam = gige_camera()
    config = _aravis_env(tmp_path)
    with running_station(config) as station:
        source = station.lanes[0].source

        def camera_fail_safes() -> int:
            return int(station.stats.counts.get("fail_safe.camera_error", 0))

        wait_for(lambda: verdicts(station) >= 20, 30, "first verdicts from the GigE camera")
        cam.kill()
        killed = time.monotonic()
        wait_for(lambda: source.state is CameraState.RECONNECTING, 3, "camera loss noticed")
        wait_for(lambda: camera_fail_safes() > 0, 15, "the first fail-safe verdict after the camera died")
        silent_s = time.monotonic() - killed
        # fail-safe verdicts keep coming while the camera is dead, before it is back (event
        # order; how fast the loss is noticed is for `linecheck bench`, not for a test)
        wait_for(lambda: camera_fail_safes() >= 5, 30, "fail-safe verdicts while the camera is dead")
        during = camera_fail_safes()
        cam.start()
        wait_for(lambda: source.state is CameraState.ACQUIRING, 10, "camera reconnected")
        back = real_verdicts(station)
        wait_for(lambda: real_verdicts(station) >= back + 20, 30, "real verdicts after the reconnect")
    print(f"first fail-safe verdict {silent_s:.2f} s after the camera died")
    assert during >= 5, "a lost camera must keep giving fail-safe verdicts"
    rows = assert_every_part_logged_once(station, config)
    back_ns = events(config, "camera_back")[0][0]
    assert sum(1 for r in rows if r.t_verdict_ns > back_ns and not r.reason) >= 10
    assert source.counters.reconnects >= 1


def test_gige_packet_loss_gives_incomplete_frame_fail_safes_never_pass(tmp_path: Path, gige_camera) -> None:  # type: ignore[no-untyped-def]
    gige_camera("-r", "20")  # 2 % of the GVSP packets are dropped by the camera
    config = _aravis_env(tmp_path, packet_resend=False)
    with running_station(config) as station:
        source = station.lanes[0].source
        wait_for(lambda: source.counters.incomplete >= 5 and verdicts(station) >= 40, 60, "incomplete frames")
    rows = assert_every_part_logged_once(station, config)
    incomplete = [r for r in rows if r.reason == "incomplete_frame"]
    # the model never detects anything: a PASS is only possible for a frame that was inspected
    assert len(incomplete) == source.counters.incomplete > 0
    assert all(r.result_code in FAIL_SAFE_CODES for r in incomplete)
    passed = [r for r in rows if not r.reason]
    assert passed, "no complete frame was inspected"
    assert all(r.result_code == int(ResultCode.PASS) for r in passed)  # the model never detects anything
