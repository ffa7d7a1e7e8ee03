"""The live view tap: throttled, downscaled, drawn and encoded off the hot path."""

from __future__ import annotations

import time

import cv2
import numpy as np

from camera.frame import Frame
from inference.detections import Detections
from line.hmi.live import LiveView
from line.loop.decision import Verdict
from line.recipes.model import Recipe
from plc.vocabulary import ResultCode


def make_recipe() -> Recipe:
    return Recipe.model_validate({"id": "cap-a", "code": 3, "model": {"onnx": "m.onnx", "layout": "yolov8"},
                                  "classes": ["scratch", "dent"], "reject": [{"classes": ["scratch"], "bin": 1}]})  # fmt: skip


def make_frame(part: int, width: int = 1280, height: int = 1024) -> Frame:
    data = np.full((height, width), 90, np.uint8)
    return Frame("cam1", part, part, 0, time.perf_counter(), "Mono8", width, height, _data=data)


def reject_verdict() -> Verdict:
    det = Detections(np.array([[200, 300, 600, 700]], np.float32), np.array([0.87], np.float32), np.array([0], np.int32))
    return Verdict(ResultCode.REJECT, 1, 1, det, ("scratch",))


def wait_encoded(live: LiveView, n: int) -> None:
    deadline = time.monotonic() + 5
    while live.encoded < n:
        assert time.monotonic() < deadline
        time.sleep(0.005)


def test_picture_has_boxes_label_and_banner_and_is_downscaled() -> None:
    live = LiveView(fps=5, max_width=640)
    try:
        live.offer(make_frame(7), reject_verdict(), make_recipe())
        wait_encoded(live, 1)
        image = live.latest("cam1")
        assert image is not None and image.meta["verdict"] == "REJECT" and image.meta["part_id"] == 7
        assert image.meta["recipe_id"] == "cap-a" and image.meta["defects"] == ["scratch 0.87"]
        pic = cv2.imdecode(np.frombuffer(image.jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert pic.shape == (512, 640, 3)
        b, g, r = (int(v) for v in pic[250, 100])  # left edge of the box (x 200/2, y between 150 and 350)
        assert r > 150 and g < 100 and b < 100, "red box for a reject"
        b, g, r = (int(v) for v in pic[400, 320])  # inside the box: the grey part stays grey
        assert abs(r - 90) < 20 and abs(g - 90) < 20
        assert pic[10, 600][2] > 150, "red verdict banner"
    finally:
        live.close()


def test_throttled_to_fps_and_hot_path_cost_measured() -> None:
    """50 parts/s for 2 s at 5 fps: about 10 pictures, the other offers return at once.
    Prints the hot-path cost (no assertion on speed: that is machine-dependent)."""
    live = LiveView(fps=5, max_width=640)
    recipe, verdict = make_recipe(), reject_verdict()
    try:
        t_end = time.monotonic() + 2.0
        part = 0
        while time.monotonic() < t_end:
            part += 1
            frame = make_frame(part)
            live.offer(frame, verdict, recipe)
            frame.release()  # the camera buffer goes back right after inspect, as in the station
            time.sleep(0.02)
        wait_encoded(live, live.taken)
        assert 8 <= live.taken <= 12, live.taken
        assert live.offered == part
        stats = live.stats()
        print(f"\nlive tap hot path over {part} offers (1280x1024 Mono8 -> 640x512): all offers {stats['hot_path_us']} µs; "
              f"offers that copied a picture {stats['copy_us']} µs")  # fmt: skip
        assert stats["hot_path_us"]["n"] == part and stats["copy_us"]["n"] == live.taken
    finally:
        live.close()


def test_busy_encoder_skips_instead_of_queueing() -> None:
    live = LiveView(fps=30, max_width=640)
    live.period_s = 0.0  # every offer is due
    recipe, verdict = make_recipe(), reject_verdict()
    try:
        for part in range(1, 200):
            live.offer(make_frame(part), verdict, recipe)
        wait_encoded(live, 1)
        assert live.taken + live.skipped_busy == 199 and live.skipped_busy > 0
    finally:
        live.close()


def test_rgb_frames_and_no_defects() -> None:
    live = LiveView(fps=5, max_width=320)
    try:
        data = np.zeros((240, 320, 3), np.uint8)
        data[..., 0] = 200  # red in RGB
        frame = Frame("cam2", 1, 1, 0, time.perf_counter(), "RGB8", 320, 240, _data=data)
        live.offer(frame, Verdict(ResultCode.PASS, 0, 0, Detections.empty(), ()), make_recipe())
        wait_encoded(live, 1)
        pic = cv2.imdecode(np.frombuffer(live.latest("cam2").jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert pic.shape == (240, 320, 3) and pic[200, 160][2] > 150 and pic[200, 160][0] < 60
        assert live.latest().meta["verdict"] == "PASS"
    finally:
        live.close()
