"""The durable result log: SQLite in WAL mode, one row per verdict, plus events (alarms,
recipe switches) and the NG image archive.

Write path: the station appends each verdict to the :class:`~line.journal.VerdictJournal`
before the PLC write, then hands a :class:`ResultRecord` to :class:`ResultLog` through a
bounded queue. A writer thread batches rows into SQLite and encodes NG images. If SQLite is
locked by another process, the writer waits and retries: rows stay in the journal meanwhile,
the queue's overflow is counted and alarmed, and the journal still holds every verdict, so
nothing that reached the PLC is lost (recovered at the next start).
"""

from __future__ import annotations

import json
import logging
import queue
import sqlite3
import threading
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from line.archive import ImageArchive
from line.journal import VerdictJournal, journal_files, read_journal

log = logging.getLogger(__name__)

# NG frames waiting to be encoded hold a full copy each (1.3 MB at 1280x1024): bound them
MAX_IMAGES_IN_FLIGHT = 32

SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    rowid INTEGER PRIMARY KEY,
    result_id TEXT NOT NULL UNIQUE,
    camera_id TEXT NOT NULL,
    part_id INTEGER NOT NULL,
    frame_id INTEGER NOT NULL DEFAULT 0,
    recipe_id TEXT NOT NULL,
    recipe_code INTEGER NOT NULL,
    result_code INTEGER NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    reject_mask INTEGER NOT NULL DEFAULT 0,
    defect_count INTEGER NOT NULL DEFAULT 0,
    defects_json TEXT NOT NULL DEFAULT '[]',
    processing_us INTEGER NOT NULL,
    t_verdict_ns INTEGER NOT NULL,
    image_ref TEXT NOT NULL DEFAULT '',
    delivered INTEGER,
    plc_seq INTEGER,
    timings_json TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS results_time ON results (t_verdict_ns);
