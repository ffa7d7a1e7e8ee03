"""SyntheticSource and the part generator: determinism, ground truth, pool, pacing, trigger, faults."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from pydantic import ValidationError

from camera.config import CameraConfig, CameraSettings
from camera.errors import CameraFatalError, CameraRetryableError, CameraSettingError, FetchTimeout
from camera.frame import FrameReleasedError, FrameStatus
from camera.source import CameraState, open_source
from camera.states import CAMERA_TRANSITIONS
from camera.synthetic import KNOWN_CLASSES, SyntheticSource, generate_part
from tests.transition_log import TransitionLog, refusals

SMALL = {"width": 320, "height": 256}


def make(settings: CameraSettings | None = None, **options: object) -> SyntheticSource:
    return SyntheticSource("cam", SyntheticSource.Options.model_validate({**SMALL, "rate_hz": 0, **options}), settings)


def test_open_source_by_kind_and_states() -> None:
    source = open_source(CameraConfig(id="c1", kind="synthetic", options={**SMALL, "rate_hz": 0}))
    assert isinstance(source, SyntheticSource)
    assert source.state is CameraState.CONNECTED
    with source:
        assert source.state is CameraState.ACQUIRING
        with source.fetch(1.0) as frame:
            assert (frame.part_id, frame.frame_id, frame.camera_id) == (1, 1, "c1")
            assert frame.data.shape == (256, 320) and frame.data.dtype == np.uint8
            assert frame.pixel_format == "Mono8" and frame.complete
    assert source.state is CameraState.CLOSED
    assert source.counters.snapshot()["frames"] == 1


def test_options_are_validated() -> None:
    with pytest.raises(ValidationError):
        SyntheticSource.Options.model_validate({"pixel_format": "BayerRG8"})
    with pytest.raises(ValidationError):
        SyntheticSource.Options.model_validate({"classes": ("scratch", "crack")})
    with pytest.raises(ValidationError):
        SyntheticSource.Options.model_validate({"bogus": 1})


def test_fetch_before_start_is_refused() -> None:
    with pytest.raises(CameraFatalError, match="not acquiring"):
        make().fetch(0.1)


def test_generator_is_deterministic_per_seed() -> None:
    a, ta = generate_part(np.random.default_rng(42), 640, 512)
    b, tb = generate_part(np.random.default_rng(42), 640, 512)
    c, _ = generate_part(np.random.default_rng(43), 640, 512)
    assert np.array_equal(a, b) and ta == tb
    assert not np.array_equal(a, c)


def test_source_is_deterministic_per_seed_and_part() -> None:
    def grab(seed: int, n: int) -> list[tuple[bytes, object]]:
        with make(seed=seed) as source:
            out: list[tuple[bytes, object]] = []
            for _ in range(n):
                with source.fetch(1.0) as frame:
                    out.append((frame.data.tobytes(), frame.ground_truth))
            return out

    first, again, other = grab(5, 3), grab(5, 3), grab(6, 3)
    assert first == again
    assert [img for img, _ in first] != [img for img, _ in other]


@pytest.mark.parametrize("fmt", ["Mono8", "RGB8"])
def test_ground_truth_boxes_inside_frame_and_on_part(fmt: str) -> None:
    rng = np.random.default_rng(0)
    w, h = 640, 512
    for _ in range(60):
        img, truth = generate_part(rng, w, h, fmt, defect_rate=0.8)
        assert img.shape == ((h, w) if fmt == "Mono8" else (h, w, 3))
        assert truth.part_box_xyxy is not None
        px1, py1, px2, py2 = truth.part_box_xyxy
        assert 0 <= px1 < px2 <= w and 0 <= py1 < py2 <= h
        assert truth.defective == bool(truth.defects)
        for d in truth.defects:
            assert d.class_name in KNOWN_CLASSES
            x1, y1, x2, y2 = d.box_xyxy
            assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            assert px1 <= cx <= px2 and py1 <= cy <= py2, "defect centre must lie on the part"
            assert min(x2 - x1, y2 - y1) >= 20 * 0.5 * 0.99  # >= 20 px at 1280x1024, scaled
            if d.class_name == "missing_cap":
                assert len(truth.defects) == 1


def test_defect_share_follows_defect_rate() -> None:
    rng = np.random.default_rng(1)
    n = 400
    defective = sum(generate_part(rng, 320, 256, defect_rate=0.3)[1].defective for _ in range(n))
    assert 0.23 <= defective / n <= 0.37
    seen = {d.class_name for _ in range(60) for d in generate_part(rng, 320, 256, defect_rate=1.0)[1].defects}
    assert seen == set(KNOWN_CLASSES)
    only = {d.class_name for _ in range(30) for d in generate_part(rng, 320, 256, defect_rate=1.0, classes=("dent",))[1].defects}
    assert only == {"dent"}


def test_defects_change_the_pixels_where_the_truth_says() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        img, truth = generate_part(rng, 640, 512, defect_rate=1.0, classes=("scratch", "dent"))
        assert truth.defects
        for d in truth.defects:  # the box holds visible structure, not flat cap surface
            x1, y1, x2, y2 = (int(v) for v in d.box_xyxy)
            assert float(img[y1:y2, x1:x2].std()) > 5.0


def test_release_returns_buffer_exactly_once() -> None:
    with make(pool_size=2) as source:
        frame = source.fetch(1.0)
        assert source.pool.free == 1
        assert frame.release() is True
        assert frame.release() is False
        assert source.pool.free == 2
        with pytest.raises(FrameReleasedError):
            _ = frame.data


def test_pool_exhaustion_without_schedule_times_out() -> None:
    with make(pool_size=2) as source:
        held = [source.fetch(1.0), source.fetch(1.0)]
        t0 = time.perf_counter()
        with pytest.raises(FetchTimeout, match="no free buffer"):
            source.fetch(0.1)
        assert time.perf_counter() - t0 >= 0.09
        assert source.counters.timeouts == 1
        held[0].release()
        with source.fetch(1.0) as frame:  # a returned buffer is reused
            assert frame.part_id == 3  # back-pressure: waiting for a buffer loses no part
        held[1].release()


def test_pool_exhaustion_free_running_drops_frames() -> None:
    with make(pool_size=2, rate_hz=200) as source:
        held = [source.fetch(1.0), source.fetch(1.0)]
        with pytest.raises(FetchTimeout):
            source.fetch(0.05)
        assert source.counters.dropped >= 5  # ~10 parts went by without a buffer
        for f in held:
            f.release()
        with source.fetch(1.0) as frame:
            assert frame.part_id > 3  # the gap shows the dropped parts
        assert source.counters.frames == 3


def test_rate_pacing_roughly_holds() -> None:
    with make(rate_hz=200) as source:
        t0 = time.perf_counter()
        for _ in range(20):
            source.fetch(1.0).release()
        assert time.perf_counter() - t0 >= 0.09


def test_stop_interrupts_a_waiting_fetch() -> None:
    source = make(rate_hz=0.2)
    source.start()
    source.fetch(1.0).release()
    errors: list[BaseException] = []

    def waiter() -> None:
        try:
            source.fetch(600.0)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=waiter)
    thread.start()
    time.sleep(0.05)
    source.close()
    thread.join(120.0)  # woken by close, long before its own 600 s timeout
    assert not thread.is_alive()
    assert isinstance(errors[0], FetchTimeout)


def test_max_parts_stops_the_belt() -> None:
    with make(max_parts=2) as source:
        source.fetch(1.0).release()
        source.fetch(1.0).release()
        with pytest.raises(FetchTimeout, match="max_parts"):
            source.fetch(0.05)


def test_software_trigger_carries_part_id() -> None:
    with make(CameraSettings(trigger_mode="software"), rate_hz=20) as source:
        with pytest.raises(FetchTimeout, match="trigger"):
            source.fetch(0.05)
        source.trigger(1234)
        source.trigger()
        with source.fetch(1.0) as frame:
            assert frame.part_id == 1234
        with source.fetch(1.0) as frame:
            assert frame.part_id == 1235


def test_trigger_refused_in_free_run() -> None:
    with make() as source, pytest.raises(CameraFatalError, match="software"):
        source.trigger(1)


def test_injected_failure_raises_retryable_then_recovers(caplog: pytest.LogCaptureFixture) -> None:
    walked = TransitionLog()
    source = make()
    source.add_state_listener(walked)
    with source:
        source.inject_failure(fetches=2)
        for _ in range(2):
            with pytest.raises(CameraRetryableError, match="injected"):
                source.fetch(1.0)
            assert source.state is CameraState.RECONNECTING
        with source.fetch(1.0) as frame:
            assert frame.part_id == 3  # the two parts passed unseen
        assert source.state is CameraState.ACQUIRING
        assert source.counters.reconnects == 1
    assert walked.path() == ["connected", "acquiring", "reconnecting", "acquiring", "connected", "closed"]
    assert walked.outside(CAMERA_TRANSITIONS) == [] and refusals(caplog) == []


def test_a_transition_outside_the_table_is_refused_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    source = make()
    assert source.state is CameraState.CONNECTED
    assert source._set_state(CameraState.FAILED) is False  # failing needs a lost device first
    assert source.state is CameraState.CONNECTED
    assert refusals(caplog) == ["camera cam: connected -> failed is not an allowed transition; it stays connected"]
    source.close()
    with source:  # started again after close: through CONNECTED, as the table says
        assert source.state is CameraState.ACQUIRING
    assert len(refusals(caplog)) == 1


def test_injected_failure_for_a_duration() -> None:
    with make(rate_hz=100) as source:
        source.inject_failure(duration_s=0.1)
        failures = 0
        t0 = time.perf_counter()
        while True:
            try:
                source.fetch(1.0).release()
                break
            except CameraRetryableError:
                failures += 1
        assert failures >= 3 and time.perf_counter() - t0 >= 0.09


def test_incomplete_frames() -> None:
    with make(incomplete_rate=0.5, seed=2) as source:
        statuses = []
        for _ in range(40):
            with source.fetch(1.0) as frame:
                statuses.append(frame.status)
                if frame.status is FrameStatus.INCOMPLETE:
                    assert not frame.data[-10:].any()
        share = statuses.count(FrameStatus.INCOMPLETE) / 40
        assert 0.2 <= share <= 0.8
        assert source.counters.incomplete == statuses.count(FrameStatus.INCOMPLETE)
    with make() as source:
        source.inject_incomplete(1)
        assert source.fetch(1.0).status is FrameStatus.INCOMPLETE
        assert source.fetch(1.0).status is FrameStatus.COMPLETE


def test_settings_applied_and_refused() -> None:
    source = make(CameraSettings(pixel_format="RGB8", width=200, height=128))
    with source, source.fetch(1.0) as frame:
        assert frame.data.shape == (128, 200, 3) and frame.pixel_format == "RGB8"
    with pytest.raises(CameraSettingError, match="PixelFormat"):
        source.apply_settings(CameraSettings(pixel_format="BayerRG8"))
    with pytest.raises(CameraSettingError, match="TriggerMode"):
        source.validate_settings(CameraSettings(trigger_mode="hardware"))


def test_consumer_far_behind_schedule_loses_the_overflow() -> None:
    """More than pool_size slots late: the camera's queue overflowed, those parts are dropped;
    the frame handed out then carries the time the camera delivered it, not the fetch time."""
    with make(rate_hz=500, pool_size=4) as source:
        source.fetch(1.0).release()
        time.sleep(0.1)  # ~50 slots go by; the last 4 were still queued (8 ms behind)
        before = time.perf_counter()
        with source.fetch(1.0) as frame:
            assert frame.part_id > 10
            assert frame.t_ready < before
        assert source.counters.dropped == frame.part_id - 2
