"""What a recipe's ``capture:`` block says to keep, and the quota bookkeeping that applies it.

The decision runs on the hot path (the station's tap, before the PLC write), so it is a few
comparisons over the verdict's arrays and three integer counters; the clock is injected so the
quotas can be tested without waiting for a minute to pass.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import numpy as np
from pydantic import Field

from line.config_model import ConfigModel
from plc.vocabulary import ResultCode


class CapturePolicy(ConfigModel):
    """A recipe's ``capture:`` block (docs/quality-loop.md, "Capture policy")."""

    rejects: bool = True  # every rejected part
    # a part whose best score lies within this distance above its class threshold
    uncertain_band: float = Field(default=0.1, ge=0.0, le=1.0)
    pass_share: float = Field(default=0.01, ge=0.0, le=1.0)  # random share of passed parts
    per_minute: int = Field(default=30, ge=0, le=100_000)
    per_hour: int = Field(default=600, ge=0, le=1_000_000)
    per_day: int = Field(default=5000, ge=0, le=10_000_000)
    disk_budget_mb: float = Field(default=2048.0, gt=0.0, le=10_000_000.0)  # oldest captures out beyond this


class Quota:
    """Per-minute, per-hour and per-day counts in fixed windows (cheap: no per-item history)."""

    WINDOWS = (60.0, 3600.0, 86400.0)

    def __init__(self, limits: tuple[int, int, int], clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._starts = [clock()] * 3
        self._counts = [0, 0, 0]
        self.refused = 0

    def take(self) -> bool:
        now = self._clock()
        for i, window in enumerate(self.WINDOWS):
            if now - self._starts[i] >= window:
                self._starts[i], self._counts[i] = now, 0
        if any(c >= limit for c, limit in zip(self._counts, self.limits, strict=True)):
            self.refused += 1
            return False
        for i in range(3):
            self._counts[i] += 1
        return True


def capture_reason(
    policy: CapturePolicy, result_code: ResultCode, confidences: np.ndarray, thresholds: np.ndarray, draw: float
) -> str | None:
    """Why this part is worth keeping (``reject`` | ``uncertain`` | ``sample``), or None.

    ``thresholds`` are the class thresholds of each detection; ``draw`` a uniform random number
    in [0, 1) (passed in so a test can choose it). A fail-safe part was never looked at by the
    model: nothing to learn from it.
    """
    if result_code is ResultCode.REJECT and policy.rejects:
        return "reject"
    if result_code not in (ResultCode.PASS, ResultCode.REJECT):
        return None
    if len(confidences) and policy.uncertain_band > 0 and bool(np.any(confidences - thresholds < policy.uncertain_band)):
        return "uncertain"
    if result_code is ResultCode.PASS and draw < policy.pass_share:
        return "sample"
    return None


def new_rng(seed: int | None = None) -> Callable[[], float]:
    return random.Random(seed).random  # noqa: S311 - sampling, not security
