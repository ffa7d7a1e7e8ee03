"""Whether the station decides parts now: the remote halt of an inline station.

An inline station cannot stop the line by stopping itself: parts keep arriving, and a part
without a verdict is a part the PLC cannot sort. So a halted station keeps acquiring and
answers every part with the recipe's fail-safe result (reason ``halted``); it only stops
*deciding*. The PLC sees READY and RUNNING cleared and can stop the line; MES sees the OPC
40100 state machine in Halted.

The modes and the moves between them follow OPC 40100-1's VisionStateMachine as far as an
inline station can:

- ``DECIDING`` (Operational/ContinuousExecution): parts get real verdicts.
- ``HALTING``: a graceful halt (``Halt``, ``Stop``) is waiting for the parts in flight; new
  parts already get the fail-safe result.
- ``HALTED`` (Halted): every part gets the fail-safe result.
- ``READY`` (Operational/Ready, after ``Reset``): still the fail-safe result, until ``start``.

The gate is read on the hot path (one attribute read per part) and written by the station's
one request worker only (``line.loop.station_control``), so it needs no lock.
"""

from __future__ import annotations

import math
import time
from enum import Enum


class RunMode(Enum):
    DECIDING = "deciding"
    HALTING = "halting"
    HALTED = "halted"
    READY = "ready"


class RunGate:
    def __init__(self) -> None:
        self.mode = RunMode.DECIDING
        # perf_counter() of the last abort: a part submitted before it and not yet decided gets
        # the fail-safe result (an abort does not wait for the parts in flight)
        self.aborted_at = -math.inf

    @property
    def deciding(self) -> bool:
        """New parts get real verdicts."""
        return self.mode is RunMode.DECIDING

    def aborted_since(self, t_submitted: float) -> bool:
        """A part submitted at ``t_submitted`` was in flight when the station aborted."""
        return t_submitted < self.aborted_at and self.mode is not RunMode.DECIDING

    def abort(self) -> None:
        self.aborted_at = time.perf_counter()
        self.mode = RunMode.HALTED
