"""A candidate model in shadow: it sees live frames, never reaches the PLC, and only gets what
the production path leaves over.

The tap's ``offer`` (hot path) copies a frame only when the shadow thread is idle; otherwise the
frame is skipped and counted: a shadow that cannot keep up says so instead of slowing the line.
The shadow thread runs at a lower OS priority (nice) than the station's threads, judges the copy
with the candidate engine and the candidate recipe's decision policy, and records every part
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
import numpy as np

from camera.frame import Frame
from inference.config import EngineOptions
from inference.engine import Engine, ImageInput
from line.flywheel.capture import VERDICT_TEXT
from line.flywheel.store import FlywheelStore
from line.loop.decision import DecisionPolicy, Verdict
from line.loop.stats import LatencyRing
from line.recipes.model import Recipe

log = logging.getLogger(__name__)

# The production path always wins: a frame is not taken while the part it belongs to has used
# more than this share of the recipe's budget (the line is busy), and after each frame the
# shadow rests as long as it worked, so it takes at most half of one core.
BUSY_SHARE = 0.5
SHADOW_NICE = 19  # the lowest priority short of SCHED_IDLE (see ``lower_priority``)
MAX_DISAGREEMENT_IMAGES = 500


@dataclass(frozen=True)
class Candidate:
    """A model registered for a recipe: its recipe (production's with the candidate's model and
    thresholds) and the sha256 of its model file."""

    recipe: Recipe
    sha256: str


@dataclass(frozen=True)
class _Job:
    image: np.ndarray
    pixel_format: str
    camera_id: str
    part_id: int
    production: Verdict


class ShadowRunner:
    def __init__(self, candidate: Candidate, engine: Engine, store: FlywheelStore) -> None:
        self.candidate = candidate
        self.recipe_id = candidate.recipe.id
        self.engine = engine
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
        self.engine_lock = threading.Lock()  # the shadow thread and a report's re-judging share the engine
        self._cond = threading.Condition()
        self._job: _Job | None = None
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="shadow", daemon=True)
        self._thread.start()

    # --- hot path ---------------------------------------------------------------------------
    def offer(self, frame: Frame, verdict: Verdict, recipe: Recipe) -> None:
        if recipe.id != self.recipe_id:
            return
        self.seen += 1
        if self._job is not None:  # busy: a racy read is fine, the worst case is one more skip
            self.skipped += 1
            return
        if (time.perf_counter() - frame.t_ready) * 1000 > BUSY_SHARE * recipe.cycle_budget_ms:
            self.skipped += 1  # the line itself is late on this part: no copy, no competition
            return
        job = _Job(frame.data.copy(), frame.pixel_format, frame.camera_id, frame.part_id, verdict)
        with self._cond:
            self._job = job
            self._cond.notify()

    # --- shadow thread ----------------------------------------------------------------------
    def _run(self) -> None:
        lower_priority()
        while True:
            with self._cond:
                while self._job is None and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                job = self._job
            assert job is not None  # noqa: S101
            t0 = time.perf_counter()
            try:
                self._judge(job)
            except Exception:
                self.errors += 1
                log.exception("shadow inference failed")
            finally:
                with self._cond:
                    if not self._stop:  # rest as long as it worked (frames offered meanwhile are skipped)
                        self._cond.wait(time.perf_counter() - t0)
                    self._job = None

    def _judge(self, job: _Job) -> None:
        with self.engine_lock:
            t0 = time.perf_counter()
            result = self.engine.detect([ImageInput(job.image, job.pixel_format)])[0]
            verdict = self.policy.decide(result.detections)
            self.latency_ms.add((time.perf_counter() - t0) * 1000)
        self.judged += 1
        prod, cand = job.production, verdict
        prod_classes, cand_classes = set(prod.class_names), set(cand.class_names)
        if prod.result_code == cand.result_code and prod_classes == cand_classes:
            self.agreed += 1
            return
        differing = sorted(prod_classes ^ cand_classes) or sorted(prod_classes | cand_classes) or ["(none)"]
        kind = f"{VERDICT_TEXT.get(prod.result_code, '?')}->{VERDICT_TEXT.get(cand.result_code, '?')}"
        self.by_kind[kind] += 1
        self.by_class.update(differing)
        name = ""
        if self.images_kept < MAX_DISAGREEMENT_IMAGES:
            name = f"shadow-{time.time_ns()}-{job.camera_id}-{job.part_id}.png"
            if cv2.imwrite(str(self.store.images / name), job.image):
                self.images_kept += 1
            else:
                name = ""
        self.store.add_disagreement((time.time_ns(), self.recipe_id, self.candidate.sha256, job.camera_id, job.part_id,
                                     VERDICT_TEXT.get(prod.result_code, "?"), VERDICT_TEXT.get(cand.result_code, "?"),
                                     _json_classes(prod, cand), name))  # fmt: skip

    def judge(self, image: ImageInput) -> Verdict:
        """The candidate's verdict on one stored picture (the reviewed set, a golden set)."""
        with self.engine_lock:
            return self.policy.decide(self.engine.detect([image])[0].detections)

    def wait_idle(self, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self._job is not None and time.monotonic() < deadline:
            time.sleep(0.005)

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
            "budget_ms": budget_ms,
            "within_budget": None if math.isnan(p.get("p99", math.nan)) else bool(p["p99"] <= budget_ms),
        }  # fmt: skip

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout=10)
        with self.engine_lock:  # an estimate over the reviewed set may be judging
            self.engine.close()


def shadow_engine_options(options: EngineOptions) -> EngineOptions:
    """The station's engine settings for a candidate: on the CPU one intra-op thread that does
    not spin, so the whole inference runs on the shadow's own low-priority thread (ONNX Runtime's
    worker pool would run at normal priority and spin between calls, taking the cores the
    production engine needs). A GPU candidate keeps the station's settings."""
    if options.device != "cpu":
        return options
    return options.model_copy(update={"intra_op_threads": 1, "cpu_spin": False})


def lower_priority() -> None:
    """Nice 19 for the calling thread (Linux: per thread). SCHED_IDLE would be lower still, but a
    thread that holds the GIL and is never scheduled stalls every production thread waiting on it."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), SHADOW_NICE)
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
