"""Station statistics: what the HMI and the metrics scrape read while the line runs."""

from __future__ import annotations

import numpy as np
import pytest

import line.loop.stats
from line.loop.stats import StationStats


def test_snapshot_reports_counts_and_percentiles() -> None:
    stats = StationStats()
    for ms in range(1, 101):
        stats.record(float(ms), ms + 0.5, {"engine": ms / 10})
    stats.count("verdicts", 100)
    snap = stats.snapshot()
    assert snap["counts"] == {"verdicts": 100}
    assert snap["latency_ms"]["p50"] == pytest.approx(50.5) and snap["latency_ms"]["max"] == 100.0  # type: ignore[index]
    assert snap["plc_ack_ms"]["n"] == 100  # type: ignore[index]
    assert snap["stages_ms"]["engine"]["p99"] == pytest.approx(np.percentile(np.arange(1, 101) / 10, 99))  # type: ignore[index]


def test_snapshot_computes_percentiles_without_holding_the_lock_every_part_takes(monkeypatch: pytest.MonkeyPatch) -> None:
    stats = StationStats()
    stats.record(4.0, 5.0, {"engine": 3.0, "decode": 0.1})
    held_during: list[bool] = []
    real = line.loop.stats.percentiles

    def percentiles(values: np.ndarray) -> dict[str, float]:
        free = stats._lock.acquire(blocking=False)  # what a deciding thread's record() would meet
        if free:
            stats._lock.release()
        held_during.append(not free)
        return real(values)

    monkeypatch.setattr(line.loop.stats, "percentiles", percentiles)
    snap = stats.snapshot()
    assert held_during == [False] * 4  # verdict, PLC ack and two stages
    assert snap["latency_ms"]["p50"] == 4.0  # type: ignore[index]
