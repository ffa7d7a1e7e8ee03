"""The bench's raw-engine contender: back to back, or one call per period like the paced line."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inference import DetectorSpec, EngineOptions, ModelConfig
from tests.line.fakes import ScriptedEngine
from tools.bench.phases import bench_engine, bench_engine_both_ways


class TimedEngine(ScriptedEngine):
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.calls: list[float] = []

    def detect(self, images):  # noqa: ANN001, ANN201
        self.calls.append(time.perf_counter())
        return super().detect(images)


def _calls(period_s: float) -> list[float]:
    """When each of the 2 warm-up and 6 measured calls started."""
    spec = DetectorSpec(ModelConfig(onnx=Path("unused.onnx")), ("scratch",), (0.5,))
    engine = TimedEngine(spec, EngineOptions())
    engine.delay_s = 0.001  # it reports 1 ms of engine per call
    result = bench_engine(engine, None, np.zeros((8, 8), np.uint8), "Mono8", n=6, warmup=2, period_s=period_s)  # type: ignore[arg-type]
    assert result["latency_ms"]["n"] == 6
    return engine.calls


def test_paced_calls_keep_the_period_and_back_to_back_calls_do_not_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """Paced calls follow a grid: a busy machine can make a call late (and the next gap short),
    never early, so the measured calls span at least the periods between them. Back to back,
    the bench never sleeps (only the scripted engine does, 1 ms a call). No wall-clock upper bound: the machine may be loaded."""
    calls = _calls(0.03)
    # the grid starts after the last warm-up call: measured call k is due k+1 periods later
    due = [calls[1] + (k + 1) * 0.03 for k in range(6)]
    assert len(calls) == 8 and all(t >= d - 1e-6 for t, d in zip(calls[2:], due, strict=True)), (calls, due)
    slept: list[float] = []
    real_sleep = time.sleep
    monkeypatch.setattr(time, "sleep", lambda s: (slept.append(s), real_sleep(s)))
    _calls(0.0)
    assert slept and not [s for s in slept if s != 0.001], slept  # only the engine's own 1 ms


def test_both_ways_alternate_in_blocks_so_neither_owns_a_moment() -> None:
    """Back to back and paced calls interleave (ABBA), each with its own count; not one run and
    then the other, which on a drifting VM compares two moments as much as two paces."""
    spec = DetectorSpec(ModelConfig(onnx=Path("unused.onnx")), ("scratch",), (0.5,))
    engine = TimedEngine(spec, EngineOptions())
    engine.delay_s = 0.001
    back_to_back, paced = bench_engine_both_ways(engine, None, np.zeros((8, 8), np.uint8), "Mono8",  # type: ignore[arg-type]
                                                 n=8, n_paced=4, warmup=2, period_s=0.03)  # fmt: skip
    assert back_to_back["latency_ms"]["n"] == 8 and paced["latency_ms"]["n"] == 4
    gaps = np.diff(engine.calls)
    waited = np.flatnonzero(gaps > 0.025) + 1  # indices of the calls that followed a period
    assert len(waited) == 4
    quick = [i for i in range(len(engine.calls)) if i not in set(waited.tolist())]
    assert waited.min() < max(quick) and waited.max() > min(quick), "paced calls sit between back-to-back ones"
    assert waited[1] - waited[0] == 2, "ABBA: only a warm-up call between the first two blocks' paced calls"
