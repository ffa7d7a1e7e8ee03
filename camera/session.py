"""What a hardware backend implements for the supervisor: one connection to one device.

Why separate from :mod:`camera.supervisor`: backends only need these few types, and the
supervisor's lifecycle logic stays readable on its own.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from camera.errors import CameraRetryableError
from camera.nodemap import NodeAccess


class DeviceLostError(CameraRetryableError):
    """The session's device stopped answering; the supervisor reconnects."""


@dataclass
class RawFrame:
    """What a backend hands the supervisor for one buffer; ``release`` requeues it once."""

    data: np.ndarray | None
    pixel_format: str
    width: int
    height: int
    device_frame_id: int | None
    device_timestamp_ns: int
    t_ready: float
    complete: bool
    release: Callable[[], None]


class Session(ABC):
    """One open connection to one device. Discarded (never reused) after a loss."""

    nodes: NodeAccess
    background_close = True  # tearing down a dead device may wait for protocol timeouts
    counts_drops = False  # True: producer_dropped() counts frames never delivered; else frame-id gaps

    @abstractmethod
    def start_stream(self) -> None: ...

    @abstractmethod
    def stop_stream(self) -> None: ...

    @abstractmethod
    def grab(self, timeout_s: float) -> RawFrame:
        """Wait at most ``timeout_s`` for the next buffer; ``FetchTimeout`` or ``DeviceLostError``."""

    @abstractmethod
    def probe(self) -> bool:
        """Cheap active liveness check with its own short timeout (off the hot path)."""

    @abstractmethod
    def close(self, lost: bool) -> None:
        """Release the device; ``lost`` means it is gone, so skip polite shutdown commands."""

    def producer_dropped(self) -> int:
        """Frames the producer never delivered (cumulative for this session), if ``counts_drops``."""
        return 0


def frame_id_gap(last: int | None, current: int | None, limit: int = 4096) -> int:
    """Frames missing between two device frame ids.

    GigE Vision 1 block ids are 16 bits and wrap from 65535 to 1 (0 is never used); a jump
    backwards or beyond ``limit`` means the device restarted its counter, not a loss.
    """
    if last is None or current is None:
        return 0
    if last <= 0xFFFF and current <= 0xFFFF and current < last and last - current > 0x8000:
        step = (current - last) % 0x10000 - (1 if current >= 1 else 0)  # wrap skips 0
    else:
        step = current - last
    return step - 1 if 0 < step <= limit else 0
