"""One reconnect supervisor for every hardware backend (harvesters/GenTL and Aravis).

Why here and not in each backend: the rules are the same for any device (docs/architecture.md,
like pymodbus ``do_reconnect`` and asyncua ``_connection_supervisor``):

* a backend only knows how to open a :class:`Session` (one connection to one device) and
  how to grab a raw buffer from it;
* this module owns the lifecycle states, the counters, part ids, the active liveness probe
  and the capped exponential backoff (reset on success) with the settings re-applied after
  every reconnect;
* ``fetch`` never waits for a reconnect: while the device is away it raises
  ``CameraRetryableError`` at once, so the station keeps issuing fail-safe verdicts.

A lost session is closed on a reaper thread, because tearing down a dead GigE device waits
for GVCP timeouts (seconds) and must not hold up the reconnect or the hot path.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from camera.backoff import CappedBackoff
from camera.config import CameraSettings, SupervisorOptions
from camera.errors import CameraError, CameraFatalError, CameraRetryableError, FetchTimeout
from camera.frame import Frame, FrameStatus
from camera.nodemap import DEFAULT_NODE_NAMES, SettingsPlan, apply_plan, plan_settings
from camera.session import DeviceLostError, RawFrame, Session, frame_id_gap
from camera.source import CameraState, FrameSource

log = logging.getLogger(__name__)

# a stop's bounds: the supervisor thread (in a reconnect), then device teardowns (a dead GigE
# device waits for its GVCP timeouts); past them the threads are logged and left to finish
STOP_JOIN_S = 1.0
REAPER_JOIN_S = 1.0

__all__ = ["DeviceLostError", "RawFrame", "Session", "SupervisedSource", "SupervisorOptions"]


def _producer_dropped(session: Session) -> int:
    try:
        return session.producer_dropped()
    except Exception:  # statistics of a dying stream are not worth an exception on the hot path
        return 0


class SupervisedSource(FrameSource):
    """``FrameSource`` on top of a backend's ``connect() -> Session``."""

    def __init__(
        self,
        camera_id: str,
        settings: CameraSettings | None,
        supervision: SupervisorOptions,
        connect: Callable[[], Session],
    ) -> None:
        super().__init__(camera_id)
        self._settings = settings or CameraSettings()
        self._sup = supervision
        self._connect = connect
        self._session: Session | None = None
        self._plan: SettingsPlan | None = None
        self._lock = threading.RLock()  # session swaps and reconfiguration
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self._reapers: list[threading.Thread] = []
        self._pending_parts: deque[int] = deque(maxlen=supervision.max_pending_triggers)
        self._next_part_id = 1
        self._seq = 0
        self._last_device_frame_id: int | None = None
        self._producer_dropped_seen = 0
        self._outstanding = 0
        self.backoff_waits: deque[float] = deque(maxlen=32)  # recent reconnect waits (HMI, tests)
        self.unsolicited_frames = 0  # software-trigger mode: frames nobody triggered, handed back
        self.last_error: str | None = None

    # ---- lifecycle -------------------------------------------------------------------
    def _open_if_closed(self) -> Session:
        """Connect without streaming (state CONNECTED), so settings can be checked early."""
        with self._lock:
            if self._session is None:
                if self.state is not CameraState.CLOSED:
                    raise CameraRetryableError(f"camera {self.camera_id!r} is {self.state.value}")
                self._session = self._connect()
                self._set_state(CameraState.CONNECTED)
            return self._session

    def start(self) -> None:
        """Connect, apply the settings, start streaming. An absent device at start is fatal."""
        with self._lock:
            if self.state in (CameraState.ACQUIRING, CameraState.RECONNECTING):
                return
            self._closing.clear()
            session = self._open_if_closed()
            try:
                self._configure(session, self._settings)
                session.start_stream()
            except BaseException:
                self._session = None
                self._set_state(CameraState.CLOSED)
                session.close(lost=False)
                raise
            self._last_device_frame_id = None
            self._set_state(CameraState.ACQUIRING)
        self._thread = threading.Thread(
            target=self._supervise, name=f"camera-supervisor-{self.camera_id}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._closing.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(STOP_JOIN_S)
            if self._thread.is_alive():
                log.warning("camera %s: supervisor still busy after %.1f s, left behind", self.camera_id, STOP_JOIN_S)
        self._thread = None
        with self._lock:
            session, self._session = self._session, None
            if session is not None:
                self._retire(session, lost=False, background=False)
            self._set_state(CameraState.CLOSED)
        end = time.monotonic() + REAPER_JOIN_S  # a dead GigE device's teardown waits for GVCP timeouts
        for reaper in self._reapers:
            reaper.join(max(end - time.monotonic(), 0.01))
        left = sum(1 for r in self._reapers if r.is_alive())
        if left:
            log.warning("camera %s: %d device teardowns still running, left behind", self.camera_id, left)
        self._reapers.clear()

    def close(self) -> None:
        self.stop()
        self._set_state(CameraState.CLOSED)

    # ---- settings ----------------------------------------------------------------------
    def _configure(self, session: Session, settings: CameraSettings) -> None:
        plan = plan_settings(session.nodes, settings, self._sup.node_names)
        apply_plan(session.nodes, plan)
        self._plan = plan

    def validate_settings(self, settings: CameraSettings) -> None:
        """Check ``settings`` against the device (connecting first if closed); write nothing."""
        with self._lock:
            plan_settings(self._open_if_closed().nodes, settings, self._sup.node_names)

    def apply_settings(self, settings: CameraSettings) -> None:
        """Validate everything, then stop the stream, write, restart (buffer sizes may change).

        On refusal nothing was written and the stream keeps running with the old settings.
        """
        with self._lock:
            session = self._open_if_closed()
            plan = plan_settings(session.nodes, settings, self._sup.node_names)
            streaming = self.state is CameraState.ACQUIRING
            if streaming:
                session.stop_stream()
            try:
                apply_plan(session.nodes, plan)
            finally:
                if streaming:
                    session.start_stream()
            self._plan = plan
            self._settings = settings
            self._pending_parts.clear()
            self._last_device_frame_id = None

    @property
    def settings(self) -> CameraSettings:
        return self._settings

    def frame_rate_bounds(self) -> tuple[float, float] | None:
        """(min, max) of the device's frame-rate node, e.g. to run at the producer's maximum."""
        with self._lock:
            nodes = self._open_if_closed().nodes
            for name in self._sup.node_names.get("frame_rate") or DEFAULT_NODE_NAMES["frame_rate"]:
                info = nodes.info(name)
                if info is not None and info.minimum is not None and info.maximum is not None:
                    return info.minimum, info.maximum
        return None

    # ---- hot path ------------------------------------------------------------------------
    def trigger(self, part_id: int | None = None) -> None:
        """Remember ``part_id`` for the next frame; fire the software trigger in software mode.

        In hardware mode the line fires the camera; calling ``trigger(part_id)`` only tells
        which part the next frame belongs to (e.g. the PLC's ``next_part_id``).
        """
        with self._lock:
            session = self._session
            if part_id is not None:
                self._pending_parts.append(part_id)
            if self._settings.trigger_mode != "software":
                return
            if session is None or self._plan is None or self._plan.software_trigger_node is None:
                raise CameraRetryableError(f"camera {self.camera_id!r} is not acquiring; trigger not sent")
            node = self._plan.software_trigger_node
        try:
            session.nodes.execute(node)
        except CameraError:
            raise
        except Exception as exc:
            self._wake.set()  # let the liveness probe decide now whether the device is gone
            raise CameraRetryableError(f"camera {self.camera_id!r}: software trigger failed: {exc}") from exc

    def fetch(self, timeout_s: float) -> Frame:
        """Next frame, or ``FetchTimeout`` / ``CameraRetryableError`` / ``CameraFatalError``.

        A fetch failing with a camera error (not a timeout) consumes the part id its frame
        would have carried: the station gives that part a fail-safe verdict, and the frames
        after a reconnect continue with the following ids, never reusing one.
        """
        try:
            return self._fetch(timeout_s)
        except FetchTimeout:
            raise
        except CameraError:
            with self._counters_lock:
                if self._pending_parts:
                    self._next_part_id = self._pending_parts.popleft() + 1
                else:
                    self._next_part_id += 1
            raise

    def _fetch(self, timeout_s: float) -> Frame:
        session = self._session
        if session is None:
            if self.state is CameraState.FAILED:
                raise CameraFatalError(f"camera {self.camera_id!r} failed: {self.last_error}")
            raise CameraRetryableError(f"camera {self.camera_id!r} is {self.state.value}")
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                raw = session.grab(max(0.001, deadline - time.monotonic()))
                if self._settings.trigger_mode != "software" or self._pending_parts:
                    break
                # software triggering, yet no trigger is pending: a frame already in flight
                # when the mode changed. It belongs to no part, so it is handed back unseen.
                raw.release()
                self.unsolicited_frames += 1
                if time.monotonic() >= deadline:
                    raise FetchTimeout(f"no triggered frame within {timeout_s:.3f} s")
        except FetchTimeout:
            with self._counters_lock:
                self.counters.timeouts += 1
                if self._settings.trigger_mode == "software" and self._pending_parts:
                    # a software trigger is answered within the fetch timeout or not at all
                    stale = list(self._pending_parts)
                    self._pending_parts.clear()
                    log.warning("camera %s: no frame for triggered parts %s", self.camera_id, stale)
            raise
        except DeviceLostError as exc:
            self._lost(session, exc)
            raise
        return self._to_frame(session, raw)

    def _to_frame(self, session: Session, raw: RawFrame) -> Frame:
        with self._counters_lock:
            self._seq += 1
            seq = self._seq
            self.counters.frames += 1
            if not raw.complete:
                self.counters.incomplete += 1
            dropped = 0
            if session.counts_drops:  # the producer knows best (underruns, frames never seen)
                produced = _producer_dropped(session)
                dropped = max(0, produced - self._producer_dropped_seen)
                self._producer_dropped_seen = produced
            elif raw.complete and raw.device_frame_id is not None:
                # ids of incomplete buffers are unreliable (0, or late and out of order)
                dropped = frame_id_gap(self._last_device_frame_id, raw.device_frame_id)
                self._last_device_frame_id = raw.device_frame_id
            self.counters.dropped += dropped
            part_id = self._pending_parts.popleft() if self._pending_parts else self._next_part_id
            self._next_part_id = part_id + 1
            self._outstanding += 1

        def release() -> None:
            # Frame.release guarantees one call; the session guards against a closed stream
            with self._counters_lock:
                self._outstanding -= 1
            raw.release()

        return Frame(
            camera_id=self.camera_id,
            frame_id=seq,
            part_id=part_id,
            device_timestamp_ns=raw.device_timestamp_ns,
            t_ready=raw.t_ready,
            pixel_format=raw.pixel_format,
            width=raw.width,
            height=raw.height,
            status=FrameStatus.COMPLETE if raw.complete else FrameStatus.INCOMPLETE,
            _data=raw.data,
            _release=release,
        )

    @property
    def outstanding_frames(self) -> int:
        """Frames handed out and not yet released (should be 0 between parts)."""
        return self._outstanding

    # ---- supervision ----------------------------------------------------------------------
    def _lost(self, session: Session, exc: BaseException | str) -> None:
        with self._lock:
            if self._session is not session:
                return  # already handled
            self._session = None
            self.last_error = str(exc)
            self._set_state(CameraState.RECONNECTING)
            self._pending_parts.clear()
            self._retire(session, lost=True, background=session.background_close)
        log.warning("camera %s lost: %s", self.camera_id, exc)
        self._wake.set()

    def _retire(self, session: Session, lost: bool, background: bool) -> None:
        def close() -> None:
            try:
                if not lost:
                    session.stop_stream()
            except Exception as exc:  # a stop failing on a dying device changes nothing
                log.debug("camera %s: stop_stream during close: %s", self.camera_id, exc)
            try:
                session.close(lost=lost)
            except Exception as exc:
                log.debug("camera %s: close: %s", self.camera_id, exc)

        if not background:
            close()
            return
        reaper = threading.Thread(target=close, name=f"camera-reaper-{self.camera_id}", daemon=True)
        self._reapers = [r for r in self._reapers if r.is_alive()]
        self._reapers.append(reaper)
        reaper.start()

    def _supervise(self) -> None:
        backoff = CappedBackoff(self._sup.backoff_initial_s, self._sup.backoff_max_s)
        while not self._closing.is_set():
            state = self.state
            if state is CameraState.RECONNECTING:
                if self._try_reconnect():
                    backoff.reset()
                    continue
                if self.state is CameraState.FAILED:
                    return
                wait = backoff.next_wait()
                self.backoff_waits.append(wait)
                self._closing.wait(wait)
                continue
            self._wake.wait(self._sup.probe_interval_s)
            self._wake.clear()
            session = self._session
            if session is None or self._closing.is_set():
                continue
            try:
                alive = session.probe()
            except Exception as exc:  # a probe that raises is a failed probe
                log.debug("camera %s probe raised %s", self.camera_id, exc)
                alive = False
            if not alive:
                self._lost(session, "liveness probe got no answer")

    def _try_reconnect(self) -> bool:
        t0 = time.monotonic()
        try:
            session = self._connect()
        except CameraError as exc:
            self.last_error = str(exc)
            return False
        try:
            with self._lock:
                if self._closing.is_set():
                    session.close(lost=False)
                    return True
                self._configure(session, self._settings)
                session.start_stream()
                self._session = session
                self._last_device_frame_id = None
                self._producer_dropped_seen = 0
                with self._counters_lock:
                    self.counters.reconnects += 1
                self._set_state(CameraState.ACQUIRING)
        except CameraFatalError as exc:  # the returned device refuses the recipe: retrying cannot help
            self.last_error = str(exc)
            self._set_state(CameraState.FAILED)
            session.close(lost=False)
            log.error("camera %s: settings refused after reconnect: %s", self.camera_id, exc)
            return False
        except Exception as exc:
            self.last_error = str(exc)
            self._retire(session, lost=True, background=session.background_close)
            return False
        log.info("camera %s reconnected in %.3f s", self.camera_id, time.monotonic() - t0)
        return True
