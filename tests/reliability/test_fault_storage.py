"""Storage faults under a running station: the NG image archive's disk fills up (a real 1 MiB
tmpfs where we may mount one, else an archive that raises ENOSPC), and the SQLite result log
is held under ``BEGIN EXCLUSIVE`` by another process for three seconds. In both the station
keeps deciding on time, raises an alarm, and every verdict ends up in the result log."""

from __future__ import annotations

import contextlib
import errno
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from line.results.archive import ImageArchive
from tests.reliability.faults import (
    assert_every_part_logged_once,
    db_path,
    pass_model,
    running_station,
    verdicts,
    wait_for,
)
from tests.reliability.station_env import make_env

BUDGET_US = 150_000  # station_env's recipes: cycle_budget_ms 150


@contextlib.contextmanager
def tiny_disk(path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A full-able disk at ``path``: a 1 MiB tmpfs (root with mount rights), or else an
    archive whose writes fail with ENOSPC after three images."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(path)],
                             capture_output=True, check=False).returncode == 0  # fmt: skip
    if not mounted:
        real_save = ImageArchive.save
        saved = [0]

        def save(self: ImageArchive, name: str, image: np.ndarray) -> str:
            if saved[0] >= 3:
                raise OSError(errno.ENOSPC, "No space left on device (simulated)")
            saved[0] += 1
            return real_save(self, name, image)

        monkeypatch.setattr(ImageArchive, "save", save)
    try:
        yield "tmpfs" if mounted else "simulated"
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], check=False)


def test_ng_archive_disk_full_station_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = make_env(tmp_path)  # the tiny model reports missing_cap on every part: every part is NG
    with tiny_disk(tmp_path / "state" / "ng", monkeypatch) as kind:
        with running_station(config) as station:
            log = station.result_log
            wait_for(lambda: log.archive_failures >= 5, 60, f"archive failures on the full disk ({kind})")
            full_at = verdicts(station)
            wait_for(lambda: verdicts(station) >= full_at + 50, 30, "verdicts after the disk filled")
        leftovers = sorted(p.name for p in (tmp_path / "state" / "ng").glob("*.tmp"))
        saved = sorted((tmp_path / "state" / "ng").glob("*.png"))
    rows = assert_every_part_logged_once(station, config)
    assert any("No space left" in a for a in log.alarms), log.alarms[-3:]
    with_image = [r for r in rows if r.image_ref]
    assert 0 < len(with_image) < len(rows)
    assert len(with_image) == len(rows) - log.archive_failures - sum(1 for r in rows if r.reason)
    assert {r.image_ref for r in with_image} >= {p.name for p in saved}
    assert sum(1 for r in rows if not r.reason) >= full_at  # deciding went on
    assert not leftovers, f"a failed archive write left partial files behind: {leftovers[:3]}"


_LOCKER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], timeout=10, isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("LOCKED", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
print("RELEASED", flush=True)
"""


def test_result_log_locked_by_another_process(tmp_path: Path) -> None:
    config = make_env(tmp_path)
    pass_model(tmp_path / "recipes" / "tiny.onnx")
    hold_s = 3.0
    with running_station(config) as station:
        log = station.result_log
        wait_for(lambda: log.written >= 25, 30, "rows in SQLite")
        locker = subprocess.Popen([sys.executable, "-c", _LOCKER, str(db_path(config)), str(hold_s)],
                                  stdout=subprocess.PIPE, text=True)  # fmt: skip
        try:
            assert locker.stdout is not None and locker.stdout.readline().strip() == "LOCKED"
            locked_ns = time.time_ns()
            written_at_lock = log.written
            at_lock = verdicts(station)
            assert locker.stdout.readline().strip() == "RELEASED"
            released_ns = time.time_ns()
            during = verdicts(station) - at_lock
            written_during = log.written - written_at_lock
        finally:
            locker.wait(10)
            if locker.stdout:
                locker.stdout.close()
        wait_for(
            lambda: log.pending() == 0 and log.written >= verdicts(station) - 5, 30, "the writer catching up"
        )
    rows = assert_every_part_logged_once(station, config)
    assert written_during <= 256, "rows were committed while another process held the database"
    assert any("locked" in a for a in log.alarms), log.alarms[-3:]
    assert during >= 0.6 * 50 * hold_s, f"only {during} verdicts in {hold_s} s while the log was locked"
    window = [r for r in rows if locked_ns <= r.t_verdict_ns <= released_ns]
    assert window and not [r for r in window if r.reason == "timeout"], (
        "deadlines missed while the log was locked"
    )
    assert max(r.processing_us for r in window if not r.reason) <= BUDGET_US
    assert log.dropped == 0
