"""Running a station in the foreground with a status line once a second, and scoring its
verdicts against the synthetic camera's ground truth (demo and ``linecheck run``)."""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from dataclasses import dataclass
from typing import TextIO

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


def summary(station: Station, score: GroundTruthScore) -> dict[str, object]:
    snap = station.snapshot()
    counts: dict[str, int] = snap["counts"]  # type: ignore[assignment]
    latency: dict[str, float] = snap["latency_ms"]  # type: ignore[assignment]
    ack: dict[str, float] = snap["plc_ack_ms"]  # type: ignore[assignment]
    return {
        "parts": sum(lane.parts for lane in station.lanes),
        "verdicts": counts.get("verdicts", 0),
        "rejects": counts.get("rejected", 0),
        "fail_safe": counts.get("fail_safe", 0),
        "recall": _num(score.recall),
        "false_reject_rate": _num(score.false_reject_rate),
        "latency_ms": {k: _num(latency[k]) for k in ("p50", "p99", "p999", "max")},
        "plc_ack_ms": {k: _num(ack[k]) for k in ("p50", "p99", "p999", "max")},
        "dropped": sum(lane.queue.dropped for lane in station.lanes),
        "late_discarded": counts.get("late_discarded", 0),
        "fail_safe_reasons": {k.split(".", 1)[1]: v for k, v in counts.items() if k.startswith("fail_safe.")},
        "active_recipe": snap["active_recipe"],
        "log_written": station.result_log.written,
    }


def _num(value: float) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), 4)


def status_line(elapsed: float, s: dict[str, object]) -> str:
    lat: dict[str, float | None] = s["latency_ms"]  # type: ignore[assignment]

    def f(v: object, spec: str) -> str:
        return "-" if v is None else format(v, spec)

    return (
        f"t={elapsed:5.1f}s parts={s['parts']} verdicts={s['verdicts']} rejects={s['rejects']} "
        f"fail_safe={s['fail_safe']} recall={f(s['recall'], '.3f')} false_reject={f(s['false_reject_rate'], '.3f')} "
        f"latency p50={f(lat['p50'], '.1f')}ms p99={f(lat['p99'], '.1f')}ms recipe={s['active_recipe']}"
    )


def run_foreground(
    station: Station,
    duration_s: float | None,
    as_json: bool,
    out: TextIO = sys.stdout,
    interval_s: float = 1.0,
    stop_event: threading.Event | None = None,
    on_tick: object = None,
) -> dict[str, object]:
    """Run until ``duration_s`` passes or ``stop_event`` is set (Ctrl-C sets it in the CLI)."""
    score = GroundTruthScore()
    station.observers.append(score)
    stop = stop_event or threading.Event()
    station.start()
    t0 = time.monotonic()
    try:
        while not stop.is_set():
            remaining = None if duration_s is None else duration_s - (time.monotonic() - t0)
            if remaining is not None and remaining <= 0:
                break
            stop.wait(interval_s if remaining is None else min(interval_s, remaining))
            print(status_line(time.monotonic() - t0, summary(station, score)), file=out, flush=True)
            if callable(on_tick):
                on_tick()
    finally:
        station.stop()
    result = summary(station, score)
    print(status_line(time.monotonic() - t0, result) + " (stopped)", file=out, flush=True)
    if as_json:
        print(json.dumps(result), file=out, flush=True)
    return result
