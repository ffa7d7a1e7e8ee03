"""The result log: WAL, journal-before-PLC durability, recovery after SIGKILL, archive retention,
and a log held locked by another process."""

from __future__ import annotations

import functools
import json
import multiprocessing
import os
import signal
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from line.results.archive import ImageArchive
from line.results.log import ResultLog, ResultRecord, recover_journals
from line.results.reader import ResultLogReader


def record(i: int, image: np.ndarray | None = None) -> ResultRecord:
    return ResultRecord(f"r{i:05d}", "cam1", i, i, "demo", 1, i % 2, "", i % 2, i % 2, "[]", 1000 + i,
                        time.time_ns(), image=image)  # fmt: skip


def write_rows(db: Path, n: int) -> None:
    """``n`` records through the writer (journal first, as before a PLC write), then a clean close."""
    log = ResultLog(db, None)
    log.start()
    for i in range(n):
        log.journal_append(record(i))
        log.submit(record(i))
    log.close()


def test_rows_written_in_wal_mode_and_readable(tmp_path: Path) -> None:
    write_rows(tmp_path / "results.db", 100)
    conn = sqlite3.connect(tmp_path / "results.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    reader = ResultLogReader(tmp_path / "results.db")
    assert [r.part_id for r in reader.all()] == list(range(100))
    assert reader.count() == 100
    assert [r.part_id for r in reader.query(0, 2**62, start_index=10, max_results=5)] == [10, 11, 12, 13, 14]
    assert not list((tmp_path / "journal").glob("*.jsonl")), "a clean close leaves no journal"


def _writer_then_die(db: str, n: int, ready: multiprocessing.synchronize.Event) -> None:  # type: ignore[name-defined]
    log = ResultLog(Path(db), None)
    log.start()
    for i in range(n):
        log.journal_append(record(i))  # journalled (as before a PLC write) ...
        if i < n // 2:
            log.submit(record(i))  # ... but only half reached the writer thread
    time.sleep(0.3)
    ready.set()
    time.sleep(60)


def test_sigkill_loses_no_journalled_verdict(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(target=_writer_then_die, args=(str(tmp_path / "results.db"), 200, ready))
    proc.start()
    assert ready.wait(30)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    recovered = recover_journals(tmp_path / "results.db", tmp_path / "journal")
    rows = ResultLogReader(tmp_path / "results.db").all()
    assert sorted(r.part_id for r in rows) == list(range(200))
    assert recovered == 100
    conn = sqlite3.connect(tmp_path / "results.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_recovery_applies_delivery_updates(tmp_path: Path) -> None:
    (tmp_path / "journal").mkdir()
    rec = record(7)
    lines = [json.dumps(rec.journal_dict()), json.dumps({"update": rec.result_id, "delivered": 1, "plc_seq": 42})]
    (tmp_path / "journal" / "journal-9.jsonl").write_text("\n".join(lines) + "\n")
    assert recover_journals(tmp_path / "results.db", tmp_path / "journal") == 1
    (row,) = ResultLogReader(tmp_path / "results.db").all()
    assert (row.part_id, row.delivered, row.plc_seq) == (7, 1, 42)


def test_torn_journal_line_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "journal").mkdir()
    good = json.dumps(record(1).journal_dict())
    (tmp_path / "journal" / "journal-1.jsonl").write_text(good + "\n" + good[:20])
    assert recover_journals(tmp_path / "results.db", tmp_path / "journal") == 1


def test_archive_retention_and_traversal(tmp_path: Path) -> None:
    archive = ImageArchive(tmp_path / "ng", max_images=3)
    for i in range(5):
        archive.save(f"img{i}", np.full((8, 8), i, np.uint8))
    assert sorted(p.name for p in (tmp_path / "ng").glob("*.png")) == ["img2.png", "img3.png", "img4.png"]
    assert archive.resolve("img4.png").exists()
    for bad in ("../results.db", "..", "a/b.png", "", ".hidden"):
        try:
            archive.resolve(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} was accepted")


def test_locked_database_delays_rows_but_loses_none(tmp_path: Path) -> None:
    db = tmp_path / "results.db"
    log = ResultLog(db, None)
    log.start()
    locker = sqlite3.connect(db, timeout=0.1)
    locker.execute("BEGIN EXCLUSIVE")
    for i in range(20):
        log.journal_append(record(i))
        log.submit(record(i))
    deadline = time.monotonic() + 30
    while log.storage_fault() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "locked" in str(log.storage_fault())
    assert log.written == 0 and log.backlog() == 20
    locker.rollback()
    locker.close()
    while log.backlog() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert log.backlog() == 0 and log.storage_fault() is None
    log.close()
    assert len(ResultLogReader(db).all()) == 20
    assert any("retrying" in a for a in log.alarms)


def test_full_archive_disk_raises_alarm_and_keeps_logging(tmp_path: Path) -> None:
    class FullDisk(ImageArchive):
        def save(self, name: str, image: np.ndarray) -> str:
            raise OSError(28, "No space left on device")

    log = ResultLog(tmp_path / "results.db", FullDisk(tmp_path / "ng", 5))

    log.start()
    for i in range(5):
        log.journal_append(record(i))
        log.submit(record(i, image=np.zeros((4, 4), np.uint8)))
    log.close()
    assert len(ResultLogReader(tmp_path / "results.db").all()) == 5
    assert log.archive_failures == 5 and any("No space" in a for a in log.alarms)


def test_images_in_flight_are_bounded_verdicts_are_not(tmp_path: Path) -> None:
    from line.results import log as results

    db = tmp_path / "results.db"
    log = ResultLog(db, ImageArchive(tmp_path / "ng", 100))
    log.start()
    locker = sqlite3.connect(db, timeout=0.1)
    locker.execute("BEGIN EXCLUSIVE")  # the writer stalls: NG images pile up
    n = results.MAX_IMAGES_IN_FLIGHT + 10
    try:
        for i in range(n):
            log.journal_append(record(i))
            log.submit(record(i, image=np.zeros((8, 8), np.uint8)))
        # the writer took a first batch (its images archived, their slots freed) and then
        # blocked on the locked database: wait until it says so, then count what it took
        deadline = time.monotonic() + 10
        while not any("retrying" in a for a in log.alarms) and time.monotonic() < deadline:
            time.sleep(0.01)
        taken = len(list((tmp_path / "ng").rglob("*.*")))
        assert taken < n
        assert n - results.MAX_IMAGES_IN_FLIGHT - taken <= log.images_dropped <= n - results.MAX_IMAGES_IN_FLIGHT
    finally:
        locker.rollback()
        locker.close()
        log.close()
    assert len(ResultLogReader(db).all()) == n


def test_a_record_reads_back_as_written(tmp_path: Path) -> None:
    """One record type: what the reader (HMI, MES server) returns is the written record, every
    column of the table included, with SQLite's rowid added."""
    db = tmp_path / "results.db"
    written = [record(i) for i in range(3)]
    written[1].delivered, written[1].plc_seq, written[1].timings_json = 1, 7, '{"total": 1.5}'
    log = ResultLog(db, None)
    log.start()
    for r in written:
        log.submit(r)
    log.close()
    read = ResultLogReader(db).all()
    assert [r.rowid for r in read] == [1, 2, 3]
    assert [replace(r, rowid=None) for r in read] == written


def test_queue_overflow_is_replayed_from_the_journal_with_delivery_outcome(tmp_path: Path) -> None:
    db = tmp_path / "results.db"
    log = ResultLog(db, None, queue_size=2)  # not started yet: every record past two overflows
    for i in range(10):
        rec = record(i)
        log.journal_append(rec)
        rec.delivered, rec.plc_seq = 1, 100 + i
        log.journal_delivery(rec)
        log.submit(rec)
    assert log.dropped == 8 and log.backlog() == 10
    log.start()
    deadline = time.monotonic() + 30
    while log.backlog() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert log.replays >= 1 and log.journal.size_bytes() == 0  # all in SQLite: the journal is empty
    log.close()
    rows = ResultLogReader(db).all()
    assert [(r.part_id, r.delivered, r.plc_seq) for r in rows] == [(i, 1, 100 + i) for i in range(10)]


def test_start_with_the_database_locked_recovers_the_earlier_journal_later(tmp_path: Path) -> None:
    from line.results.journal import VerdictJournal, journal_files

    db = tmp_path / "results.db"
    ResultLog(db, None).close()
    earlier = VerdictJournal(tmp_path / "journal")  # an earlier run stopped before SQLite had these
    for i in range(5):
        earlier.append(record(i).result_id, record(i).journal_dict())
    earlier.close()
    locker = sqlite3.connect(db, timeout=0.1)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        log = ResultLog(db, None)  # does not fail: the writer recovers once the database is free
        log.start()
        assert log.recovered == 0 and earlier.path.exists()
    finally:
        locker.rollback()
        locker.close()
    deadline = time.monotonic() + 30
    while log.recovered < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    log.close()
    assert log.recovered == 5 and not journal_files(tmp_path / "journal")
    assert sorted(r.part_id for r in ResultLogReader(db).all()) == list(range(5))



class _WatchedConnection(sqlite3.Connection):
    """Counts statements started while another thread's statement was still inside ``execute``
    (the window is widened by a short sleep)."""

    guard = threading.Lock()
    inside = 0
    overlaps = 0

    def execute(self, *args: Any, **kwargs: Any) -> sqlite3.Cursor:
        cls = _WatchedConnection
        with cls.guard:
            cls.inside += 1
            cls.overlaps += cls.inside > 1
        try:
            time.sleep(0.0005)
            return super().execute(*args, **kwargs)
        finally:
            with cls.guard:
                cls.inside -= 1


def test_one_reader_serves_many_threads_one_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The MES server pages GetResults on worker threads through one reader. On Python 3.12 and
    later a sqlite3 connection used by two threads at once fails (five concurrent pollers got
    ``InterfaceError: bad parameter or other API misuse``; 3.11 happens to survive it), so the
    reader lets one thread at a time into its connection."""
    write_rows(tmp_path / "results.db", 300)
    monkeypatch.setattr(sqlite3, "connect", functools.partial(sqlite3.connect, factory=_WatchedConnection))
    reader = ResultLogReader(tmp_path / "results.db")

    def page(k: int) -> tuple[int, int]:
        total = reader.count(0, 2**62)
        rows = reader.query(0, 2**62, start_index=k % 250, max_results=50)
        return total, len(rows)

    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            pages = list(pool.map(page, range(400)))
    finally:
        reader.close()
    assert set(pages) == {(300, 50)}
    assert _WatchedConnection.overlaps == 0
