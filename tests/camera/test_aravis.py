"""camera.aravis against Aravis' fake GigE Vision camera (real GVCP/GVSP on loopback)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from camera.config import CameraConfig, CameraSettings
from camera.errors import CameraFatalError, CameraRetryableError, CameraSettingError, FetchTimeout
from camera.frame import FrameReleasedError, FrameStatus
from camera.source import CameraState, open_source
from camera.states import CAMERA_TRANSITIONS
from tests.transition_log import TransitionLog, refusals

SETTINGS = CameraSettings(pixel_format="Mono8", width=640, height=480, frame_rate=1000)


def _source(address: str, settings: CameraSettings = SETTINGS, **options: object):  # type: ignore[no-untyped-def]
    opts = {"address": address, "packet_size": 8192, **options}
    return open_source(CameraConfig(id="gige", kind="aravis", options=opts), settings)


def _is_fake_pattern(image: np.ndarray) -> bool:
    """At default exposure and gain the fake camera draws pixel(x, y) = (x + y + frame_id)
    mod 255: a buffer missing packets (stale or zero bytes) cannot pass this check."""
    h, w = image.shape
    expected = (int(image[0, 0]) + np.arange(w)[None, :] + np.arange(h)[:, None]) % 255
    return bool(np.array_equal(image, expected.astype(np.uint8)))


def test_acquires_at_full_rate_into_our_buffer_pool(fake_camera) -> None:  # type: ignore[no-untyped-def]
    src = _source(fake_camera.address)
    src.start()
    try:
        pool = src.buffer_pool()
        assert len(pool) == 16
        statuses = {FrameStatus.COMPLETE: 0, FrameStatus.INCOMPLETE: 0}
        t_end = time.monotonic() + 2.0
        while time.monotonic() < t_end:
            with src.fetch(1.0) as frame:
                statuses[frame.status] += 1
                if frame.complete:
                    assert frame.data.shape == (480, 640)
                    assert any(np.shares_memory(frame.data, array) for array in pool)  # no host copy
                    if statuses[FrameStatus.COMPLETE] % 50 == 1:
                        assert _is_fake_pattern(frame.data)
        assert statuses[FrameStatus.COMPLETE] > 50
        assert src.counters.frames == sum(statuses.values())
        assert src.counters.incomplete == statuses[FrameStatus.INCOMPLETE]
        assert src.outstanding_frames == 0
        # every buffer is back with Aravis: once the camera stops sending, none is being
        # filled, so all 16 sit in the stream's input or output queue (none leaked with us)
        src._session._cam.stop_acquisition()

        def queued() -> int:
            info = src.stream_info()
            return int(info["n_input_buffers"] + info["n_output_buffers"])

        deadline = time.monotonic() + 3
        while queued() != 16 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert queued() == src.stream_info()["n_pool"] == 16
    finally:
        src.close()


def test_settings_refusals_and_software_trigger(fake_camera) -> None:  # type: ignore[no-untyped-def]
    src = _source(
        fake_camera.address, CameraSettings(pixel_format="Mono8", width=320, height=240, frame_rate=100)
    )
    src.start()
    try:
        refused = [
            (CameraSettings(width=5000), "Width", "1..2048"),
            (CameraSettings(pixel_format="Mono16"), "PixelFormat", "Mono8"),
            (CameraSettings(gain_db=3.0), "Gain", "no such node"),
            (CameraSettings(trigger_mode="hardware"), "TriggerSource", "Line0"),
            (
                CameraSettings(
                    trigger_mode="hardware", trigger_source="Line0", trigger_activation="FallingEdge"
                ),
                "TriggerActivation",
                "RisingEdge",
            ),
        ]
        for settings, node, allowed in refused:
            with pytest.raises(CameraSettingError) as err:
                src.apply_settings(settings)
            assert err.value.node == node and allowed in err.value.allowed
        frame = src.fetch(1.0)
        while not frame.complete:  # a loaded host may lose a loopback packet now and then
            frame.release()
            frame = src.fetch(1.0)
        with frame:  # untouched: still 320x240 free-run
            assert frame.data.shape == (240, 320)

        src.apply_settings(
            CameraSettings(
                pixel_format="BayerRG8", width=256, height=128, exposure_us=1000, trigger_mode="software"
            )
        )
        assert src._session.nodes.get("TriggerMode") == "On"
        assert src._session.nodes.get("ExposureTimeAbs") == pytest.approx(1000)
        for part_id in (501, 502, 503):
            src.trigger(part_id)
            with src.fetch(2.0) as frame:  # metadata holds for incomplete frames too
                assert (frame.part_id, frame.pixel_format, frame.height, frame.width) == (
                    part_id,
                    "BayerRG8",
                    128,
                    256,
                )
                assert not frame.complete or frame.data.shape == (128, 256)
        with pytest.raises(FetchTimeout):
            src.fetch(0.3)  # no trigger, no frame, and no endless wait
    finally:
        src.close()


def test_packet_loss_gives_incomplete_frames_never_complete(fake_camera_factory) -> None:  # type: ignore[no-untyped-def]
    cam = fake_camera_factory("-r", "20")  # 2 % of stream packets dropped
    src = _source(
        cam.address,
        CameraSettings(pixel_format="Mono8", width=640, height=480, frame_rate=200),
        packet_resend=False,
    )
    src.start()
    try:
        complete = incomplete = 0
        t_end = time.monotonic() + 2.0
        while time.monotonic() < t_end or complete == 0:
            with src.fetch(1.0) as frame:
                if frame.status is FrameStatus.INCOMPLETE:
                    incomplete += 1
                    with pytest.raises(FrameReleasedError):
                        _ = frame.data  # an incomplete frame carries no pixels to inspect
                else:
                    complete += 1
                    assert _is_fake_pattern(frame.data)
        assert incomplete > 0
        assert src.counters.incomplete == incomplete
        assert src.counters.frames == complete + incomplete
        assert src.stream_info()["n_failures"] >= incomplete
    finally:
        src.close()


def test_device_loss_reconnect_and_resume(fake_camera, caplog) -> None:  # type: ignore[no-untyped-def]
    src = _source(
        fake_camera.address, CameraSettings(pixel_format="Mono8", width=320, height=240, frame_rate=200)
    )
    walked = TransitionLog()
    src.add_state_listener(walked)
    src.start()
    try:
        for _ in range(10):
            with src.fetch(1.0) as frame:
                last_part = frame.part_id
        failed = 0  # fetches failing with a camera error: each one is a fail-safe part
        fake_camera.kill()
        killed = time.monotonic()
        while src.state is not CameraState.RECONNECTING and time.monotonic() - killed < 30.0:
            time.sleep(0.01)
        assert src.state is CameraState.RECONNECTING, "camera loss not noticed"

        with pytest.raises(CameraRetryableError) as err:
            src.fetch(60.0)
        # a camera error, not a timeout: the fetch during reconnect failed fast instead of waiting
        assert not isinstance(err.value, FetchTimeout)
        failed += 1

        time.sleep(0.5)
        fake_camera.start()  # the camera returns on the same interface
        returned = time.monotonic()
        frame = None
        while frame is None and time.monotonic() - returned < 3.0:
            try:
                frame = src.fetch(0.2)
            except FetchTimeout:
                pass
            except CameraRetryableError:
                failed += 1
                time.sleep(0.02)
        assert frame is not None, (
            f"no frame within 3 s of the camera's return ({src.state}, {src.last_error})"
        )
        assert (frame.height, frame.width) == (240, 320)  # settings re-applied on the new session
        assert frame.part_id == last_part + failed + 1  # no part id reused after the outage
        frame.release()
        assert src.state is CameraState.ACQUIRING
        assert src.counters.reconnects == 1
        for _ in range(50):  # and it keeps streaming
            src.fetch(1.0).release()
    finally:
        src.close()
    assert src.state is CameraState.CLOSED
    assert walked.path() == ["closed", "connected", "acquiring", "reconnecting", "acquiring", "closed"]
    assert walked.outside(CAMERA_TRANSITIONS) == [] and refusals(caplog) == []


def test_absent_camera_is_fatal_at_start(fake_camera_factory) -> None:  # type: ignore[no-untyped-def]
    src = _source("127.0.0.1", probe_timeout_ms=100)  # nothing started: nobody answers
    with pytest.raises(CameraFatalError) as err:
        src.start()
    assert "address='127.0.0.1'" in str(err.value) and "found" in str(err.value)
    src.close()
