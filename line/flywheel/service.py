"""The flywheel wired to a running station: the capture tap, the record of which model
decided each result, shadow candidates, promotion and rollback, all behind one object the HMI
router (line/hmi/review.py) talks to.

Nothing here is on the station's hot path except the taps' ``offer`` (documented in
capture.py and shadow.py) and the observer, which appends one tuple to a deque; a flusher
thread hashes model files and writes the ``decided_by`` rows.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from inference.engine import Engine
from line.flywheel.capture import CaptureTap, ModelHashes
from line.flywheel.exchange import golden_set
from line.flywheel.promotion import Promoter, PromotionResult
from line.flywheel.quality import estimate, rates, review_summary
from line.flywheel.shadow import (
    SHADOW_NICE,
    Candidate,
    ShadowRunner,
    WorkerFailed,
    lower_priority,
    read_capture,
)
from line.flywheel.store import FlywheelStore
from line.loop.decision import DecisionPolicy
from line.loop.station import LiveTap, Outcome, Station
from line.recipes.model import Recipe

log = logging.getLogger(__name__)

EngineFactory = Callable[[Recipe], Engine]
REVIEWED_FOR_ESTIMATE = 500  # the most reviewed captures a shadow report judges again


class Flywheel:
    """``engine_factory`` starts a shadow candidate's engine in the shadow's own process, so it
    must pickle: a module-level function, or ``functools.partial(candidate_engine, options=...)``.

    ``shadow_nice``: the scheduling priority of the shadow's process and threads. The default,
    the lowest (19), lets the production deadline win on any host; a higher priority is for a
    host with spare cores, or a test that must see comparisons while other work keeps the cores
    busy (a nice-19 process then gets under 1 % of a core)."""

    def __init__(self, folder: Path, station: Station, engine_factory: EngineFactory,
                 shadow_nice: int = SHADOW_NICE) -> None:  # fmt: skip
        self.station = station
        self.shadow_nice = shadow_nice
        self.store = FlywheelStore(folder)
        self.hashes = ModelHashes()
        self._engine_factory = engine_factory
        serials = {lane.camera_id: str(getattr(lane.source, "serial", "") or "") for lane in station.lanes}
        self.capture = CaptureTap(self.store, self.hashes, self._engine_name, serials)
        self.promoter = Promoter(station.book, station.request_switch)
        self.shadows: dict[str, ShadowRunner] = {}
        # the candidate judged again over the reviewed set, per (candidate, last review): computed
        # on a low-priority thread, never in an HMI request
        self._estimates: dict[str, tuple[tuple[str, int], dict[str, Any]]] = {}
        self._estimating: set[str] = set()
        self._golden: dict[str, Path] = {}  # recipe -> labelled folder registered with its candidate
        self._golden_results: dict[str, tuple[str, dict[str, Any]]] = {}  # recipe -> (candidate sha, rates)
        self._shadow_lock = threading.Lock()
        self._decided: deque[tuple[str, str, Path, int]] = deque(maxlen=100_000)
        self._flush_lock = threading.Lock()  # a caller's flush waits for the flusher thread's
        self._stop = threading.Event()
        self._flusher = threading.Thread(target=self._flush_loop, name="flywheel-flush", daemon=True)
        self._attached = False

    def _engine_name(self) -> str:
        active = self.station.book.active
        return str(getattr(active.engine, "backend", "")) if active else ""

    # --- wiring ------------------------------------------------------------------------------
    def attach(self) -> None:
        self._add_tap(self.capture)
        self.station.observers.append(self.observe)
        self._attached = True
        self._flusher.start()

    # the station's lanes iterate ``frame_taps`` on the hot path: the list is replaced, never
    # changed in place, so a lane sees either the old or the new list whole
    def _add_tap(self, tap: LiveTap) -> None:
        self.station.frame_taps = [*self.station.frame_taps, tap]

    def _remove_tap(self, tap: LiveTap) -> None:
        self.station.frame_taps = [t for t in self.station.frame_taps if t is not tap]

    def observe(self, outcome: Outcome) -> None:
        """Station observer: which model file judged this result (none for a fail-safe)."""
        ticket = outcome.ticket
        model = self.capture.judged_by.pop((ticket.camera_id, ticket.frame_id), None)
        if model is not None and not outcome.verdict.reason:
            self._decided.append((outcome.record.result_id, outcome.record.recipe_id, model, outcome.record.t_verdict_ns))

    def _flush_loop(self) -> None:
        while not self._stop.wait(0.2):
            self.flush()
        self.flush()

    def flush(self) -> None:
        with self._flush_lock:
            rows = []
            while self._decided:
                result_id, recipe_id, model, t_ns = self._decided.popleft()
                rows.append((result_id, recipe_id, self.hashes.of(model), t_ns))
            if rows:
                self.store.add_decided_by(rows)

    # --- shadow ------------------------------------------------------------------------------
    def register_candidate(self, recipe_id: str, onnx: Path, thresholds: dict[str, float] | None, user: str,
                           golden: Path | None = None) -> dict[str, Any]:  # fmt: skip
        """Load ``onnx`` as a candidate for ``recipe_id`` and start its shadow (replacing one
        that ran for this recipe); ``golden``: a labelled folder (the export's YOLO layout) both
        models are also measured on. Raises ``KeyError`` for an unknown recipe and
        ``ValueError`` for a model, thresholds or golden set that cannot work."""
        book = self.station.book
        recipe = book.recipes.get(recipe_id)
        if recipe is None:
            raise KeyError(f"unknown recipe {recipe_id!r}")
        if not onnx.is_file():
            raise ValueError(f"candidate model not found: {onnx}")
        if golden is not None and not golden_set(golden):
            raise ValueError(f"golden set {golden}: no images/*.png with a labels/*.txt")
        data = recipe.model_dump()
        data["model"]["onnx"] = onnx.resolve()  # as a recipe file names it once loaded (promotion writes it)
        if thresholds is not None:
            data["thresholds"] = thresholds
        candidate_recipe = Recipe.model_validate(data)  # thresholds checked against the classes
        try:  # the worker process loads and warms the candidate; a model that cannot load is the user's input
            runner = ShadowRunner(Candidate(candidate_recipe, self.hashes.of(onnx)), self._engine_factory, self.store,
                                  book.warm_shape, nice=self.shadow_nice)  # fmt: skip
        except WorkerFailed as exc:
            raise ValueError(f"candidate {onnx.name} cannot run: {exc}") from None
        self.stop_shadow(recipe_id)
        with self._shadow_lock:
            self.shadows[recipe_id] = runner
            self._add_tap(runner)
            self._golden.pop(recipe_id, None)
            if golden is not None:
                self._golden[recipe_id] = golden
        self.station.result_log.event("shadow_start", "info", f"candidate {onnx.name} in shadow for {recipe_id} by {user}",
                                      {"recipe": recipe_id, "model": str(onnx), "sha256": runner.candidate.sha256, "user": user})  # fmt: skip
        return {"recipe_id": recipe_id, "candidate_sha256": runner.candidate.sha256}

    def stop_shadow(self, recipe_id: str) -> bool:
        with self._shadow_lock:
            runner = self.shadows.pop(recipe_id, None)
            if runner is None:
                return False
            self._remove_tap(runner)
        runner.close()
        return True

    def shadow_report(self, recipe_id: str) -> dict[str, Any] | None:
        runner = self.shadows.get(recipe_id)
        if runner is None:
            return None
        recipe = self.station.book.recipes.get(recipe_id)
        report = runner.report(recipe.cycle_budget_ms if recipe else 0.0)
        report["disagreement_images"] = self.store.disagreements(recipe_id, runner.candidate.sha256, limit=48)
        key = (runner.candidate.sha256, self.store.last_review_id())
        cached = self._estimates.get(recipe_id)
        report["estimated_vs_reviewed"] = cached[1] if cached else None
        report["estimate_current"] = bool(cached and cached[0] == key)
        golden = self._golden_results.get(recipe_id)
        report["estimated_vs_golden"] = golden[1] if golden and golden[0] == runner.candidate.sha256 else None
        if not report["estimate_current"] and recipe_id not in self._estimating:
            self._estimating.add(recipe_id)
            threading.Thread(target=self._estimate, args=(recipe_id, runner, key), name="shadow-estimate", daemon=True).start()
        return report

    def _estimate(self, recipe_id: str, runner: ShadowRunner, key: tuple[str, int]) -> None:
        lower_priority(self.shadow_nice)
        try:
            reviewed = self.store.captures(recipe_id=recipe_id, reviewed=True, limit=REVIEWED_FOR_ESTIMATE)
            result = estimate(reviewed, lambda c: runner.judge(read_capture(self.store.images / c.image)))
            golden = self._golden.get(recipe_id)
            done = self._golden_results.get(recipe_id)
            if golden is not None and (done is None or done[0] != runner.candidate.sha256):
                self._golden_results[recipe_id] = (runner.candidate.sha256, self._on_golden(recipe_id, runner, golden))
            self._estimates[recipe_id] = (key, result)  # last: "current" means both are there
        except Exception:
            log.exception("shadow estimate over the reviewed set failed")
        finally:
            self._estimating.discard(recipe_id)

    def _on_golden(self, recipe_id: str, runner: ShadowRunner, folder: Path) -> dict[str, Any]:
        """Both models over the golden set: production on an engine of its own (the station's
        is busy on the line), loaded for this and closed after."""
        production = self.station.book.recipes[recipe_id]
        engine = self._engine_factory(production)
        policy = DecisionPolicy(production)
        try:
            items = [(bad, read_capture(path)) for path, bad in golden_set(folder)]
            prod = [(bad, policy.decide(engine.detect([image])[0].detections).result_code) for bad, image in items]
        finally:
            engine.close()
        cand = [(bad, runner.judge(image).result_code) for bad, image in items]
        return {"folder": str(folder), "images": len(items), "production": rates(prod), "candidate": rates(cand)}

    # --- promotion ---------------------------------------------------------------------------
    def promote(self, recipe_id: str, user: str) -> PromotionResult:
        runner = self.shadows.get(recipe_id)
        if runner is None:
            return PromotionResult(False, recipe_id, "no candidate in shadow for this recipe")
        before = self.station.book.recipes.get(recipe_id)
        result = self.promoter.promote(runner.candidate.recipe, user)
        if result.ok:
            self.stop_shadow(recipe_id)
        self._audit("promote", recipe_id, user, before, runner.candidate.recipe, result)
        return result

    def rollback(self, recipe_id: str, user: str) -> PromotionResult:
        before = self.station.book.recipes.get(recipe_id)
        result = self.promoter.rollback(recipe_id, user)
        self._audit("rollback", recipe_id, user, before, self.station.book.recipes.get(recipe_id), result)
        return result

    def _audit(self, action: str, recipe_id: str, user: str, before: Recipe | None, after: Recipe | None,
               result: PromotionResult) -> None:  # fmt: skip
        from_sha = self.hashes.of(before.model.onnx) if before else ""
        to_sha = self.hashes.of(after.model.onnx) if after and result.ok else from_sha
        kind = f"model_{action}" + ("" if result.ok else "_refused")
        action += "" if result.ok else "_refused"
        self.store.add_promotion(recipe_id, action, user, from_sha, to_sha)
        self.station.result_log.event(kind, "info" if result.ok else "warning",
                                      f"{recipe_id}: {action} by {user}: {result.message}",
                                      {"recipe": recipe_id, "user": user, "from_sha256": from_sha, "to_sha256": to_sha,
                                       "from_model": str(before.model.onnx) if before else "",
                                       "to_model": str(after.model.onnx) if after and result.ok else ""})  # fmt: skip

    # --- views -------------------------------------------------------------------------------
    def summary(self, recipe_id: str | None) -> dict[str, Any]:
        captures = self.store.captures(recipe_id=recipe_id, reviewed=True, limit=100_000)
        return {**review_summary(captures), "store": self.store.count(), "capture": self._capture_stats()}

    def _capture_stats(self) -> dict[str, Any]:
        stats = self.capture.stats()
        stats["hot_path_us"] = {k: (None if v != v else round(float(v), 2)) for k, v in stats["hot_path_us"].items()}
        return stats

    def close(self) -> None:
        if self._attached:
            self._remove_tap(self.capture)
            if self.observe in self.station.observers:
                self.station.observers.remove(self.observe)
            self._stop.set()
            self._flusher.join(timeout=10)
            self._attached = False
        for recipe_id in list(self.shadows):
            self.stop_shadow(recipe_id)
        self.capture.drain()
        self.capture.close()
        self.store.close()
