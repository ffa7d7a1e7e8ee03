"""The capture tap: keeps the parts a recipe's ``capture:`` block asks for, off the hot path.

``offer`` runs on the station's hot path (like the live view's): a policy check over the
verdict's few detections and the quota counters; only when a part is taken is the frame
copied (as acquired, every pixel) and handed to a bounded queue. A writer thread encodes the
PNG (lossless), writes the row with its provenance and applies the disk budget. A full queue
drops the capture and counts it: the line never waits for the disk.

The tap also notes which model file judged each frame, so that the ``Outcome`` observer can
record, per result id, the model that decided the part (the ``decided_by`` table).
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from camera.frame import Frame
from line.flywheel.policy import CapturePolicy, Quota, capture_reason, new_rng
from line.flywheel.store import FlywheelStore
from line.loop.decision import Verdict
from line.loop.stats import LatencyRing
from line.recipes.model import Recipe
from plc.vocabulary import ResultCode

log = logging.getLogger(__name__)

VERDICT_TEXT = {ResultCode.PASS: "PASS", ResultCode.REJECT: "REJECT", ResultCode.FAIL_SAFE_REJECT: "FAIL-SAFE",
                ResultCode.HOLD: "HOLD"}  # fmt: skip


class ModelHashes:
    """sha256 of model files, computed once per (path, size, mtime): never on the hot path."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, int, int], str] = {}
        self._lock = threading.Lock()

    def of(self, path: Path) -> str:
        try:
            st = path.stat()
        except OSError:
            return ""
        key = (str(path), st.st_size, st.st_mtime_ns)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        with self._lock:
            self._cache[key] = digest.hexdigest()
        return self._cache[key]


def recipe_version(recipe: Recipe) -> str:
    """A short digest of the recipe as validated: any change of a field is a new version."""
    return hashlib.sha256(recipe.model_dump_json().encode()).hexdigest()[:12]


@dataclass(frozen=True)
class _Job:
    image: np.ndarray
    pixel_format: str
    recipe: Recipe
    reason: str
    verdict: str
    camera_id: str
    part_id: int
    boxes: np.ndarray
    confidences: np.ndarray
    class_names: tuple[str, ...]
    engine: str
    t_ns: int


