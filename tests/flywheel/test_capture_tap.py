"""The capture tap on its own: what is taken, the disk budget (oldest out), a full queue."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from camera.frame import Frame
from inference.detections import Detections
from line.flywheel.capture import CaptureTap, ModelHashes
from line.flywheel.store import FlywheelStore
from line.loop.decision import Verdict
from line.recipes.model import Recipe
from plc.vocabulary import ResultCode

REJECT = Verdict(ResultCode.REJECT, 1, 1, Detections(np.array([[1, 1, 9, 9]], np.float32), np.array([0.9], np.float32),
                                                     np.zeros(1, np.int32)), ("scratch",))  # fmt: skip
PASS = Verdict(ResultCode.PASS, 0, 0, Detections.empty(), ())


def _recipe(tmp: Path, **capture: object) -> Recipe:
    (tmp / "m.onnx").write_bytes(b"model")
    return Recipe.model_validate({"id": "r", "code": 1, "model": {"onnx": str(tmp / "m.onnx")}, "classes": ["scratch"],
                                  "reject": [{"classes": ["scratch"], "bin": 1}], "capture": capture})  # fmt: skip


def _frame(i: int, seed: int) -> Frame:
    data = np.random.default_rng(seed).integers(0, 255, (48, 64), np.uint8)  # noise: PNGs of ~3 KB
    return Frame("cam1", i, i, 0, time.perf_counter(), "Mono8", 64, 48, _data=data)


def test_disk_budget_deletes_the_oldest_captures(tmp_path: Path) -> None:
    store = FlywheelStore(tmp_path / "fly")
    tap = CaptureTap(store, ModelHashes(), queue_size=64)
    recipe = _recipe(tmp_path, disk_budget_mb=0.01, pass_share=0.0)
    try:
        for i in range(1, 21):
            tap.offer(_frame(i, i), REJECT, recipe)
            tap.drain()
        kept = store.captures(limit=100)
        files = sorted(p.name for p in store.images.iterdir())
    finally:
        tap.close()
    count = store.count()
    assert tap.counts["written"] == 20 and tap.counts["deleted_for_budget"] == 20 - len(kept) > 0
    assert count["bytes"] <= 10_000
    assert sorted(c.part_id for c in kept) == list(range(21 - len(kept), 21))  # the newest stay
    assert files == sorted(c.image for c in kept)  # pictures and rows go together


class HeldStore(FlywheelStore):
    """A store whose writes wait until released: the writer thread stalls like on a slow disk."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self.release = threading.Event()

    def add_capture(self, row: dict[str, Any]) -> int:
        self.release.wait(10)
        return super().add_capture(row)


def test_passes_are_taken_only_when_sampled_and_a_full_queue_drops(tmp_path: Path) -> None:
    store = HeldStore(tmp_path / "fly")
    draws = iter([0.9, 0.9, 0.01] + [0.9] * 100)
    tap = CaptureTap(store, ModelHashes(), queue_size=1, rng=lambda: next(draws))
    recipe = _recipe(tmp_path, pass_share=0.05)
    try:
        for i in range(1, 4):  # draws 0.9, 0.9, 0.01: only the third pass is sampled
            tap.offer(_frame(i, i), PASS, recipe)
        _until(lambda: tap.stats()["queued"] == 0)  # the writer holds part 3 (stalled)
        tap.offer(_frame(4, 4), REJECT, recipe)  # fills the queue's one slot
        tap.offer(_frame(5, 5), REJECT, recipe)  # no room: dropped, the line does not wait
        assert tap.counts["taken"] == 2 and tap.counts["dropped_busy"] == 1
        store.release.set()
        tap.drain()
        assert sorted((c.part_id, c.reason) for c in store.captures()) == [(3, "sample"), (4, "reject")]
    finally:
        store.release.set()
        tap.close()


def _until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)
