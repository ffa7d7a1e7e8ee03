"""The immutable frame record that carries identity and time through the pipeline.

Like harvesters' ``Buffer`` and Roboflow inference's ``VideoFrame``: metadata is frozen, the
pixels are a *view* of a pooled buffer owned by the producer, and the buffer goes back to
the producer exactly once (``with frame:`` or ``frame.release()``). No copy is made here;
whoever needs the pixels after release must copy them first (the NG archive does).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from types import TracebackType

import numpy as np


class FrameStatus(str, Enum):
    COMPLETE = "complete"
    INCOMPLETE = "incomplete"  # missing packets / corrupted: never inspected, fail-safe verdict


@dataclass(frozen=True)
class GroundTruthDefect:
    class_name: str
    box_xyxy: tuple[float, float, float, float]


@dataclass(frozen=True)
class GroundTruth:
    """What the synthetic generator put in the image; lets the demo compute recall/false rejects."""

    defective: bool
    defects: tuple[GroundTruthDefect, ...] = ()
    part_box_xyxy: tuple[float, float, float, float] | None = None


class FrameReleasedError(RuntimeError):
    pass


@dataclass(frozen=True, eq=False)
class Frame:
    camera_id: str
    frame_id: int
    part_id: int
    device_timestamp_ns: int
    t_ready: float  # time.perf_counter() when the last byte was in host memory
    pixel_format: str  # PFNC name, see camera.pixel_format
    width: int
    height: int
    status: FrameStatus = FrameStatus.COMPLETE
    ground_truth: GroundTruth | None = None
    _data: np.ndarray | None = field(default=None, repr=False)
    _release: Callable[[], None] | None = field(default=None, repr=False)
    _state: dict[str, bool] = field(default_factory=lambda: {"released": False}, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def data(self) -> np.ndarray:
        """The producer's buffer as (H, W[, C]) uint8. Valid only until release."""
        if self._state["released"]:
            raise FrameReleasedError(f"frame {self.camera_id}#{self.frame_id} was already released")
        if self._data is None:
            raise FrameReleasedError(f"frame {self.camera_id}#{self.frame_id} carries no pixels")
        return self._data

    @property
    def released(self) -> bool:
        return self._state["released"]

    @property
    def complete(self) -> bool:
        return self.status is FrameStatus.COMPLETE

    def release(self) -> bool:
        """Hand the buffer back to the producer. Idempotent: returns True only the first time."""
        with self._lock:
            if self._state["released"]:
                return False
            self._state["released"] = True
        if self._release is not None:
            self._release()
        return True

    def __enter__(self) -> Frame:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
