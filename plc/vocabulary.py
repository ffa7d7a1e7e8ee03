"""The words the station and everything downstream of a verdict share: result codes, why a part
was failed safe, the verdict message, status bits, link states, and the one small interface
for everything that receives a verdict (``ResultSink``).

Why here and this small: ``line`` decides and ``plc`` delivers, and the decision must name its
outcome in the PLC's own terms without pulling in a protocol stack. This module imports only
the standard library, so ``line.loop.decision`` can use it cheaply and ``plc`` never imports
``line``. ``VerdictMessage`` carries only what a PLC or MES needs; the station builds it from
its result record in one place (``line.loop.verdict_records.build_message``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import Enum, IntEnum, IntFlag, StrEnum
from typing import Protocol


class ResultCode(IntEnum):
    PASS = 0
    REJECT = 1
    FAIL_SAFE_REJECT = 2
    HOLD = 3


class FailSafeReason(StrEnum):
    """Why a part got the recipe's fail-safe result instead of a decision. A ``StrEnum``: the
    value is what the result log, the journal, the PLC/MES messages and the metrics carry, so
    it compares equal to (and serialises as) the plain string."""

    TIMEOUT = "timeout"  # no verdict by the part's deadline (the watchdog)
    CAMERA_ERROR = "camera_error"  # the camera link failed while the part was due
    INCOMPLETE_FRAME = "incomplete_frame"  # the frame arrived with missing packets
    INFERENCE_ERROR = "inference_error"  # the engine raised on this part
    DROPPED = "dropped"  # the part queue was full or a frame number was skipped
    SHUTDOWN = "shutdown"  # the station stopped before the part was decided
    HALTED = "halted"  # the station was halted (remotely): it acquires but does not decide


class StatusBits(IntFlag):
    NONE = 0
    READY = 1
    RUNNING = 2
    ERROR = 4
    SWITCHING = 8
    FAIL_SAFE = 16  # the fail-safe share of parts is above its alarm limit
    ALARM = 32  # at least one station alarm is active (any kind; the HMI and OPC UA name it)


class LinkState(str, Enum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    FAILED = "failed"
    CLOSED = "closed"


@dataclass(frozen=True)
class VerdictMessage:
    result_id: str  # unique, also the key in the result log
    camera_id: str
    part_id: int
    recipe_id: str
    recipe_code: int
    result_code: ResultCode
    reject_mask: int
    defect_count: int
    processing_us: int  # t_ready -> verdict
    deadline: float  # time.perf_counter() by which the write must be done; never sent later
    reason: str = ""  # a FailSafeReason value, "" for a decided part
    defects: tuple[tuple[str, int], ...] = ()  # (class name, count)
    image_ref: str = ""  # archived NG image, relative to the archive root
    timestamp_ns: int = 0  # wall-clock time of the verdict (time.time_ns())


@dataclass(frozen=True)
class Delivery:
    delivered: bool
    sink: str
    seq: int | None = None  # result_seq as written, when the sink numbers results
    ack_time: float | None = None  # perf_counter() when the peer acknowledged
    error: str = ""


@dataclass
class SinkCounters:
    delivered: int = 0
    undelivered: int = 0
    late_dropped: int = 0
    reconnects: int = 0
    missing_acks: int = 0
    extra: dict[str, int] = field(default_factory=dict)

    def link_counts(self) -> dict[str, int]:
        """The counts every PLC client reports first, by name (``ResultSink.counters``)."""
        return {"delivered": self.delivered, "undelivered": self.undelivered, "late_dropped": self.late_dropped,
                "reconnects": self.reconnects, "missing_acks": self.missing_acks}  # fmt: skip


class PlcRequests(Protocol):
    """Callbacks for requests that come from the PLC; implemented by the station."""

    def select_recipe_code(self, code: int, source: str) -> None: ...

    def command(self, command: int, source: str) -> None: ...


class ResultSink(ABC):
    """Receives each verdict. ``publish`` must return by ``verdict.deadline`` at the latest;
    a sink that fails returns ``Delivery(delivered=False)`` instead of raising, so the
    station loop is never killed by a side effect (docs/architecture.md)."""

    name: str = "sink"

    @abstractmethod
    def publish(self, verdict: VerdictMessage) -> Delivery: ...

    def set_status(self, status: StatusBits, active_recipe_code: int) -> None:  # noqa: B027
        """Station state for the PLC (status register, active recipe)."""

    @property
    def link_state(self) -> LinkState:
        return LinkState.CONNECTED

    def counters(self) -> dict[str, int]:
        return {}

    def start(self) -> None:  # noqa: B027
        pass

    def close(self) -> None:  # noqa: B027
        pass
