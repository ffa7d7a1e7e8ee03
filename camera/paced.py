"""``PacedSource``: the camera behaviour shared by the simulated sources (synthetic, replay).

A subclass only says how to fill a buffer for a part (``_render``); this base makes it behave
like a free-running or software-triggered GigE camera:

* Pacing: one part every ``1 / rate_hz`` seconds on a monotonic schedule (``perf_counter``);
  ``fetch`` blocks on an event with a timeout until the next slot (no polling). A consumer
  that falls behind gets the queued frames at once (``t_ready`` is when the camera would
  have delivered them); more than ``pool_size`` slots behind, the camera's own queue would
  have overflowed, so those slots count as dropped.
* Buffers: ``pool_size`` arrays allocated once; ``Frame.release`` returns one exactly once.
  **Pool policy**: free-running with ``rate_hz > 0``, a part that arrives while the consumer
  holds every buffer is dropped (``counters.dropped``; its part id is consumed, so the
  station sees the gap), as a real camera drops frames. With ``rate_hz == 0`` or a software
  trigger nothing is missed by waiting, so ``fetch`` waits for a buffer and raises
  ``FetchTimeout`` when none comes back within the timeout.
* Faults for tests: ``inject_failure(fetches=N)`` / ``inject_failure(duration_s=D)`` makes
  fetches raise ``CameraRetryableError`` (each still consumes its part slot: the part passes
  the camera unseen), then the camera recovers (``counters.reconnects``);
  ``inject_incomplete(n)`` or an ``incomplete_rate`` delivers ``status=INCOMPLETE`` frames
  (the trailing 40 % of rows zeroed, as after lost packets).
"""

from __future__ import annotations

import threading
import time
from abc import abstractmethod
from collections import deque
from typing import NoReturn, Self

import numpy as np

from camera.buffer_pool import BufferPool
from camera.config import CameraSettings
from camera.errors import CameraFatalError, CameraRetryableError, CameraSettingError, FetchTimeout
from camera.frame import Frame, FrameStatus, GroundTruth
from camera.source import CameraState, FrameSource

SIM_FORMATS: tuple[str, ...] = ("Mono8", "RGB8")
MAX_SIDE = 8192


