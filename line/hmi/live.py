"""The HMI's live view: the station's ``LiveTap``.

``offer`` runs on the hot path (the inference thread, before the PLC write), so it does the
least possible: a clock read and a comparison for every part; only when a picture is due
(at most ``fps`` per camera) and the encoder is idle, a strided, downscaled copy of the frame
(the camera buffer goes back to the pool right after) plus the verdict's boxes. Drawing
boxes, class names and the verdict with OpenCV and JPEG encoding happen on the encoder's own
thread. The cost of every ``offer`` call is measured (``hot_path_us``) so that it can be
shown and kept honest.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

import cv2
import numpy as np

from camera.frame import Frame
from line.loop.decision import Verdict
from line.loop.stats import LatencyRing
from line.recipes.model import Recipe
from plc.vocabulary import ResultCode

_VERDICT_TEXT = {ResultCode.PASS: "PASS", ResultCode.REJECT: "REJECT", ResultCode.FAIL_SAFE_REJECT: "FAIL-SAFE", ResultCode.HOLD: "HOLD"}
FULL_COPY_MAX_BYTES = 8 << 20
_GREEN, _RED, _AMBER = (60, 200, 60), (40, 40, 230), (0, 170, 255)  # BGR


@dataclass(frozen=True)
class _Job:
    image: np.ndarray  # copy of the frame (reused buffer: only read while the job is current)
    step: int  # decimation still to do on the encoder thread
    scale: float  # picture / frame pixels
    boxes: np.ndarray  # (N, 4) frame pixels
    labels: tuple[str, ...]
    result_code: ResultCode
    reason: str
    recipe_id: str
    camera_id: str
    part_id: int
    t_wall: float


@dataclass(frozen=True)
class LiveImage:
    seq: int
    jpeg: bytes
    meta: dict[str, object]


class LiveView:
    """Throttled, downscaled live pictures per camera, encoded off the hot path."""

    def __init__(self, fps: float = 5.0, max_width: int = 640, jpeg_quality: int = 80) -> None:
        self.period_s = 1.0 / fps
        self.max_width = max_width
        self.jpeg_quality = jpeg_quality
        self.hot_path_us = LatencyRing(4096)  # every offer() call
        self.copy_us = LatencyRing(1024)  # the offers that copied a picture
        self.offered = 0
        self.taken = 0
        self.skipped_busy = 0  # due, but the encoder was still busy with the last one
        self.encoded = 0
        self._due: dict[str, float] = {}
        self._buffers: dict[str, np.ndarray] = {}
        self._cond = threading.Condition()
        self._job: _Job | None = None
        self._latest: dict[str, LiveImage] = {}
        self._seq = 0
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="live-encoder", daemon=True)
        self._thread.start()

    # --- hot path --------------------------------------------------------------------------
    def offer(self, frame: Frame, verdict: Verdict, recipe: Recipe) -> None:
        t0 = time.perf_counter()
        self.offered += 1
        if t0 >= self._due.get(frame.camera_id, 0.0):
            if self._job is not None:  # a racy read is fine: worst case one picture is skipped
                self.skipped_busy += 1
            else:
                self._take(frame, verdict, recipe, t0)
        self.hot_path_us.add((time.perf_counter() - t0) * 1e6)

    def _take(self, frame: Frame, verdict: Verdict, recipe: Recipe, t0: float) -> None:
        self._due[frame.camera_id] = t0 + self.period_s
        data = frame.data
        step = max(1, math.ceil(frame.width / self.max_width))
        if data.nbytes <= FULL_COPY_MAX_BYTES:
            # a plain memcpy into a reused buffer is the cheapest copy there is (measured on our
            # 2-core box for 1280x1024 Mono8 from a cold camera pool: ~55 µs, against ~160 µs for a
            # strided 2x decimation and ~200 µs for cv2.resize INTER_AREA): downscale on the encoder
            shape, encoder_step = data.shape, step
        else:  # big frames: copy only every step-th row and column
            shape, encoder_step = (-(-data.shape[0] // step), -(-data.shape[1] // step), *data.shape[2:]), 1
        copy = self._buffers.get(frame.camera_id)
        if copy is None or copy.shape != shape or copy.dtype != data.dtype:
            # reused: only taken while the encoder is idle, so nobody reads it now; a fresh
            # allocation would page-fault on every picture
            copy = self._buffers[frame.camera_id] = np.empty(shape, data.dtype)
        np.copyto(copy, data if shape == data.shape else data[::step, ::step])
        labels = tuple(f"{n} {c:.2f}" for n, c in zip(verdict.class_names, verdict.defects.confidence.tolist(), strict=True))
        job = _Job(copy, encoder_step, 1.0 / step, verdict.defects.xyxy.copy(), labels, verdict.result_code, verdict.reason,
                   recipe.id, frame.camera_id, frame.part_id, time.time())  # fmt: skip
        with self._cond:
            self._job = job
            self._cond.notify()
        self.taken += 1
        self.copy_us.add((time.perf_counter() - t0) * 1e6)

    # --- encoder thread ----------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while self._job is None and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                job = self._job
            assert job is not None  # noqa: S101 - guarded by the loop above
            try:
                jpeg = self._encode(job)
            finally:
                with self._cond:
                    self._job = None
            if jpeg is None:
                continue
            with self._cond:
                self._seq += 1
                meta = {"seq": self._seq, "camera_id": job.camera_id, "part_id": job.part_id, "recipe_id": job.recipe_id,
                        "verdict": _VERDICT_TEXT.get(job.result_code, str(job.result_code)), "reason": job.reason,
                        "defects": list(job.labels), "t": job.t_wall}  # fmt: skip
                self._latest[job.camera_id] = LiveImage(self._seq, jpeg, meta)
                self.encoded += 1
                self._cond.notify_all()

    def _encode(self, job: _Job) -> bytes | None:
        image = render(job)
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        return buf.tobytes() if ok else None

    # --- readers (HMI) -----------------------------------------------------------------------
    def latest(self, camera_id: str | None = None) -> LiveImage | None:
        with self._cond:
            if camera_id is not None:
                return self._latest.get(camera_id)
            return max(self._latest.values(), key=lambda i: i.seq, default=None)

    def cameras(self) -> list[str]:
        with self._cond:
            return sorted(self._latest)

    def stats(self) -> dict[str, object]:
        return {
            "offered": self.offered, "taken": self.taken, "encoded": self.encoded, "skipped_busy": self.skipped_busy,
            "hot_path_us": _rounded(self.hot_path_us.percentiles()), "copy_us": _rounded(self.copy_us.percentiles()),
        }  # fmt: skip

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join()


def _rounded(p: dict[str, float]) -> dict[str, float | None]:
    return {k: (None if isinstance(v, float) and math.isnan(v) else round(float(v), 2)) for k, v in p.items()}


def render(job: _Job) -> np.ndarray:
    """Boxes, class labels and the verdict banner on a BGR copy of the downscaled frame."""
    img = job.image
    if job.step > 1:
        h, w = img.shape[:2]
        img = cv2.resize(img, (-(-w // job.step), -(-h // job.step)), interpolation=cv2.INTER_AREA)
    if img.dtype != np.uint8:
        img = (img >> 8).astype(np.uint8) if img.dtype == np.uint16 else img.astype(np.uint8)
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    elif img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    else:
        img = np.ascontiguousarray(img[:, :, :3])
    colour = {ResultCode.PASS: _GREEN, ResultCode.REJECT: _RED}.get(job.result_code, _AMBER)
    thick = max(1, round(img.shape[1] / 320))
    for (x1, y1, x2, y2), label in zip((job.boxes * job.scale).round().astype(int).tolist(), job.labels, strict=True):
        cv2.rectangle(img, (x1, y1), (x2, y2), colour, thick)
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
        ty = y1 - 4 if y1 - th - 6 >= 0 else y2 + th + 4
        cv2.rectangle(img, (x1, ty - th - 3), (x1 + tw + 4, ty + 3), colour, -1)
        cv2.putText(img, label, (x1 + 2, ty), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    text = _VERDICT_TEXT.get(job.result_code, str(job.result_code)) + (f" ({job.reason})" if job.reason else "")
    banner = f"{text}  part {job.part_id}  recipe {job.recipe_id}  {job.camera_id}"
    cv2.rectangle(img, (0, 0), (img.shape[1], 26), colour, -1)
    cv2.putText(img, banner, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def bench(parts: int = 2000, width: int = 1280, height: int = 1024, pool: int = 8) -> dict[str, object]:
    """Hot-path cost of ``offer`` (``python -m line.hmi.live``): due offers (the copy) with the
    encoder idle, and offers that are not due, over a pool of camera-sized buffers that the
    "camera" rewrites before each offer (as a real pool: the source is not hot in cache)."""
    from inference.detections import Detections

    recipe = Recipe.model_validate({"id": "bench", "code": 1, "model": {"onnx": "m.onnx"}, "classes": ["scratch"],
                                    "reject": [{"classes": ["scratch"], "bin": 1}]})  # fmt: skip
    det = Detections(np.array([[100, 100, 300, 300]], np.float32), np.array([0.9], np.float32), np.zeros(1, np.int32))
    verdict = Verdict(ResultCode.REJECT, 1, 1, det, ("scratch",))
    buffers = [np.random.default_rng(i).integers(0, 255, (height, width), np.uint8) for i in range(pool)]
    live = LiveView(fps=5, max_width=640)
    try:
        live.period_s = 0.0
        for i in range(parts // 10):
            buf = buffers[i % pool]
            buf[i % height] = i  # the camera writes into the buffer
            while live._job is not None:
                time.sleep(0.0005)
            live.offer(Frame("cam1", i, i, 0, time.perf_counter(), "Mono8", width, height, _data=buf), verdict, recipe)
        due = live.copy_us.percentiles()
        live.period_s = 3600.0
        live.hot_path_us = LatencyRing(parts)
        for i in range(parts):
            live.offer(Frame("cam1", i, i, 0, time.perf_counter(), "Mono8", width, height, _data=buffers[i % pool]), verdict, recipe)
        not_due = live.hot_path_us.percentiles()
    finally:
        live.close()
    mean_50 = (due["p50"] * 5 + not_due["p50"] * 45) / 50  # 50 parts/s at 5 pictures/s
    return {"frame": f"{width}x{height} Mono8", "due_us": _rounded(due), "not_due_us": _rounded(not_due),
            "mean_per_part_us_at_50_parts_s_5_fps": round(mean_50, 2)}  # fmt: skip


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(bench(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)))
