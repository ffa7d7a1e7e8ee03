"""Inspecting a part: the lanes' ``Decider``. Submit a frame to the engine (directly, through
the cross-camera batcher, or launched early from the camera's thread), complete it into a
verdict by the recipe it was submitted under, or decide it fail-safe. What the verdict then
becomes is the emitter's job (``line/loop/verdict_emitter.py``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from camera.frame import Frame
from inference.engine import DetectionResult, ImageInput
from line.loop.batcher import Batcher
from line.loop.decision import Verdict
from line.loop.finisher import PendingInspection
from line.loop.lane import PartTicket
from line.loop.run_gate import RunGate
from line.loop.stats import StationStats
from line.loop.verdict_emitter import VerdictEmitter
from line.recipes.book import RecipeBook
from line.recipes.model import Recipe
from plc.vocabulary import FailSafeReason, ResultCode

log = logging.getLogger(__name__)

DEFAULT_BUDGET_MS = 40.0

CameraEvents = Callable[[str, str, str], None]  # camera_id, kind, message


class LiveTap(Protocol):
    def offer(self, frame: Frame, verdict: Verdict, recipe: Recipe) -> None: ...


class Inspector:
    """Implements ``line.loop.lane.Decider``. ``batcher`` is set by the station while it runs
    batched; ``live_tap`` by the HMI (``offer`` runs on the hot path and must return at once)."""

    def __init__(self, book: RecipeBook, emitter: VerdictEmitter, stats: StationStats, archive_ng: bool,
                 camera_events: CameraEvents, gate: RunGate | None = None) -> None:  # fmt: skip
        self.book = book
        # halted (line.loop.run_gate): parts get the recipe's fail-safe result, reason "halted"
        self.gate = gate or RunGate()
        self.emitter = emitter
        self.stats = stats
        self.archive_ng = archive_ng
        self._camera_events = camera_events
        self.batcher: Batcher | None = None
        self.live_tap: LiveTap | None = None
        # more taps with the same contract (the flywheel's capture and shadow, line/flywheel/)
        self.frame_taps: list[LiveTap] = []

    def budget_s(self) -> float:
        active = self.book.active
        return (active.recipe.cycle_budget_ms if active else DEFAULT_BUDGET_MS) / 1000.0

    def submit(self, ticket: PartTicket, frame: Frame) -> PendingInspection | None:
        """Start judging a part; None when its deadline already passed (decided fail-safe).

        With a batcher this returns at once, so the lane can hand over its next frame while
        this one is in the batch: the GPU keeps working while lanes decide and write to the PLC.
        """
        if ticket.claimed:  # its deadline passed while it waited: already decided fail-safe
            self.stats.count("late_discarded")
            self.stats.slow_parts.offer_part(ticket, True)
            return None
        if not self.gate.deciding:  # halted: every part still gets a verdict, the fail-safe one
            self.fail_safe(ticket, FailSafeReason.HALTED)
            return None
        prepared = self.book.active  # read once: this part is judged by exactly this recipe
        assert prepared is not None  # noqa: S101 - the station guarantees an active recipe
        t0 = ticket.stamps["submitted"] = time.perf_counter()
        image = ImageInput(frame.data, frame.pixel_format)
        if self.batcher is not None:
            return PendingInspection(prepared, t0, self.batcher.submit(prepared.engine, image), None)
        return PendingInspection(prepared, t0, None, prepared.engine.detect([image])[0])

    def launch(self, ticket: PartTicket, frame: Frame) -> PendingInspection | None:
        """From the camera's thread: start the engine on this frame if it is idle and can run
        without blocking (a GPU engine queues the work and returns); None: inspect as usual."""
        prepared = self.book.active
        if prepared is None or self.batcher is not None or ticket.claimed or not self.gate.deciding:
            return None
        t0 = ticket.stamps["submitted"] = time.perf_counter()
        launched = prepared.engine.try_launch([ImageInput(frame.data, frame.pixel_format)])
        return None if launched is None else PendingInspection(prepared, t0, None, None, launched)

    def abandon(self, pending: PendingInspection) -> None:
        """A launched part that will not be decided here (dropped, shut down): free the engine."""
        pending.prepared.engine.finish(pending.launched)

    def complete(self, ticket: PartTicket, frame: Frame, pending: PendingInspection) -> None:
        """Decide and signal a submitted part (raises what the engine raised: the lane fail-safes)."""
        prepared = pending.prepared
        if pending.launched is not None:  # first: finishing gives the engine back
            result: DetectionResult | None = prepared.engine.finish(pending.launched)[0]
        else:
            result = pending.result if pending.request is None else Batcher.wait(pending.request)
        assert result is not None  # noqa: S101
        t_detected = ticket.stamps["detected"] = time.perf_counter()
        verdict = prepared.policy.decide(result.detections)
        t_decided = ticket.stamps["decided"] = time.perf_counter()
        timings = result.timings_ms  # each result's own dict (the engine copies it per image)
        timings["acquire_wait"] = (pending.t0 - frame.t_ready) * 1000
        timings["detect"] = (t_detected - pending.t0) * 1000  # the engine call as the station sees it
        timings["decision"] = (t_decided - t_detected) * 1000
        if self.live_tap is not None:
            try:
                self.live_tap.offer(frame, verdict, prepared.recipe)
            except Exception:
                log.exception("live view tap failed")
        for tap in self.frame_taps:
            try:
                tap.offer(frame, verdict, prepared.recipe)
            except Exception:
                log.exception("frame tap failed")
        late = t_decided > ticket.deadline
        if self.gate.aborted_since(pending.t0):  # in flight when the station aborted
            self.emitter.emit(ticket, prepared, prepared.policy.fail_safe(FailSafeReason.HALTED), timings, None)
        elif late:  # judged too late: the part gets the fail-safe verdict
            self.stats.count("late_discarded")
            self.emitter.emit(ticket, prepared, prepared.policy.fail_safe("timeout"), timings, None)
        else:  # the NG picture is copied after the PLC write (the frame is held until we return)
            ng_view = frame.data if (self.archive_ng and verdict.result_code is ResultCode.REJECT) else None
            late = not self.emitter.emit(ticket, prepared, verdict, timings, ng_view)
            if late:
                self.stats.count("late_discarded")
        self.stats.slow_parts.offer_part(ticket, late, timings, pending.request)

    def fail_safe(self, ticket: PartTicket, reason: str) -> None:
        prepared = self.book.active
        assert prepared is not None  # noqa: S101
        if reason == "timeout":  # the watchdog, at the deadline (the part's timeline shows it)
            ticket.stamps["deadline"] = time.perf_counter()
        self.emitter.emit(ticket, prepared, prepared.policy.fail_safe(reason), {}, None)

    def camera_event(self, camera_id: str, kind: str, message: str) -> None:
        self._camera_events(camera_id, kind, message)