class PacedSource(FrameSource):
    def __init__(
        self,
        camera_id: str,
        *,
        width: int,
        height: int,
        pixel_format: str,
        rate_hz: float,
        pool_size: int,
        seed: int = 0,
        max_parts: int | None = None,
        incomplete_rate: float = 0.0,
    ) -> None:
        super().__init__(camera_id)
        self._lock = threading.Lock()  # settings, pool swap, counters, fault state
        self._fetch_lock = threading.Lock()  # one consumer at a time
        self._wake = threading.Event()  # set by stop(): interrupts every wait
        self._trigger_cond = threading.Condition()
        self._triggers: deque[int] = deque()
        self._width, self._height, self._format = width, height, pixel_format
        self._rate = rate_hz
        self._pool_size = pool_size
        self._max_parts = max_parts
        self._trigger_mode = "free_run"
        self._pool = self._new_pool()
        self._next_slot = 0.0
        self._next_part = 1
        self._next_frame = 1
        self._fail_fetches = 0
        self._fail_until = 0.0
        self._failing = False
        self._incomplete_next = 0
        self._incomplete_rate = incomplete_rate
        self._fault_rng = np.random.default_rng([seed, 0xFA017])

    @abstractmethod
    def _render(self, buf: np.ndarray, part_id: int, pixel_format: str) -> GroundTruth | None:
        """Fill ``buf`` (the pool's shape for the current format) with the image of ``part_id``."""

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        with self._lock:
            self._wake.clear()
            self._next_slot = time.perf_counter()
        if self.state is CameraState.CLOSED:  # started again after close(): open first
            self._set_state(CameraState.CONNECTED)
        self._set_state(CameraState.ACQUIRING)

    def stop(self) -> None:
        self._wake.set()
        with self._trigger_cond:
            self._trigger_cond.notify_all()
        if self.state is not CameraState.CLOSED:
            self._set_state(CameraState.CONNECTED)

    def __enter__(self) -> Self:
        self.start()
        return self

    @property
    def pool(self) -> BufferPool:
        return self._pool

    def host_buffers(self) -> list[np.ndarray]:
        return [self._pool.buffer(i) for i in range(self._pool.size)]

    @property
    def pixel_format(self) -> str:
        return self._format

    # --- settings --------------------------------------------------------------------------
    def validate_settings(self, settings: CameraSettings) -> None:
        if settings.pixel_format is not None and settings.pixel_format not in SIM_FORMATS:
            raise CameraSettingError("PixelFormat", settings.pixel_format, f"one of {list(SIM_FORMATS)}")
        if settings.trigger_mode == "hardware":
            raise CameraSettingError("TriggerMode", "hardware", "free_run or software (a simulation has no I/O line)")
        self._validate_size(settings)

    def _validate_size(self, settings: CameraSettings) -> None:
        for node, value in (("Width", settings.width), ("Height", settings.height)):
            if value is not None and not 64 <= value <= MAX_SIDE:
                raise CameraSettingError(node, value, f"64..{MAX_SIDE}")

    def apply_settings(self, settings: CameraSettings) -> None:
        """Validate, then apply; a new size or format reallocates the pool (frames still out
        go back to their old pool, which is then garbage)."""
        self.validate_settings(settings)
        with self._lock:
            before = (self._width, self._height, self._format)
            self._width = settings.width or self._width
            self._height = settings.height or self._height
            self._format = settings.pixel_format or self._format
            if settings.frame_rate is not None:
                self._rate = settings.frame_rate
            self._trigger_mode = settings.trigger_mode
            if (self._width, self._height, self._format) != before:
                self._pool = self._new_pool()

    def _new_pool(self) -> BufferPool:
        shape = (self._height, self._width) if self._format == "Mono8" else (self._height, self._width, 3)
        return BufferPool(self._pool_size, shape)

    # --- fault injection (tests) -----------------------------------------------------------
    def inject_failure(self, fetches: int = 0, duration_s: float = 0.0) -> None:
        """Make the next ``fetches`` fetches, and every fetch for ``duration_s`` seconds, raise
        ``CameraRetryableError`` (state RECONNECTING); the next good fetch counts a reconnect."""
        with self._lock:
            self._fail_fetches = max(self._fail_fetches, fetches)
            if duration_s > 0:
                self._fail_until = max(self._fail_until, time.perf_counter() + duration_s)

    def inject_incomplete(self, frames: int = 1, rate: float | None = None) -> None:
        """The next ``frames`` frames arrive INCOMPLETE; ``rate`` sets the random share from now."""
        with self._lock:
            self._incomplete_next += frames
            if rate is not None:
                self._incomplete_rate = rate

    # --- software trigger ------------------------------------------------------------------
    def trigger(self, part_id: int | None = None) -> None:
        """Queue a software trigger (``settings.trigger_mode == "software"``); the frame it
        causes carries ``part_id`` (default: the next id). A full trigger queue drops it."""
        if self._trigger_mode != "software":
            raise CameraFatalError(f"camera {self.camera_id}: trigger() needs trigger_mode 'software', not {self._trigger_mode!r}")
        with self._trigger_cond:
            if part_id is None:
                part_id = self._next_part
            self._next_part = max(self._next_part, part_id + 1)
            if len(self._triggers) >= self._pool_size:  # the camera's trigger queue overflows
                with self._lock:
                    self.counters.dropped += 1
                return
            self._triggers.append(part_id)
            self._trigger_cond.notify()

    # --- acquisition -----------------------------------------------------------------------
    def fetch(self, timeout_s: float) -> Frame:
        if self.state not in (CameraState.ACQUIRING, CameraState.RECONNECTING):
            raise CameraFatalError(f"camera {self.camera_id} is not acquiring (state {self.state.value}); call start()")
        deadline = time.perf_counter() + max(0.0, timeout_s)
        with self._fetch_lock:
            while True:
                pool = self._pool
                index: int | None = None
                if self._rate == 0 or self._trigger_mode == "software":  # back-pressure: wait for a buffer
                    index = pool.acquire(deadline - time.perf_counter())
                    if index is None:
                        self._timeout(f"no free buffer within {timeout_s:.3f} s (the consumer holds all {pool.size})")
                try:
                    part_id, slot = self._next_capture(deadline)
                    frame_id = self._next_frame
                    self._next_frame += 1
                    self._raise_if_failing(part_id)
                except BaseException:
                    if index is not None:
                        pool.give_back(index)
                    raise
                if index is None:
                    index = pool.try_acquire()
                if index is None:  # free-running camera with no buffer: the part goes by unseen
                    with self._lock:
                        self.counters.dropped += 1
                    continue
                return self._capture(pool, index, part_id, frame_id, slot)

    def _next_capture(self, deadline: float) -> tuple[int, float]:
        """Wait for the next part under the camera: a schedule slot or a software trigger."""
        if self._trigger_mode == "software":
            with self._trigger_cond:
                self._trigger_cond.wait_for(
                    lambda: bool(self._triggers) or self._wake.is_set(), timeout=max(0.0, deadline - time.perf_counter())
                )
                if not self._triggers:
                    self._timeout("no software trigger")
                return self._triggers.popleft(), time.perf_counter()
        if self._max_parts is not None and self._next_part > self._max_parts:
            self._wake.wait(max(0.0, deadline - time.perf_counter()))
            self._timeout(f"no more parts (max_parts={self._max_parts})")
        now = time.perf_counter()
        slot = self._next_slot if self._rate > 0 else now
        if slot > deadline:
            self._wake.wait(max(0.0, deadline - now))
            self._timeout(f"no part within the timeout at {self._rate} Hz")
        if slot > now and self._wake.wait(slot - now):
            self._timeout("camera stopped")
        if self._rate > 0:
            period = 1.0 / self._rate
            behind = int((time.perf_counter() - slot) / period)
            if behind > self._pool_size:  # the camera's own queue overflowed meanwhile
                skipped = behind - self._pool_size
                with self._lock:
                    self.counters.dropped += skipped
                self._next_part += skipped
                self._next_frame += skipped
                slot += skipped * period
            self._next_slot = slot + period
        part_id = self._next_part
        self._next_part += 1
        return part_id, slot

    def _timeout(self, why: str) -> NoReturn:
        with self._lock:
            self.counters.timeouts += 1
        raise FetchTimeout(f"camera {self.camera_id}: {why}")

    def _raise_if_failing(self, part_id: int) -> None:
        with self._lock:
            failing = self._fail_fetches > 0 or time.perf_counter() < self._fail_until
            if failing:
                self._fail_fetches = max(0, self._fail_fetches - 1)
                self._failing = True
            elif self._failing:
                self._failing = False
                self.counters.reconnects += 1
        if failing:
            self._set_state(CameraState.RECONNECTING)
            raise CameraRetryableError(f"camera {self.camera_id}: injected failure at part {part_id} (device lost)")
        if self.state is CameraState.RECONNECTING:
            self._set_state(CameraState.ACQUIRING)

    def _capture(self, pool: BufferPool, index: int, part_id: int, frame_id: int, slot: float) -> Frame:
        buf = pool.buffer(index)
        t0 = time.perf_counter()
        try:
            truth = self._render(buf, part_id, self._format)
        except BaseException:
            pool.give_back(index)
            raise
        status = self._maybe_incomplete(buf)
        now = time.perf_counter()
        # A frame picked up late landed in host memory when the camera took it, not now.
        t_ready = now if slot >= t0 - 1e-3 else slot + (now - t0)
        with self._lock:
            self.counters.frames += 1
            self.counters.incomplete += status is FrameStatus.INCOMPLETE
        return Frame(
            camera_id=self.camera_id, frame_id=frame_id, part_id=part_id,
            device_timestamp_ns=time.monotonic_ns(), t_ready=t_ready, pixel_format=self._format,
            width=self._width, height=self._height, status=status, ground_truth=truth,
            _data=buf, _release=pool.releaser(index),
        )

    def _maybe_incomplete(self, buf: np.ndarray) -> FrameStatus:
        with self._lock:
            forced = self._incomplete_next > 0
            self._incomplete_next -= forced
            hit = forced or (self._incomplete_rate > 0 and self._fault_rng.uniform() < self._incomplete_rate)
        if not hit:
            return FrameStatus.COMPLETE
        buf[int(buf.shape[0] * 0.6) :] = 0  # the trailing packets never arrived
        return FrameStatus.INCOMPLETE