class CaptureTap:
    """A station frame tap (``offer(frame, verdict, recipe)``) that captures by policy."""

    def __init__(self, store: FlywheelStore, hashes: ModelHashes, engine_name: Callable[[], str] = lambda: "",
                 camera_serials: dict[str, str] | None = None, queue_size: int = 8,
                 clock: Callable[[], float] = time.monotonic, rng: Callable[[], float] | None = None) -> None:  # fmt: skip
        self.store = store
        self.hashes = hashes
        self.engine_name = engine_name
        self.camera_serials = camera_serials or {}
        self._clock = clock
        self._rng = rng or new_rng()
        self._quotas: dict[str, tuple[CapturePolicy, Quota]] = {}
        self._thresholds: dict[int, tuple[Recipe, dict[str, float]]] = {}
        self._queue: queue.Queue[_Job | None] = queue.Queue(queue_size)
        self.judged_by: dict[tuple[str, int], Path] = {}  # (camera, frame id) -> model file, until observed
        self.hot_path_us = LatencyRing(4096)
        self.counts = {"offered": 0, "taken": 0, "written": 0, "dropped_busy": 0, "over_quota": 0, "write_errors": 0,
                       "deleted_for_budget": 0}  # fmt: skip
        self._thread = threading.Thread(target=self._run, name="capture-writer", daemon=True)
        self._thread.start()

    # --- hot path ---------------------------------------------------------------------------
    def offer(self, frame: Frame, verdict: Verdict, recipe: Recipe) -> None:
        t0 = time.perf_counter()
        self.counts["offered"] += 1
        judged = self.judged_by
        judged[(frame.camera_id, frame.frame_id)] = recipe.model.onnx
        if len(judged) > 4096:  # parts whose outcome never came (claimed by the watchdog first)
            del judged[next(iter(judged))]
        policy = recipe.capture
        if policy is not None:
            self._consider(frame, verdict, recipe, policy)
        self.hot_path_us.add((time.perf_counter() - t0) * 1e6)

    def _consider(self, frame: Frame, verdict: Verdict, recipe: Recipe, policy: CapturePolicy) -> None:
        confidences = verdict.defects.confidence
        thresholds = self._class_thresholds(recipe)
        per_det = np.fromiter((thresholds[n] for n in verdict.class_names), np.float32, len(verdict.class_names))
        reason = capture_reason(policy, verdict.result_code, confidences, per_det, self._rng())
        if reason is None:
            return
        quota = self._quota(recipe.id, policy)
        if not quota.take():
            self.counts["over_quota"] += 1
            return
        if self._queue.full():
            self.counts["dropped_busy"] += 1
            return
        job = _Job(frame.data.copy(), frame.pixel_format, recipe, reason, VERDICT_TEXT.get(verdict.result_code, "?"),
                   frame.camera_id, frame.part_id, verdict.defects.xyxy.copy(), confidences.copy(), verdict.class_names,
                   self.engine_name(), time.time_ns())  # fmt: skip
        try:
            self._queue.put_nowait(job)
            self.counts["taken"] += 1
        except queue.Full:
            self.counts["dropped_busy"] += 1

    def _class_thresholds(self, recipe: Recipe) -> dict[str, float]:
        cached = self._thresholds.get(id(recipe))
        if cached is None or cached[0] is not recipe:
            cached = self._thresholds[id(recipe)] = (recipe, {c: recipe.threshold_for(c) for c in recipe.classes})
        return cached[1]

    def _quota(self, recipe_id: str, policy: CapturePolicy) -> Quota:
        entry = self._quotas.get(recipe_id)
        if entry is None or entry[0] != policy:
            entry = self._quotas[recipe_id] = (policy, Quota((policy.per_minute, policy.per_hour, policy.per_day), self._clock))
        return entry[1]

    # --- writer thread ----------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                self._write(job)
                self.counts["written"] += 1
            except Exception:
                self.counts["write_errors"] += 1
                log.exception("capture not written")

    def _write(self, job: _Job) -> None:
        image = job.image
        if image.ndim == 3 and image.shape[2] == 3 and job.pixel_format.startswith("RGB"):
            image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)  # the PNG holds the pixels as acquired
        name = f"{job.t_ns}-{job.camera_id}-{job.part_id}.png"
        if not cv2.imwrite(str(self.store.images / name), image):
            raise OSError(f"cannot write {name}")
        size = (self.store.images / name).stat().st_size
        recipe = job.recipe
        detections = [{"class": n, "confidence": round(float(c), 4), "box": [round(float(v), 1) for v in b]}
                      for n, c, b in zip(job.class_names, job.confidences.tolist(), job.boxes.tolist(), strict=True)]  # fmt: skip
        provenance: dict[str, Any] = {
            "recipe_id": recipe.id, "recipe_version": recipe_version(recipe), "model": str(recipe.model.onnx),
            "model_sha256": self.hashes.of(recipe.model.onnx), "engine": job.engine, "precision": recipe.model.precision,
            "thresholds": {c: recipe.threshold_for(c) for c in recipe.classes}, "classes": list(recipe.classes),
            "camera_id": job.camera_id, "camera_serial": self.camera_serials.get(job.camera_id, ""),
            "part_id": job.part_id, "pixel_format": job.pixel_format, "t_ns": job.t_ns,
        }  # fmt: skip
        self.store.add_capture({"t_ns": job.t_ns, "recipe_id": recipe.id, "reason": job.reason, "verdict": job.verdict,
                                "camera_id": job.camera_id, "part_id": job.part_id, "width": image.shape[1],
                                "height": image.shape[0], "detections": detections, "provenance": provenance,
                                "image": name, "bytes": size})  # fmt: skip
        budget = int((recipe.capture.disk_budget_mb if recipe.capture else 0) * 1e6)
        if budget:
            self.counts["deleted_for_budget"] += len(self.store.enforce_budget(budget))

    def drain(self, timeout_s: float = 10.0) -> None:
        """Wait until every capture taken so far is written (tests, shutdown)."""
        deadline = time.monotonic() + timeout_s
        while self.counts["taken"] > self.counts["written"] + self.counts["write_errors"] and time.monotonic() < deadline:
            time.sleep(0.01)

    def stats(self) -> dict[str, Any]:
        return {**self.counts, "queued": self._queue.qsize(), "hot_path_us": self.hot_path_us.percentiles()}

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)
