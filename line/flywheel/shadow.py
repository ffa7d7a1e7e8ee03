"""A candidate model in shadow: it sees live frames, never reaches the PLC, and only gets what
the production path leaves over.

The candidate runs in a worker process of its own at the lowest nice level (shadow_worker.py),
so it competes with the station neither for the interpreter lock nor, while the station needs
the cores, for CPU. The tap's ``offer`` (hot path) copies a frame into the worker's shared slot
only when the worker is idle; otherwise the frame is skipped and counted: a shadow that cannot
keep up says so instead of slowing the line. A collector thread (low priority) takes the
worker's answers, judges them with the candidate recipe's decision policy and records every part
where the candidate's verdict or defect classes differ from production's (with the picture).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2

from camera.frame import Frame
from inference.config import EngineOptions
from inference.engine import Engine, ImageInput, open_engine
from line.flywheel.capture import VERDICT_TEXT
from line.flywheel.shadow_worker import (
    JUDGE_TIMEOUT_S,
    SHADOW_NICE,
    EngineFactory,
    ShadowWorker,
    WarmShape,
    WorkerFailed,
)
from line.flywheel.store import FlywheelStore
from line.loop.decision import DecisionPolicy, Verdict
from line.loop.stats import LatencyRing
from line.recipes.model import Recipe

log = logging.getLogger(__name__)

# The production path always wins: a frame is not taken while the part it belongs to has used
# more than this share of the recipe's budget (the line is busy).
BUSY_SHARE = 0.5
MAX_DISAGREEMENT_IMAGES = 500

__all__ = ["SHADOW_NICE", "Candidate", "ShadowRunner", "WorkerFailed", "candidate_engine", "lower_priority"]


@dataclass(frozen=True)
class Candidate:
    """A model registered for a recipe: its recipe (production's with the candidate's model and
    thresholds) and the sha256 of its model file."""

    recipe: Recipe
    sha256: str


@dataclass(frozen=True)
class _LiveJob:
    request_id: int
    shape: tuple[int, ...]
    dtype: str
    camera_id: str
    part_id: int
    production: Verdict


@dataclass
class _JudgeJob:
    request_id: int
    done: threading.Event
    answer: Verdict | None = None
    error: str = ""


class ShadowRunner:
    """One candidate in shadow. Raises ``WorkerFailed`` when the candidate cannot start."""

    def __init__(self, candidate: Candidate, factory: EngineFactory, store: FlywheelStore,
                 warm_shape: WarmShape | None = None, nice: int = SHADOW_NICE) -> None:  # fmt: skip
        self.candidate = candidate
        self.recipe_id = candidate.recipe.id
        self.policy = DecisionPolicy(candidate.recipe)
        self.store = store
        self.latency_ms = LatencyRing(4096)
        self.seen = 0
        self.skipped = 0
        self.judged = 0
        self.agreed = 0
        self.errors = 0
        self.images_kept = 0
        self.by_class: Counter[str] = Counter()  # class -> disagreements that involve it
        self.by_kind: Counter[str] = Counter()  # "PASS->REJECT" etc.
        self._cond = threading.Condition()
        self._pending: _LiveJob | _JudgeJob | None = None  # the one request the worker has
        self._closing = False
        self._nice = nice
        self._worker = ShadowWorker(factory, candidate.recipe, warm_shape, nice=nice)
        self.worker_pid = self._worker.pid
        self._collector = threading.Thread(target=self._collect, name="shadow-collect", daemon=True)
        self._collector.start()

    # --- hot path ---------------------------------------------------------------------------
    def offer(self, frame: Frame, verdict: Verdict, recipe: Recipe) -> None:
        if recipe.id != self.recipe_id:
            return
        self.seen += 1
        if self._pending is not None or not self._worker.alive:  # busy (a racy read: at worst one more skip)
            self.skipped += 1
            return
        if (time.perf_counter() - frame.t_ready) * 1000 > BUSY_SHARE * recipe.cycle_budget_ms:
            self.skipped += 1  # the line itself is late on this part: no copy, no competition
            return
        if not self._cond.acquire(blocking=False):  # the collector or a re-judging holds it: skip, never wait
            self.skipped += 1
            return
        try:
            if self._pending is not None:
                self.skipped += 1
                return
            request_id = self._worker.try_submit(frame.data, frame.pixel_format)
            if request_id is None:
                self.skipped += 1
                return
            self._pending = _LiveJob(request_id, frame.data.shape, frame.data.dtype.str, frame.camera_id,
                                     frame.part_id, verdict)  # fmt: skip
        finally:
            self._cond.release()

    # --- collector thread -------------------------------------------------------------------
    def _collect(self) -> None:
        lower_priority(self._nice)
        while True:
            try:
                answer = self._worker.receive()
            except WorkerFailed as exc:
                if not self._closing:
                    log.warning("shadow for %s stopped: %s", self.recipe_id, exc)
                job = self._pending
                if isinstance(job, _JudgeJob):
                    job.error = str(exc)
                    job.done.set()
                self._release(None)
                return
            with self._cond:
                job = self._pending
            if job is None or job.request_id != answer.request_id:
                continue  # a late answer to a request given up on
            if answer.detections is None:
                self.errors += 1
                log.warning("shadow inference failed: %s", answer.error)
            if isinstance(job, _JudgeJob):
                if answer.detections is not None:
                    job.answer = self.policy.decide(answer.detections)
                job.error = answer.error
                job.done.set()
            elif answer.detections is not None:
                self.latency_ms.add(answer.latency_ms)
                try:
                    self._compare(job, self.policy.decide(answer.detections))
                except Exception:
                    self.errors += 1
                    log.exception("shadow comparison failed")
            self._release(job)

    def _release(self, job: _LiveJob | _JudgeJob | None) -> None:
        with self._cond:
            if job is None or self._pending is job:
                self._pending = None
            self._cond.notify_all()

    def _compare(self, job: _LiveJob, cand: Verdict) -> None:
        self.judged += 1
        prod = job.production
        prod_classes, cand_classes = set(prod.class_names), set(cand.class_names)
        if prod.result_code == cand.result_code and prod_classes == cand_classes:
            self.agreed += 1
            return
        differing = sorted(prod_classes ^ cand_classes) or sorted(prod_classes | cand_classes) or ["(none)"]
        kind = f"{VERDICT_TEXT.get(prod.result_code, '?')}->{VERDICT_TEXT.get(cand.result_code, '?')}"
        self.by_kind[kind] += 1
        self.by_class.update(differing)
        name = ""
        if self.images_kept < MAX_DISAGREEMENT_IMAGES:  # the slot is ours until this job is released
            name = f"shadow-{time.time_ns()}-{job.camera_id}-{job.part_id}.png"
            if cv2.imwrite(str(self.store.images / name), self._worker.slot_image(job.shape, job.dtype)):
                self.images_kept += 1
            else:
                name = ""
        self.store.add_disagreement((time.time_ns(), self.recipe_id, self.candidate.sha256, job.camera_id, job.part_id,
                                     VERDICT_TEXT.get(prod.result_code, "?"), VERDICT_TEXT.get(cand.result_code, "?"),
                                     _json_classes(prod, cand), name))  # fmt: skip

    # --- re-judging stored pictures ---------------------------------------------------------
    def judge(self, image: ImageInput, timeout_s: float = JUDGE_TIMEOUT_S) -> Verdict:
        """The candidate's verdict on one stored picture (the reviewed set, a golden set); live
        frames offered meanwhile are skipped. Raises ``WorkerFailed`` when the worker is gone."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._pending is None or not self._worker.alive, timeout_s):
                raise WorkerFailed("the shadow stayed busy")
            if not self._worker.alive:
                raise WorkerFailed("the shadow process has ended")
            job = _JudgeJob(self._worker.submit_copy(image), threading.Event())
            self._pending = job
        if not job.done.wait(timeout_s):
            self._release(job)
            raise WorkerFailed("the shadow did not answer")
        if job.answer is None:
            raise WorkerFailed(f"the candidate failed on the picture: {job.error}")
        return job.answer

    def wait_idle(self, timeout_s: float = 10.0) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._pending is None, timeout_s)

    def report(self, budget_ms: float) -> dict[str, Any]:
        p = self.latency_ms.percentiles()
        return {
            "recipe_id": self.recipe_id, "candidate_sha256": self.candidate.sha256,
            "candidate_model": str(self.candidate.recipe.model.onnx),
            "candidate_thresholds": dict(self.candidate.recipe.thresholds),
            "parts_seen": self.seen, "parts_judged": self.judged, "parts_skipped": self.skipped, "errors": self.errors,
            "agreed": self.agreed, "agreement": round(self.agreed / self.judged, 4) if self.judged else None,
            "disagreements": self.judged - self.agreed, "disagreements_by_kind": dict(self.by_kind),
            "disagreements_by_class": dict(self.by_class),
            "latency_ms": {k: (None if math.isnan(v) else round(float(v), 2)) for k, v in p.items()},
            "budget_ms": budget_ms, "worker_alive": self._worker.alive,
            "within_budget": None if math.isnan(p.get("p99", math.nan)) else bool(p["p99"] <= budget_ms),
        }  # fmt: skip

    def close(self) -> None:
        self._closing = True
        self._worker.close()
        self._collector.join(timeout=10)


