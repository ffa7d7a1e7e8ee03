"""A frame source over images held in memory (benchmarks, tests).

Two pacing modes: ``rate_hz > 0`` hands out a frame on a fixed schedule, as a free-running
camera does (late consumers make it drop, like a real one); ``rate_hz == 0`` hands out the
next frame as soon as a pooled buffer is free (back-pressure), which measures the most a
pipeline can sustain.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from camera.config import CameraSettings
from camera.errors import FetchTimeout
from camera.frame import Frame, GroundTruth
from camera.source import CameraState, FrameSource


class MemorySource(FrameSource):
    class Options(BaseModel):
        model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
        rate_hz: float = Field(default=0.0, ge=0)
        pool_size: int = Field(default=6, ge=1)
        pixel_format: str = "Mono8"
        max_frames: int | None = None
        # a shared trigger: every camera given the same ``trigger_epoch`` (perf_counter time)
        # fires on the same schedule, as the cameras of a multi-view station do; None: from start
        trigger_epoch: float | None = None

    def __init__(
        self,
        camera_id: str,
        options: Options,
        settings: CameraSettings | None = None,
        images: Sequence[np.ndarray] = (),
        truths: Sequence[GroundTruth | None] | None = None,
    ) -> None:
        super().__init__(camera_id)
        if not images:
            raise ValueError("MemorySource needs at least one image")
        self.options = options
        self._images = list(images)
        self._truths = list(truths) if truths is not None else [None] * len(self._images)
        # the pool: buffers the "camera" owns; a frame borrows one until it is released
        self._pool = [np.empty_like(self._images[0]) for _ in range(options.pool_size)]
        self._free = list(range(options.pool_size))
        self._cond = threading.Condition()
        self._n = 0
        self._next_t = 0.0

    def start(self) -> None:
        now = time.perf_counter()
        epoch, rate = self.options.trigger_epoch, self.options.rate_hz
        if epoch is None or rate <= 0:
            self._next_t = now
        else:  # the first trigger of the shared schedule after now (same grid for every camera)
            period = 1.0 / rate
            self._next_t = epoch + math.ceil(max(now - epoch, 0.0) / period) * period - period
        if self.state is CameraState.CLOSED:  # the images are "opened" by the first start
            self._set_state(CameraState.CONNECTED)
        self._set_state(CameraState.ACQUIRING)

    def stop(self) -> None:
        if self.state is CameraState.ACQUIRING:
            self._set_state(CameraState.CONNECTED)

    def host_buffers(self) -> list[np.ndarray]:
        return list(self._pool)

    @property
    def exhausted(self) -> bool:
        """Every frame of ``max_frames`` handed out (or dropped)."""
        return self.options.max_frames is not None and self._n >= self.options.max_frames

    def fetch(self, timeout_s: float) -> Frame:
        if self.options.max_frames is not None and self._n >= self.options.max_frames:
            time.sleep(min(timeout_s, 0.01))
            raise FetchTimeout("all frames handed out")
        if self.options.rate_hz > 0:
            self._next_t += 1.0 / self.options.rate_hz
            delay = self._next_t - time.perf_counter()
            if delay > timeout_s:
                self._next_t -= 1.0 / self.options.rate_hz
                time.sleep(timeout_s)
                raise FetchTimeout("next frame not due yet")
            if delay > 0:
                time.sleep(delay)
        with self._cond:
            if not self._free:
                if self.options.rate_hz > 0:  # a free-running camera drops the frame
                    self.counters.dropped += 1
                    self._n += 1
                    raise FetchTimeout("no free buffer: frame dropped")
                if not self._cond.wait_for(lambda: bool(self._free), timeout_s):
                    raise FetchTimeout("no buffer returned in time")
            slot = self._free.pop()
        index = self._n % len(self._images)
        buffer = self._pool[slot]
        np.copyto(buffer, self._images[index])  # what the camera's DMA would have done
        self._n += 1
        self.counters.frames += 1

        def release(slot: int = slot) -> None:
            with self._cond:
                self._free.append(slot)
                self._cond.notify()

        h, w = buffer.shape[:2]
        return Frame(self.camera_id, self._n, self._n, time.time_ns(), time.perf_counter(),
                     self.options.pixel_format, w, h, ground_truth=self._truths[index],
                     _data=buffer, _release=release)  # fmt: skip
