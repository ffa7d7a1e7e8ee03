"""Helpers for the fault-injection tests: a real station built from a ``make_env`` config
(synthetic camera, tiny ONNX model, Modbus server on a free port) run in-process, so a test can
reach its camera's fault hooks and its counters, and the checks every fault test ends with:
every part got exactly one verdict and every verdict is in the result log."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import yaml

from line.app.assembly import build_station, load_station_config
from line.loop.station import Station
from line.results.log import ResultRecord
from line.results.reader import ResultLogReader
from plc.vocabulary import ResultCode
from tests.inference.onnx_models import constant_model

FAIL_SAFE_CODES = (int(ResultCode.FAIL_SAFE_REJECT), int(ResultCode.HOLD))


def pass_model(path: Path) -> Path:
    """A model that never detects anything: every complete frame is a PASS, so any
    fail-safe (or a missing one) stands out."""
    return constant_model(path, np.zeros((1, 7, 4), np.float32))


def set_recipe(config: Path, recipe_id: str, **changes: object) -> Path:
    """Change top-level keys of a recipe of a ``make_env`` folder (before the station starts)."""
    path = config.parent / "recipes" / f"{recipe_id}.yaml"
    data = yaml.safe_load(path.read_text())
    data.update(changes)
    path.write_text(yaml.safe_dump(data))
    return path


def db_path(config: Path) -> Path:
    return config.parent / "state" / "results.db"


@contextmanager
def running_station(config: Path) -> Iterator[Station]:
    """Build from the config, start, and always stop (which flushes the log and joins threads)."""
    station = build_station(load_station_config(config))
    station.start()
    try:
        yield station
    finally:
        station.stop()


def verdicts(station: Station) -> int:
    return int(station.stats.counts.get("verdicts", 0))


def real_verdicts(station: Station) -> int:
    """Parts judged by the model (pass or reject), not fail-safe."""
    counts = station.stats.counts
    return int(counts.get("passed", 0)) + int(counts.get("rejected", 0))


def wait_for(predicate: Callable[[], object], timeout_s: float, what: str, interval_s: float = 0.02) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)


def logged_rows(config: Path) -> list[ResultRecord]:
    reader = ResultLogReader(db_path(config))
    try:
        return reader.all()
    finally:
        reader.close()


def events(config: Path, kind: str | None = None) -> list[tuple[int, str, str, str, str]]:
    reader = ResultLogReader(db_path(config))
    try:
        return reader.events(kind)
    finally:
        reader.close()


def assert_every_part_logged_once(station: Station, config: Path) -> list[ResultRecord]:
    """After ``station.stop()``: tickets == verdicts == rows, no part twice, journal gone."""
    rows = logged_rows(config)
    parts = sum(lane.parts for lane in station.lanes)
    assert parts > 0
    assert verdicts(station) == parts, f"{parts} parts but {verdicts(station)} verdicts"
    assert len(rows) == parts, f"{parts} parts but {len(rows)} rows in the result log"
    twice = [key for key, n in Counter((r.camera_id, r.part_id) for r in rows).items() if n > 1]
    assert not twice, f"parts with more than one verdict: {twice[:10]}"
    assert all((r.result_code in FAIL_SAFE_CODES) == bool(r.reason) for r in rows), (
        "fail-safe code without reason"
    )
    assert not list((config.parent / "state" / "journal").glob("journal-*.jsonl")), (
        "journal left after a clean stop"
    )
    return rows