def shadow_engine_options(options: EngineOptions) -> EngineOptions:
    """The station's engine settings for a candidate: on the CPU one intra-op thread that does
    not spin: the shadow's worker process is meant to take one core at most, and a spinning
    pool would hold the cores the production engine needs between calls. A GPU candidate keeps the station's settings."""
    if options.device != "cpu":
        return options
    return options.model_copy(update={"intra_op_threads": 1, "cpu_spin": False})


def candidate_engine(recipe: Recipe, options: EngineOptions) -> Engine:
    """The engine a candidate runs on; with ``functools.partial`` over ``options`` it is the
    picklable factory the shadow's worker process is started with."""
    return open_engine(recipe.detector_spec(), options)


def lower_priority(nice: int = SHADOW_NICE) -> None:
    """Nice 19 (by default) for the calling thread (Linux: per thread), for the station
    process's own background threads (the shadow's collector, re-judging)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except (OSError, AttributeError):  # not Linux, or not permitted: still a separate thread
        log.info("shadow thread runs at normal priority")


def _json_classes(prod: Verdict, cand: Verdict) -> str:
    import json

    def dets(v: Verdict) -> list[dict[str, Any]]:
        return [{"class": n, "confidence": round(float(c), 3), "box": [round(float(x), 1) for x in b]}
                for n, c, b in zip(v.class_names, v.defects.confidence.tolist(), v.defects.xyxy.tolist(), strict=True)]  # fmt: skip

    return json.dumps({"production": dets(prod), "candidate": dets(cand)})


def read_capture(path: Path) -> ImageInput:
    """A stored capture's picture as the engine takes it (PNG keeps Mono8 as one channel)."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise OSError(f"cannot read {path}")
    return ImageInput(image, "Mono8" if image.ndim == 2 else "BGR8")
