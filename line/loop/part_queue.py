"""The bounded hand-over between a camera's acquisition thread and its inference thread.

Overflow policy is named (``drop_oldest`` or ``drop_newest``, like Roboflow inference's
``BufferFillingStrategy``) and every drop is counted. A dropped frame is never a silent pass:
its buffer goes back to the camera at once and a small :class:`PartFailure` takes its place,
so the part still gets a (fail-safe) verdict.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from camera.frame import Frame


@dataclass(frozen=True)
class PartFailure:
    """A part we know of but cannot inspect (camera error, dropped frame)."""

    camera_id: str
    part_id: int
    frame_id: int
    t_ready: float
    reason: str  # camera_error | dropped | incomplete_frame


Item = Frame | PartFailure
Entry = tuple[Item, Any]  # the item and its ticket (the lane's bookkeeping, opaque here)


class PartQueue:
    def __init__(self, capacity: int, policy: str = "drop_oldest", max_failures: int = 1024) -> None:
        self.capacity = capacity
        self.policy = policy
        self.max_failures = max_failures
        self._items: deque[Entry] = deque()
        self._frames = 0
        self._cond = threading.Condition()
        self._closed = False
        self.dropped = 0
        self.lost = 0  # failures beyond max_failures (alarmed): parts with no record at all

    def put(self, item: Item, tag: Any = None) -> bool:
        """Queue ``item``; False when even its failure record could not be kept (counted in ``lost``)."""
        released: Frame | None = None
        kept = True
        with self._cond:
            if isinstance(item, Frame) and self._frames >= self.capacity:
                self.dropped += 1
                if self.policy == "drop_newest":
                    released, item = item, _as_failure(item)
                else:
                    for i, (queued, queued_tag) in enumerate(self._items):
                        if isinstance(queued, Frame):
                            released = queued
                            self._items[i] = (_as_failure(queued), queued_tag)
                            self._frames -= 1
                            break
            if isinstance(item, PartFailure) and len(self._items) - self._frames >= self.max_failures:
                self.lost += 1
                kept = False
            else:
                self._items.append((item, tag))
                if isinstance(item, Frame):
                    self._frames += 1
                self._cond.notify()
        if released is not None:
            released.release()
        return kept

    def get(self, timeout_s: float) -> Entry | None:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not self._items:
                remaining = deadline - time.monotonic()
                if self._closed or remaining <= 0:
                    return None
                self._cond.wait(remaining)
            entry = self._items.popleft()
            if isinstance(entry[0], Frame):
                self._frames -= 1
            return entry

    def close(self) -> list[Entry]:
        """Stop accepting; return what is left so the station can still decide those parts."""
        with self._cond:
            self._closed = True
            left = list(self._items)
            self._items.clear()
            self._frames = 0
            self._cond.notify_all()
        return left

    def __len__(self) -> int:
        return len(self._items)


def _as_failure(frame: Frame) -> PartFailure:
    return PartFailure(frame.camera_id, frame.part_id, frame.frame_id, frame.t_ready, "dropped")
