"""The candidate runs in a process of its own at the lowest priority: a candidate that cannot
load is refused with its reason, and a shadow process that dies stops the shadow, not the line."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from inference.engine import Engine
from line.flywheel.service import Flywheel
from line.recipes.model import Recipe
from tests.flywheel.helpers import factory, fly_rig


def _cannot_load(recipe: Recipe) -> Engine:
    if recipe.model.onnx.name == "candidate.onnx":
        raise RuntimeError("unsupported opset 99")
    return factory(recipe)


def test_the_candidate_runs_in_its_own_low_priority_process(tmp_path: Path) -> None:
    with fly_rig(tmp_path, hmi=False, shadow_nice=19) as rig:  # the shipped default
        rig.flywheel.register_candidate("r1", rig.folder / "candidate.onnx", {"default": 0.95}, "qa")
        runner = rig.flywheel.shadows["r1"]
        assert runner.worker_pid != os.getpid()
        assert os.getpriority(os.PRIO_PROCESS, runner.worker_pid) == 19
        rig.wait(lambda: runner.judged >= 3)
        assert runner.seen >= runner.judged + runner.skipped - 1  # every offered frame judged, skipped or in flight


def test_a_candidate_that_cannot_load_is_refused_with_its_reason(tmp_path: Path) -> None:
    with fly_rig(tmp_path, hmi=False) as rig:
        other = Flywheel(tmp_path / "other", rig.station, _cannot_load)
        try:
            with pytest.raises(ValueError, match="unsupported opset 99"):
                other.register_candidate("r1", rig.folder / "candidate.onnx", None, "qa")
            assert other.shadows == {} and all(not hasattr(t, "candidate") for t in rig.station.frame_taps)
        finally:
            other.close()


def test_a_dead_shadow_process_stops_the_shadow_not_the_line(tmp_path: Path) -> None:
    with fly_rig(tmp_path, hmi=False) as rig:
        rig.flywheel.register_candidate("r1", rig.folder / "candidate.onnx", {"default": 0.95}, "qa")
        runner = rig.flywheel.shadows["r1"]
        rig.wait(lambda: runner.judged >= 1)
        os.kill(runner.worker_pid, signal.SIGKILL)
        rig.wait(lambda: rig.flywheel.shadow_report("r1")["worker_alive"] is False)  # type: ignore[index]
        judged, skipped, n = runner.judged, runner.skipped, len(rig.sink.messages)
        rig.wait(lambda: len(rig.sink.messages) >= n + 20)
        assert runner.judged == judged and runner.skipped > skipped  # offered, skipped, counted
        with rig.sink.lock:
            parts = [m.part_id for m in rig.sink.messages[n:]]
        assert parts == list(range(parts[0], parts[0] + len(parts)))  # the line goes on: every part a verdict