CREATE TABLE IF NOT EXISTS events (
    rowid INTEGER PRIMARY KEY,
    t_ns INTEGER NOT NULL,
    kind TEXT NOT NULL,
    severity TEXT NOT NULL,
    message TEXT NOT NULL,
    data_json TEXT NOT NULL DEFAULT '{}'
);
"""



@dataclass
class ResultRecord:
    """One verdict as logged. ``image`` (a copy of an NG frame) is archived then dropped."""

    result_id: str
    camera_id: str
    part_id: int
    frame_id: int
    recipe_id: str
    recipe_code: int
    result_code: int
    reason: str
    reject_mask: int
    defect_count: int
    defects_json: str
    processing_us: int
    t_verdict_ns: int
    image_ref: str = ""
    delivered: int | None = None
    plc_seq: int | None = None
    timings_json: str = "{}"
    image: np.ndarray | None = field(default=None, repr=False)

    def journal_dict(self) -> dict[str, Any]:
        # hot path (before the PLC write): a plain field read, 14x cheaper than dataclasses.asdict
        return {c: getattr(self, c) for c in _COLUMNS}

    def row(self) -> tuple[Any, ...]:
        return tuple(getattr(self, c) for c in _COLUMNS)


# the table's columns are the record's fields (the picture is archived, not stored)
_COLUMNS = tuple(f.name for f in fields(ResultRecord) if f.name != "image")
_INSERT = f"INSERT OR IGNORE INTO results ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"


@dataclass(frozen=True)
class ResultRow:
    rowid: int
    result_id: str
    camera_id: str
    part_id: int
    frame_id: int
    recipe_id: str
    recipe_code: int
    result_code: int
    reason: str
    reject_mask: int
    defect_count: int
    defects_json: str
    processing_us: int
    t_verdict_ns: int
    image_ref: str
    delivered: int | None
    plc_seq: int | None
    timings_json: str


def connect(path: Path, readonly: bool = False, timeout_s: float = 5.0) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout_s, check_same_thread=False)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=timeout_s, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(SCHEMA)
    return conn


def recover_journals(db_path: Path, journal_dir: Path) -> int:
    """Insert journalled verdicts that a crash kept out of SQLite; returns how many."""
    files = journal_files(journal_dir)
    if not files:
        return 0
    conn = connect(db_path)
    recovered = 0
    try:
        for path in files:
            records: dict[str, ResultRecord] = {}
            for rec in read_journal(path):
                if "update" in rec:  # delivery outcome appended after the PLC write
                    target = records.get(rec["update"])
                    if target is not None:
                        target.delivered, target.plc_seq = rec["delivered"], rec["plc_seq"]
                else:
                    records[rec["result_id"]] = ResultRecord(**rec)
            rows = [r.row() for r in records.values()]
            with conn:
                before = conn.total_changes
                conn.executemany(_INSERT, rows)
                recovered += conn.total_changes - before
            path.unlink()
    finally:
        conn.close()
    return recovered


class ResultLog:
    """Owns the writer thread. ``submit`` never blocks (bounded queue, drops counted: the row
    is still in the journal and is recovered later)."""

    def __init__(self, db_path: Path, archive: ImageArchive | None, queue_size: int = 1024) -> None:
        self.db_path = db_path
        self.archive = archive
        self.journal_dir = db_path.parent / "journal"
        self.recovered = recover_journals(db_path, self.journal_dir)
        self.journal = VerdictJournal(self.journal_dir)
        self._queue: queue.Queue[ResultRecord | tuple[str, str, str, str] | None] = queue.Queue(queue_size)
        self.dropped = 0
        self.written = 0
        self.archive_failures = 0
        self.images_dropped = 0
        self._images_in_flight = 0
        self._images_lock = threading.Lock()
        self.alarms: list[str] = []
        self._alarm_cb: Any = None
        self._conn = connect(db_path, timeout_s=0.5)  # alarm early, keep retrying
        self._thread = threading.Thread(target=self._run, name="result-log", daemon=True)
        self._thread.start()

    def on_alarm(self, callback: Any) -> None:
        self._alarm_cb = callback

    def journal_append(self, record: ResultRecord) -> None:
        """Hot path, before the PLC write."""
        self.journal.append(record.journal_dict())

    def journal_delivery(self, record: ResultRecord) -> None:
        """Hot path, right after the PLC write: what was delivered, under which result_seq."""
        self.journal.append({"update": record.result_id, "delivered": record.delivered, "plc_seq": record.plc_seq})

    def submit(self, record: ResultRecord) -> None:
        if record.image is not None:
            with self._images_lock:
                if self._images_in_flight >= MAX_IMAGES_IN_FLIGHT:
                    # the archive is behind: keep the verdict, drop the picture (counted)
                    record.image = None
                    self.images_dropped += 1
                else:
                    self._images_in_flight += 1
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1  # still in the journal; recovered at next start
            if record.image is not None:
                with self._images_lock:
                    self._images_in_flight -= 1

    def event(self, kind: str, severity: str, message: str, data: dict[str, Any] | None = None) -> None:
        try:
            self._queue.put_nowait((kind, severity, message, json.dumps(data or {})))
        except queue.Full:
            self.dropped += 1

    def _alarm(self, message: str) -> None:
        log.error(message)
        self.alarms.append(message)
        del self.alarms[:-100]
        if self._alarm_cb is not None:
            self._alarm_cb(message)

    def _run(self) -> None:
        stop = False
        while not stop:
            item = self._queue.get()
            batch = [item]
            while len(batch) < 256:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if None in batch:
                stop = True
                batch = [b for b in batch if b is not None]
            self._write(batch)

    def _write(self, batch: list[Any]) -> None:
        rows = []
        events = []
        journalled = 0
        for item in batch:
            if isinstance(item, ResultRecord):
                if item.image is not None and self.archive is not None:
                    try:
                        item.image_ref = self.archive.save(item.result_id, item.image)
                    except OSError as exc:
                        self.archive_failures += 1
                        self._alarm(f"NG image archive failed ({exc}); verdicts are still logged")
                if item.image is not None:
                    item.image = None
                    with self._images_lock:
                        self._images_in_flight -= 1
                rows.append(item.row())
                journalled += 1
            else:
                events.append((time.time_ns(), *item))
        delay = 0.05
        while True:
            try:
                with self._conn:
                    self._conn.executemany(_INSERT, rows)
                    self._conn.executemany(
                        "INSERT INTO events (t_ns, kind, severity, message, data_json) VALUES (?, ?, ?, ?, ?)", events
                    )
                break
            except sqlite3.OperationalError as exc:  # locked by another process, disk full...
                self._alarm(f"result log write failed ({exc}); retrying, verdicts kept in the journal")
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
        self.written += len(rows)
        self.journal.mark_committed(journalled)

    def close(self) -> None:
        """Flush everything, then remove the journal (all of it is in SQLite)."""
        self._queue.put(None)
        self._thread.join()
        self._conn.close()
        self.journal.close(remove=True)

    def pending(self) -> int:
        return self._queue.qsize()


class ResultLogReader:
    """Read side for the HMI, the OPC UA server and tests (its own read-only connection)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn = connect(path, readonly=True)
        self._conn.row_factory = lambda cur, row: ResultRow(*row)

    _SELECT = "SELECT rowid, " + ", ".join(_COLUMNS) + " FROM results"

    def query(self, from_ns: int, to_ns: int, start_index: int = 0, max_results: int = 100) -> list[ResultRow]:
        cur = self._conn.execute(
            self._SELECT + " WHERE t_verdict_ns >= ? AND t_verdict_ns <= ? ORDER BY t_verdict_ns, rowid LIMIT ? OFFSET ?",
            (from_ns, to_ns, max_results, start_index),
        )
        return list(cur.fetchall())

    def count(self, from_ns: int = 0, to_ns: int = 2**63 - 1) -> int:
        cur = self._conn.execute("SELECT COUNT(*) FROM results WHERE t_verdict_ns >= ? AND t_verdict_ns <= ?", (from_ns, to_ns))
        cur.row_factory = None  # type: ignore[assignment]
        return int(cur.fetchone()[0])

    def latest(self, n: int = 20) -> list[ResultRow]:
        return list(reversed(self._conn.execute(self._SELECT + " ORDER BY rowid DESC LIMIT ?", (n,)).fetchall()))

    def since_rowid(self, rowid: int, limit: int = 1000) -> list[ResultRow]:
        return list(self._conn.execute(self._SELECT + " WHERE rowid > ? ORDER BY rowid LIMIT ?", (rowid, limit)).fetchall())

    def all(self) -> list[ResultRow]:
        return list(self._conn.execute(self._SELECT + " ORDER BY rowid").fetchall())

    def events(self, kind: str | None = None) -> list[tuple[int, str, str, str, str]]:
        cur = self._conn.cursor()
        cur.row_factory = None
        sql = "SELECT t_ns, kind, severity, message, data_json FROM events"
        rows = cur.execute(sql + " WHERE kind = ? ORDER BY rowid", (kind,)) if kind else cur.execute(sql + " ORDER BY rowid")
        return list(rows.fetchall())

    def close(self) -> None:
        self._conn.close()
