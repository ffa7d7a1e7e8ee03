"""One camera's lane through the station: an acquisition thread, an inference thread and a
deadline watchdog.

Every part gets exactly one verdict. A ticket is created when the frame (or the failure that
stands for it) enters the lane; whoever claims the ticket first decides the part: the
inference thread with a real verdict before the deadline, or the watchdog with a fail-safe
verdict *at* the deadline. A result that arrives after its ticket was claimed is discarded
and counted (``late_discarded``), never sent late.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from camera.errors import CameraError, FetchTimeout
from camera.frame import Frame, FrameStatus, GroundTruth
from camera.source import FrameSource
from line.loop.part_queue import Item, PartFailure, PartQueue

if TYPE_CHECKING:
    from line.loop.finisher import Finisher

log = logging.getLogger(__name__)

MAX_GAP_FILL = 1000  # a longer gap is a camera restart, not lost parts
PIPELINE_DEPTH = 2  # frames of one lane between submit and decided (one batched, one deciding)


@dataclass(eq=False)
class PartTicket:
    camera_id: str
    part_id: int
    frame_id: int
    t_ready: float
    deadline: float
    ground_truth: GroundTruth | None = None
    claimed: bool = False
    launched: Any = None  # the decider's handle when the GPU was started from the camera thread
    # hand-over stamps (perf_counter) by step name, for the timelines of late parts
    # (``line.loop.part_timeline``); each step has one writer thread
    stamps: dict[str, float] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def claim(self) -> bool:
        with self._lock:
            if self.claimed:
                return False
            self.claimed = True
            return True


class Decider(Protocol):
    """What the lane needs from the station (implemented by ``Station``)."""

    def budget_s(self) -> float: ...

    def submit(self, ticket: PartTicket, frame: Frame) -> Any: ...

    def launch(self, ticket: PartTicket, frame: Frame) -> Any: ...

    def abandon(self, launched: Any) -> None: ...

    def complete(self, ticket: PartTicket, frame: Frame, pending: Any) -> None: ...

    def fail_safe(self, ticket: PartTicket, reason: str) -> None: ...

    def camera_event(self, camera_id: str, kind: str, message: str) -> None: ...


class CameraLane:
    def __init__(
        self,
        source: FrameSource,
        decider: Decider,
        queue_size: int,
        overflow_policy: str,
        fetch_timeout_s: float,
        clock: Callable[[], float] = time.perf_counter,
        retire_decided: bool = True,
    ) -> None:
        self.source = source
        # False: the watchdog wakes at each decided part's deadline (A/B measurements only)
        self.retire_decided = retire_decided
        self.camera_id = source.camera_id
        self.decider = decider
        self.queue = PartQueue(queue_size, overflow_policy)
        self.fetch_timeout_s = fetch_timeout_s
        self.clock = clock
        self._pending: deque[PartTicket] = deque()
        self._pending_cond = threading.Condition()
        # when the waiting watchdog looks next (clock time): a new ticket wakes it only if its
        # deadline comes earlier. -inf while it is not waiting (it looks at the list before it does)
        self._watchdog_wakes_at = -math.inf
        self._stop_acq = threading.Event()
        self._given_up = threading.Event()  # the stop returned without this lane's acquisition thread
        self._stop = threading.Event()
        self._last_part_id = 0
        self._last_frame_id = 0
        self.camera_errors = 0
        self.camera_drops = 0  # frames the camera lost before we saw them (frame-id gaps)
        self.parts = 0  # tickets issued: every one of them gets exactly one verdict
        # pipelined (a batching station): submit the next frame while the last is being decided
        self.pipelined = False
        self._in_flight = threading.Semaphore(PIPELINE_DEPTH)
        # one finisher thread per station (``Finisher``): it decides each lane's parts in this
        # lane's order as their results come in, one wake-up per batch, not per part and lane
        self.finisher: Finisher | None = None
        self._outstanding = 0  # entries of this lane the finisher has not decided yet
        self._outstanding_lock = threading.Lock()
        # early launch (an unbatched lane): the camera thread starts the GPU on a frame when no
        # older part of this lane still needs the engine, so the inference thread's wake-up
        # overlaps the device's work instead of preceding it. The two counters have one writer
        # each (acquisition, inference); equal means every older part is past the engine, the
        # condition that keeps a launch (which reserves the engine until the inference thread
        # finishes it) from blocking an older part's ``detect`` behind it.
        self.early_launch = False
        self._entered = 0
        self._past_engine = 0
        self._threads: list[threading.Thread] = []

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self.source.start()
        if self.pipelined and self.finisher is None:
            raise RuntimeError("a pipelined lane needs the station's finisher")
        roles = [("acq", self._acquire), ("infer", self._infer), ("deadline", self._watchdog)]
        for name, target in roles:
            thread = threading.Thread(target=target, name=f"{name}-{self.camera_id}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout_s: float = 2.0) -> list[str]:
        """Stop acquiring, decide every part already in the lane, then stop; within about
        ``timeout_s`` even with a camera or an engine that hangs. Returns the names of the
        threads that did not end in time (logged; a part they still hold gets its fail-safe
        from here, and whatever they produce later is discarded)."""
        end = time.monotonic() + timeout_s
        self._stop_acq.set()
        self._join(self._threads[:1], end)
        self.source.stop()
        while len(self.queue) and time.monotonic() < end:
            time.sleep(0.005)
        self._stop.set()
        with self._pending_cond:
            self._pending_cond.notify_all()
        self._join(self._threads[1:2], end)  # inference: nothing more is submitted
        while self._outstanding and time.monotonic() < end:  # the finisher decides what is in flight
            time.sleep(0.001)
        self._join(self._threads[2:], end)
        self._given_up.set()
        for item, ticket in self.queue.close():
            self._abandon_launch(ticket)
            if isinstance(item, Frame):
                item.release()
            self._decide_fail_safe(ticket, "shutdown")
        with self._pending_cond:  # held by a thread that did not stop: decided here, once
            left = [t for t in self._pending if not t.claimed]
            self._pending.clear()
        for ticket in left:
            self._decide_fail_safe(ticket, "shutdown")
        self.source.close()
        stuck = [t.name for t in self._threads if t.is_alive()]
        if stuck:
            log.warning("camera %s: threads still running after %.1f s, left behind: %s", self.camera_id, timeout_s,
                        ", ".join(stuck))  # fmt: skip
        return stuck

    @staticmethod
    def _join(threads: list[threading.Thread], end: float) -> None:
        """Join by ``end``; a thread that is merely polling (every 0.1 s) still gets its turn
        when an earlier one (a hung camera) used the time up."""
        for thread in threads:
            thread.join(max(end - time.monotonic(), 0.25))

    def undecided(self) -> int:
        """Parts of this lane still waiting for their verdict."""
        with self._pending_cond:
            return sum(1 for ticket in self._pending if not ticket.claimed)

    # --- acquisition ---------------------------------------------------------------------
    def _acquire(self) -> None:
        camera_down = False
        while not self._stop_acq.is_set():
            try:
                frame = self.source.fetch(self.fetch_timeout_s)
            except FetchTimeout:
                continue
            except CameraError as exc:
                self.camera_errors += 1
                if not camera_down:
                    camera_down = True
                    self.decider.camera_event(self.camera_id, "camera_lost", str(exc))
                self._enqueue(PartFailure(self.camera_id, self._last_part_id + 1, self._last_frame_id + 1, self.clock(), "camera_error"))
                self._last_part_id += 1
                self._last_frame_id += 1
                self._stop_acq.wait(min(self.fetch_timeout_s, 0.05))
                continue
            if self._given_up.is_set():  # a fetch that outlasted the stop: the lane is closed
                frame.release()
                break
            if camera_down:
                camera_down = False
                self.decider.camera_event(self.camera_id, "camera_back", "acquisition resumed")
            self._fill_gap(frame)
            self._last_part_id = frame.part_id
            self._last_frame_id = frame.frame_id
            if frame.status is FrameStatus.INCOMPLETE:
                failure = PartFailure(frame.camera_id, frame.part_id, frame.frame_id, frame.t_ready, "incomplete_frame")
                frame.release()  # never inspected as if whole
                self._enqueue(failure, frame.ground_truth)
                continue
            self._enqueue(frame, frame.ground_truth)

    def _fill_gap(self, frame: Frame) -> None:
        """A jump in the camera's frame counter means frames the camera itself dropped (no free
        buffer, lost on the wire): those parts passed unseen and get a fail-safe verdict."""
        if self._last_frame_id == 0 or frame.frame_id <= self._last_frame_id + 1:
            return
        missing = frame.frame_id - self._last_frame_id - 1
        self.camera_drops += missing
        for k in range(1, min(missing, MAX_GAP_FILL) + 1):
            part_id = self._last_part_id + k if frame.part_id > self._last_part_id else 0
            self._enqueue(PartFailure(self.camera_id, part_id, self._last_frame_id + k, frame.t_ready, "dropped"))

    def _enqueue(self, item: Item, ground_truth: GroundTruth | None = None) -> None:
        ticket = PartTicket(
            item.camera_id, item.part_id, item.frame_id, item.t_ready, item.t_ready + self.decider.budget_s(), ground_truth
        )
        ticket.stamps["lane_in"] = self.clock()
        if self.early_launch and isinstance(item, Frame) and self._entered == self._past_engine:
            try:  # first: the device starts while the bookkeeping below runs
                ticket.launched = self.decider.launch(ticket, item)
            except Exception:  # the inference thread's own attempt reports it properly
                log.debug("early launch of part %s failed", ticket.part_id, exc_info=True)
        with self._pending_cond:
            # the watchdog sleeps until the head's deadline, or for one budget when the list is
            # empty; only a deadline before its next look must wake it (a recipe switch to a
            # shorter budget). A wake-up here lands between this hand-over and the inference
            # thread's start, and races that thread for the GIL and, on 2 cores, for a CPU.
            wake = ticket.deadline < self._watchdog_wakes_at
            self._pending.append(ticket)
            self.parts += 1
            if wake:
                self._pending_cond.notify()
        self._entered += 1
        if not self.queue.put(item, ticket):  # not even a failure record fits: decide now
            self._abandon_launch(ticket)
            self._past_engine += 1
            self._decide_fail_safe(ticket, getattr(item, "reason", "dropped"))

    # --- inference -----------------------------------------------------------------------
    def _infer(self) -> None:
        """One loop for both modes: inspect each part here, or (pipelined) hand it over."""
        handle = self._submit if self.pipelined else self._inspect_now
        while not self._stop.is_set():
            entry = self.queue.get(0.1)
            if entry is not None:
                entry[1].stamps["dequeued"] = self.clock()
                handle(*entry)

    def _inspect_now(self, item: Item, ticket: PartTicket) -> None:
        if isinstance(item, PartFailure):  # a launched frame may have been dropped since
            self._abandon_launch(ticket)
            self._past_engine += 1
            self._decide_fail_safe(ticket, item.reason)
            return
        past_engine = False
        try:
            pending = ticket.launched
            if pending is None:
                pending = self.decider.submit(ticket, item)  # the engine runs here
            self._past_engine += 1
            past_engine = True
            if pending is not None:  # None: decided already (deadline passed while queued)
                self.decider.complete(ticket, item, pending)
        except Exception as exc:  # the loop must never die on one part
            self._inspection_failed(ticket, exc)
        finally:
            if not past_engine:
                self._past_engine += 1
            item.release()
            self._retire_decided()

    def _submit(self, item: Item, ticket: PartTicket) -> None:
        """Hand a frame to the batcher without waiting for its result; the finisher thread
        decides parts in arrival order (failures too, so the PLC sees this lane's parts in order)."""
        if isinstance(item, PartFailure):
            self._to_finisher(ticket, item, None)
            return
        self._in_flight.acquire()  # at most PIPELINE_DEPTH frames of this lane held
        try:
            pending = self.decider.submit(ticket, item)
        except Exception as exc:
            pending = exc
        if pending is None:  # decided already (deadline passed while queued)
            item.release()
            self._in_flight.release()
            return
        self._to_finisher(ticket, item, pending)

    def _to_finisher(self, ticket: PartTicket, item: Item, pending: Any) -> None:
        assert self.finisher is not None  # noqa: S101 - checked in start()
        with self._outstanding_lock:
            self._outstanding += 1
        self.finisher.put(self, ticket, item, pending)

    def finish(self, ticket: PartTicket, item: Item, pending: Any) -> None:
        """Decide one submitted part (called by the station's finisher thread)."""
        try:
            if isinstance(item, PartFailure):
                self._decide_fail_safe(ticket, item.reason)
                return
            try:
                if isinstance(pending, Exception):
                    raise pending
                self.decider.complete(ticket, item, pending)
            except Exception as exc:  # the loop must never die on one part
                self._inspection_failed(ticket, exc)
            finally:
                item.release()
                self._in_flight.release()
        finally:
            with self._outstanding_lock:
                self._outstanding -= 1

    def _inspection_failed(self, ticket: PartTicket, exc: Exception) -> None:
        log.error("inspection of part %s failed", ticket.part_id, exc_info=exc)
        self._decide_fail_safe(ticket, "inference_error")
        self.decider.camera_event(self.camera_id, "inference_error", str(exc))

    def _abandon_launch(self, ticket: PartTicket) -> None:
        """A launched part that will not be inspected: give the engine back, drop the result."""
        launched, ticket.launched = ticket.launched, None
        if launched is not None:
            try:
                self.decider.abandon(launched)
            except Exception:
                log.exception("abandoning the launch of part %s failed", ticket.part_id)

    def _decide_fail_safe(self, ticket: PartTicket, reason: str) -> None:
        self.decider.fail_safe(ticket, reason)

    # --- deadlines -----------------------------------------------------------------------
    def _retire_decided(self) -> None:
        """After an unbatched lane decided a part: drop the decided tickets at the head and
        re-arm the watchdog now, while this lane is idle. Left alone, the watchdog wakes at
        each decided part's deadline, which lands in a later part's engine run: on a 2-core
        CPU that wake-up takes a core from the engine's threads."""
        if not self.retire_decided:
            return
        with self._pending_cond:
            if self._pending and self._pending[0].claimed:
                while self._pending and self._pending[0].claimed:
                    self._pending.popleft()
                self._pending_cond.notify()

    def _wait_for_tickets(self, timeout_s: float) -> None:
        """Wait (holding ``_pending_cond``) until a notify or ``timeout_s``; new tickets read
        when this wait ends from ``_watchdog_wakes_at``."""
        self._watchdog_wakes_at = self.clock() + timeout_s
        try:
            self._pending_cond.wait(timeout_s)
        finally:
            self._watchdog_wakes_at = -math.inf

    def _watchdog(self) -> None:
        while True:
            expired: list[PartTicket] = []
            with self._pending_cond:
                while self._pending and self._pending[0].claimed:
                    self._pending.popleft()
                if self._stop.is_set() and not self._pending:
                    return
                if not self._pending:
                    # for one budget: a ticket that arrives meanwhile has its deadline after this
                    # look (unless the budget shrank: then it notifies), so it need not wake us
                    self._wait_for_tickets(self.decider.budget_s() if self.retire_decided else 0.1)
                    continue
                now = self.clock()
                while self._pending and (self._pending[0].claimed or self._pending[0].deadline <= now):
                    ticket = self._pending.popleft()
                    if not ticket.claimed:
                        expired.append(ticket)
                if not expired:
                    wait = self._pending[0].deadline - now if self._pending else 0.1
                    self._wait_for_tickets(max(wait, 0.0005))
                    if self._stop.is_set() and not self._pending:
                        return
            for ticket in expired:
                self.decider.fail_safe(ticket, "timeout")
