"""The demo's addition to a run: scoring each verdict against the synthetic camera's ground
truth (recall, false-reject rate). ``linecheck run`` never attaches it: a real line has no
ground truth."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from line.app.run import number
from line.loop.station import Outcome, Station
from plc.vocabulary import ResultCode


@dataclass
class GroundTruthScore:
    """Recall and false-reject rate over parts that got a real verdict; fail-safes (which
    reject or hold the part without looking at it) are counted on their own."""

    defective: int = 0
    caught: int = 0
    good: int = 0
    false_rejects: int = 0
    fail_safe: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def __call__(self, outcome: Outcome) -> None:
        truth = outcome.ticket.ground_truth
        code = outcome.verdict.result_code
        with self._lock:
            if code in (ResultCode.FAIL_SAFE_REJECT, ResultCode.HOLD):
                self.fail_safe += 1
                return
            if truth is None:
                return
            if truth.defective:
                self.defective += 1
                self.caught += code is ResultCode.REJECT
            else:
                self.good += 1
                self.false_rejects += code is ResultCode.REJECT

    @property
    def recall(self) -> float:
        return self.caught / self.defective if self.defective else math.nan

    @property
    def false_reject_rate(self) -> float:
        return self.false_rejects / self.good if self.good else math.nan

    def summary(self) -> dict[str, object]:
        """The fields the demo adds to the status line and the JSON summary."""
        return {"recall": number(self.recall), "false_reject_rate": number(self.false_reject_rate)}


def attach_scorer(station: Station) -> GroundTruthScore:
    score = GroundTruthScore()
    station.subscribe(score)
    return score
