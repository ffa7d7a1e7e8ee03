"""Soak: ``linecheck run`` as a real process at 50 parts/s, sampled by ``tools.soak``.

Without ``LINECHECK_SOAK_S`` a 30-second run checks the mechanics (every part a verdict, no
thread or fd growth, no gross memory growth); with it (CI sets ``LINECHECK_SOAK_S=600``) the
long run judges the real criteria: RSS growth < 20 MB/hour after the warm-up, no growth in
threads or open fds. A 30-second run cannot resolve 20 MB/hour (0.17 MB in 30 s is within the
allocator's noise), so the short one bounds the absolute growth instead."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.reliability.station_env import make_env
from tools.soak import RSS_LIMIT_MB_PER_H, run_soak

LONG_S = float(os.environ.get("LINECHECK_SOAK_S") or 0)
SHORT_S = 30.0


def _common(result: dict) -> None:  # type: ignore[type-arg]
    station = result["station"]
    assert result["returncode"] == 0, result.get("why")
    assert station is not None and station["verdicts"] == station["parts"] > 0
    assert station["log_written"] == station["verdicts"]
    assert result["threads"]["growth"] <= 0, result["threads"]
    assert result["fds"]["growth"] <= 0, result["fds"]


@pytest.mark.skipif(LONG_S > 0, reason="LINECHECK_SOAK_S is set: the long soak runs instead")
def test_soak_short(tmp_path: Path) -> None:
    result = run_soak(make_env(tmp_path), SHORT_S, rate_hz=50, interval_s=1.0, warmup_s=10.0)
    _common(result)
    assert result["judged_samples"] >= 10
    growth = result["rss_mb"]["end"] - result["rss_mb"]["start"]
    assert growth < 10.0, f"RSS grew {growth:.1f} MB in {result['judged_s']} s"


@pytest.mark.slow
@pytest.mark.timeout(int(LONG_S) + 180 if LONG_S > 0 else 300)
@pytest.mark.skipif(LONG_S <= 0, reason="set LINECHECK_SOAK_S=600 (CI) for the long soak")
def test_soak_long(tmp_path: Path) -> None:
    # Measured on the 2-core CI box (420 s, samples every 5 s): RSS climbs ~4.5 MB over the
    # first ~100 s (SQLite's page cache filling, allocator arenas), then moves only in steps of
    # 0.6-0.9 MB at random moments that then stay flat (not pinned down; allocator behaviour
    # is the likely cause); an hour gives 2.2 MB/h. Against 20 MB/h a judged window must be long enough that one such
    # step reads below the limit: 400 s of a 600 s run (CI) puts a 1 MB step at 9 MB/h, where
    # 200 s of a 300 s run read 26-39 MB/h and failed now and then.
    result = run_soak(make_env(tmp_path), LONG_S, rate_hz=50, interval_s=5.0, warmup_s=min(300.0, LONG_S / 3))
    _common(result)
    assert result["rss_growth_mb_per_h"] < RSS_LIMIT_MB_PER_H, {
        k: v for k, v in result.items() if k != "samples"
    }
    assert result["ok"], result["why"]
