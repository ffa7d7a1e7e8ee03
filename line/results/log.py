"""The durable result log: SQLite in WAL mode, one row per verdict, plus events (alarms,
recipe switches) and the NG image archive.

Write path: the station appends each verdict to the :class:`~line.results.journal.VerdictJournal`
before the PLC write, then hands a :class:`ResultRecord` to :class:`ResultLog` through a
bounded queue. A writer thread batches rows into SQLite and encodes NG images. If SQLite is
locked by another process, the writer waits and retries: rows stay in the journal meanwhile,
the queue's overflow is counted and replayed from the journal once the writer catches up, and a
stop that cannot reach the database keeps the journal for the next start, so nothing that
reached the PLC is lost. A full disk that refuses the journal does not cost a verdict either:
the part is decided and signalled as usual, its record is held in memory until SQLite has it,
and :meth:`ResultLog.storage_fault` tells the station to raise the PLC's error bit.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import sqlite3
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from line.results.archive import ImageArchive
from line.results.journal import VerdictJournal, journal_files, parse_lines, read_journal
from plc.vocabulary import ResultCode, VerdictMessage

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
    """One verdict: what the station logs, what ``line.results.reader.ResultLogReader`` reads back (with its
    ``rowid``), what the MES server encodes, and what :func:`verdict_message` turns into the
    PLC/MES message. One type so that a column added here reaches every reader.

    ``image`` (a copy of an NG frame) is archived then dropped; it is no column."""

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
    image: np.ndarray | None = field(default=None, repr=False, compare=False)
    rowid: int | None = None  # SQLite's, once the row is read back

    def journal_dict(self) -> dict[str, Any]:
        # hot path (before the PLC write): a plain field read, 14x cheaper than dataclasses.asdict
        return {c: getattr(self, c) for c in COLUMNS}

    def row(self) -> tuple[Any, ...]:
        return tuple(getattr(self, c) for c in COLUMNS)


# the table's columns are the record's fields (the picture is archived, SQLite numbers the row)
COLUMNS = tuple(f.name for f in fields(ResultRecord) if f.name not in ("image", "rowid"))
_INSERT = f"INSERT OR IGNORE INTO results ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"


def verdict_message(
    record: ResultRecord,
    defects: tuple[tuple[str, int], ...],
    *,
    deadline: float = 0.0,
    part_id: int | None = None,
    image_ref: str | None = None,
) -> VerdictMessage:
    """The record as the PLC and the MES receive it: the one place a message is made from a
    record. ``defects`` are (class, count) pairs (the station has them at hand; a logged row
    derives them from ``defects_json``); ``deadline`` matters only to a sink; ``part_id`` and
    ``image_ref`` override the record's (the station sends the part id at register width)."""
    return VerdictMessage(
        result_id=record.result_id,
        camera_id=record.camera_id,
        part_id=record.part_id if part_id is None else part_id,
        recipe_id=record.recipe_id,
        recipe_code=record.recipe_code,
        result_code=ResultCode(record.result_code),
        reject_mask=record.reject_mask,
        defect_count=record.defect_count,
        processing_us=record.processing_us,
        deadline=deadline,
        reason=record.reason,
        defects=defects,
        image_ref=record.image_ref if image_ref is None else image_ref,
        timestamp_ns=record.t_verdict_ns,
    )


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


_UPSERT = _INSERT.replace("INSERT OR IGNORE", "INSERT") + (
    " ON CONFLICT(result_id) DO UPDATE SET"
    " delivered = coalesce(excluded.delivered, results.delivered),"
    " plc_seq = coalesce(excluded.plc_seq, results.plc_seq),"
    " image_ref = CASE WHEN excluded.image_ref != '' THEN excluded.image_ref ELSE results.image_ref END,"
    " timings_json = CASE WHEN excluded.timings_json != '{}' THEN excluded.timings_json ELSE results.timings_json END"
)
_APPLY_DELIVERY = "UPDATE results SET delivered = ?, plc_seq = ? WHERE result_id = ? AND delivered IS NULL"
_INSERT_EVENT = "INSERT INTO events (t_ns, kind, severity, message, data_json) VALUES (?, ?, ?, ?, ?)"

# the writer's view of a database that refuses writes: retry (locked, full) with this backoff
_RETRY_FIRST_S = 0.05
_RETRY_MAX_S = 1.0
# records the journal could not take (full disk) are held in memory until SQLite has them;
# past this many the oldest are counted lost (an alarm says so) rather than exhausting memory
MAX_HELD = 200_000
CLOSE_TIMEOUT_S = 3.0


@dataclass
class _Replay:
    """Journal lines merged per verdict: the rows to upsert, the delivery lines whose verdict
    line is not in this journal any more (already in SQLite), and lines seen per verdict."""

    rows: list[tuple[Any, ...]]
    deliveries: list[tuple[Any, Any, str]]
    lines: dict[str, int]


def _merge_journal(records_in: Any) -> _Replay:
    records: dict[str, ResultRecord] = {}
    orphans: dict[str, tuple[Any, Any, str]] = {}
    lines: dict[str, int] = {}
    for rec in records_in:
        if "update" in rec:  # delivery outcome appended after the PLC write
            rid = rec["update"]
            target = records.get(rid)
            if target is not None:
                target.delivered, target.plc_seq = rec["delivered"], rec["plc_seq"]
            else:
                orphans[rid] = (rec["delivered"], rec["plc_seq"], rid)
        else:
            rid = rec["result_id"]
            known = {k: v for k, v in rec.items() if k in _COLUMN_SET}
            records[rid] = ResultRecord(**known)
            pending = orphans.pop(rid, None)  # the delivery line of a record re-journalled at close
            if pending is not None and records[rid].delivered is None:
                records[rid].delivered, records[rid].plc_seq = pending[0], pending[1]
        lines[rid] = lines.get(rid, 0) + 1
    return _Replay([r.row() for r in records.values()], list(orphans.values()), lines)


_COLUMN_SET = frozenset(COLUMNS)


def _apply(conn: sqlite3.Connection, replay: _Replay) -> int:
    """Upsert the journal's rows; returns how many were not in SQLite yet."""
    count = "SELECT COUNT(*) FROM results"
    with conn:
        before = conn.execute(count).fetchone()[0]
        conn.executemany(_UPSERT, replay.rows)
        conn.executemany(_APPLY_DELIVERY, replay.deliveries)
        return int(conn.execute(count).fetchone()[0] - before)


def default_spill_dir(db_path: Path) -> Path:
    """Where a stop on a full storage disk keeps the verdicts neither SQLite nor the journal could
    take: the system's temporary folder (another file system on most hosts), one folder per
    result log, so the next start of this station finds them."""
    key = hashlib.sha256(str(db_path.resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / "linecheck-spill" / key


def recover_journals(db_path: Path, journal_dir: Path) -> int:
    """Insert journalled verdicts that a crash (or a stop that could not reach the database)
    kept out of SQLite; returns how many were missing from it."""
    files = journal_files(journal_dir)
    if not files:
        return 0
    conn = connect(db_path)
    recovered = 0
    try:
        for path in files:
            recovered += _apply(conn, _merge_journal(read_journal(path)))
            path.unlink()
    finally:
        conn.close()
    return recovered


_Item = ResultRecord | tuple[str, str, str, str]


class ResultLog:
    """Owns the writer thread (started by :meth:`start`, stopped within a bound by
    :meth:`close`). ``submit`` never blocks: a bounded queue, whose overflow is counted and
    replayed from the journal once the writer catches up; a verdict the journal could not take
    (full disk) is never dropped but held until SQLite has it."""

    def __init__(self, db_path: Path, archive: ImageArchive | None, queue_size: int = 1024,
                 close_timeout_s: float = CLOSE_TIMEOUT_S, spill_dir: Path | None = None) -> None:  # fmt: skip
        self.db_path = db_path
        self.archive = archive
        self.journal_dir = db_path.parent / "journal"
        self.spill_dir = spill_dir if spill_dir is not None else default_spill_dir(db_path)
        self.close_timeout_s = close_timeout_s
        self._earlier: list[Path] = []  # journals of earlier runs, not yet in SQLite
        try:
            self.recovered = recover_journals(db_path, self.journal_dir) + recover_journals(db_path, self.spill_dir)
        except sqlite3.OperationalError as exc:  # locked by another process: the writer retries
            self.recovered = 0
            # those not recovered (each is removed once it is)
            self._earlier = journal_files(self.journal_dir) + journal_files(self.spill_dir)
            log.warning("journals of an earlier run not recovered yet (%s); the writer retries", exc)
        self.journal = VerdictJournal(self.journal_dir)
        self._queue: queue.Queue[_Item] = queue.Queue(queue_size)
        self._held: deque[_Item] = deque()  # never dropped: not in the journal, or an event
        self._held_lock = threading.Lock()
        self._unjournalled: set[str] = set()
        self.dropped = 0  # queue overflows of journalled verdicts (replayed from the journal)
        self.replays = 0
        self.written = 0
        self.lost = 0  # verdicts neither in SQLite nor in a journal (a full disk at the stop)
        self.spilled = 0  # verdicts a full disk at the stop sent to the spill journal
        self.archive_failures = 0
        self.images_dropped = 0
        self.journal_failures = 0
        self._images_in_flight = 0
        self._images_lock = threading.Lock()
        self._replay_due = False
        self._reserve_retry_at = 0.0
        self._journal_error: str | None = None
        self._db_error: str | None = None
        self._archive_error: str | None = None
        self.alarms: list[str] = []
        self._alarm_cb: Any = None
        self._conn = connect(db_path, timeout_s=0.5)  # alarm early, keep retrying
        self._stop = threading.Event()
        self._abort = threading.Event()
        self._aborted: list[_Item] = []
        self._thread: threading.Thread | None = None
        self._closed = False

    def start(self) -> None:
        """Start the writer (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="result-log", daemon=True)
            self._thread.start()

    def on_alarm(self, callback: Any) -> None:
        self._alarm_cb = callback

    # --- hot path -------------------------------------------------------------------------
    def journal_append(self, record: ResultRecord) -> bool:
        """Hot path, before the PLC write. False: the journal could not take it (the disk is
        full); the part is still decided and signalled, and the record is held in memory."""
        try:
            self.journal.append(record.result_id, record.journal_dict())
        except OSError as exc:
            self._unjournalled.add(record.result_id)
            self.journal_failures += 1
            if self._journal_error is None:
                self._journal_error = str(exc)
                self._alarm(f"verdict journal write failed ({exc}); verdicts are held in memory until logged")
            return False
        if self._journal_error is not None:
            self._journal_error = None
            log.warning("verdict journal writable again")
        return True

    def journal_delivery(self, record: ResultRecord) -> None:
        """Hot path, right after the PLC write: what was delivered, under which result_seq."""
        if record.result_id in self._unjournalled:
            return  # its row is held in memory with the delivery outcome
        try:
            self.journal.append(record.result_id, {"update": record.result_id, "delivered": record.delivered,
                                                   "plc_seq": record.plc_seq})  # fmt: skip
        except OSError as exc:  # the verdict line is journalled; only the outcome is missing
            self.journal_failures += 1
            if self._journal_error is None:
                self._journal_error = str(exc)
                self._alarm(f"verdict journal write failed ({exc}); verdicts are held in memory until logged")

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
            if record.image is not None:
                record.image = None
                with self._images_lock:
                    self._images_in_flight -= 1
            if record.result_id in self._unjournalled:
                self._hold(record)
            else:
                self.dropped += 1  # in the journal: replayed into SQLite once the writer catches up
                self._replay_due = True

    def event(self, kind: str, severity: str, message: str, data: dict[str, Any] | None = None) -> None:
        item = (kind, severity, message, json.dumps(data or {}))
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self._hold(item)

    def _hold(self, item: _Item) -> None:
        with self._held_lock:
            self._held.append(item)
            if len(self._held) > MAX_HELD:
                old = self._held.popleft()
                if isinstance(old, ResultRecord):
                    self._unjournalled.discard(old.result_id)
                    self.lost += 1
                    self._alarm(f"{self.lost} verdicts lost: neither the journal nor the database can be written")

    # --- what the alarm model and the HMI read -------------------------------------------------
    def backlog(self) -> int:
        """Verdicts decided and not yet in SQLite (journalled or held in memory)."""
        return self.journal.uncommitted() + len(self._unjournalled)

    def storage_fault(self) -> str | None:
        """Why storage is failing now (journal, database or NG archive), or None."""
        if self.journal.reserve_released and self._journal_error is None:
            return "the disk is full: the verdict journal is using its reserve"
        return self._journal_error or self._db_error or self._archive_error

    def pending(self) -> int:
        return self._queue.qsize() + len(self._held)

    def _alarm(self, message: str) -> None:
        log.error(message)
        self.alarms.append(message)
        del self.alarms[:-100]
        if self._alarm_cb is not None:
            self._alarm_cb(message)

    # --- the writer thread --------------------------------------------------------------------
    def _take(self) -> list[_Item]:
        batch: list[_Item] = []
        with self._held_lock:
            while self._held and len(batch) < 256:
                batch.append(self._held.popleft())
        try:
            if not batch:
                batch.append(self._queue.get(timeout=0.05))
            while len(batch) < 256:
                batch.append(self._queue.get_nowait())
        except queue.Empty:
            pass
        return batch

    def _run(self) -> None:
        while not self._abort.is_set():
            batch = self._take()
            if batch and not self._write(batch):
                self._aborted = batch
                return
            if batch and (self._held or not self._queue.empty()):
                continue  # not caught up yet; what follows runs between batches of a steady line
            if self._replay_due and not self._replay():
                return
            if self._earlier and not self._recover_earlier():
                return
            if self.journal.reserve_released and self._db_error is None and time.monotonic() >= self._reserve_retry_at:
                self._reserve_retry_at = time.monotonic() + 1.0
                if self.journal.restore_reserve():
                    log.warning("verdict journal reserve set aside again")
            if self._stop.is_set() and not self._held and self._queue.empty():
                return

    def _retry(self, action: Any) -> bool:
        """Run ``action`` until SQLite takes it; False only when :meth:`close` gave up."""
        delay = _RETRY_FIRST_S
        last_log = 0.0
        while True:
            try:
                action()
            except sqlite3.OperationalError as exc:  # locked by another process, disk full...
                if self._db_error is None:
                    self._db_error = f"result log write failed ({exc})"
                    self._alarm(f"{self._db_error}; retrying, verdicts kept in the journal")
                elif time.monotonic() - last_log > 10:
                    log.warning("%s; %d verdicts waiting", self._db_error, self.backlog())
                    last_log = time.monotonic()
                last_log = last_log or time.monotonic()
                if "locked" not in str(exc) and "busy" not in str(exc):
                    self._reopen()
                if self._abort.wait(delay):
                    return False
                delay = min(delay * 2, _RETRY_MAX_S)
                continue
            if self._db_error is not None:
                log.warning("result log writable again")
                self._db_error = None
            return True

    def _reopen(self) -> None:
        """After a full disk or an I/O error a connection can keep failing with space free
        again (seen with SQLITE_FULL in WAL mode on a tmpfs): start over with a new one."""
        try:
            fresh = connect(self.db_path, timeout_s=0.5)
        except sqlite3.Error:
            return  # still failing: the next retry tries again
        old, self._conn = self._conn, fresh
        try:
            old.close()
        except sqlite3.Error:
            log.debug("closing the failed result-log connection", exc_info=True)

    def _write(self, batch: list[_Item]) -> bool:
        rows = []
        ids = []
        events = []
        for item in batch:
            if isinstance(item, ResultRecord):
                self._archive_image(item)
                rows.append(item.row())
                ids.append(item.result_id)
            else:
                events.append((time.time_ns(), *item))

        def commit() -> None:
            with self._conn:
                self._conn.executemany(_UPSERT, rows)
                self._conn.executemany(_INSERT_EVENT, events)

        if not self._retry(commit):
            return False
        self.written += len(rows)
        self.journal.mark_committed(ids)
        for rid in ids:
            self._unjournalled.discard(rid)
        return True

    def _archive_image(self, item: ResultRecord) -> None:
        if item.image is None:
            return
        if self.archive is not None:
            try:
                item.image_ref = self.archive.save(item.result_id, item.image)
                self._archive_error = None
            except OSError as exc:
                self.archive_failures += 1
                if self._archive_error is None:
                    self._alarm(f"NG image archive failed ({exc}); verdicts are still logged")
                self._archive_error = f"NG image archive failed ({exc})"
        item.image = None
        with self._images_lock:
            self._images_in_flight -= 1

    def _replay(self) -> bool:
        """The queue overflowed: the journal has those verdicts, SQLite not yet. Upsert what the
        journal holds (rows the queue already delivered are left as they are) and forget it."""
        self._replay_due = False
        replay = _merge_journal(parse_lines(self.journal.snapshot()))
        if not self._retry(lambda: _apply(self._conn, replay)):
            self._replay_due = True
            return False
        self.replays += 1
        self.journal.mark_replayed(replay.lines)
        return True

    def _recover_earlier(self) -> bool:
        """Journals an earlier run left, which the database refused at this start (locked)."""
        while self._earlier:
            if not self._recover_one(self._earlier[0]):
                return False
            self._earlier.pop(0)
        return True

    def _recover_one(self, path: Path) -> bool:
        replay = _merge_journal(read_journal(path))
        inserted: list[int] = []
        if not self._retry(lambda: inserted.append(_apply(self._conn, replay))):
            return False
        self.recovered += inserted[0]
        path.unlink(missing_ok=True)
        log.warning("recovered %d verdicts from the journal of an earlier run", inserted[0])
        return True

    def close(self, timeout_s: float | None = None) -> None:
        """Flush within ``timeout_s``, then stop. What SQLite does not hold by then stays in the
        journal for the next start (it is never deleted); a verdict the journal could not take
        is written there now, or counted in ``lost`` if the disk is still full."""
        if self._closed:
            return
        self._closed = True
        bound = self.close_timeout_s if timeout_s is None else timeout_s
        self._stop.set()
        if self._thread is None and (self._queue.qsize() or self._held or self._replay_due or self._earlier):
            self.start()  # never started: the same bounded flush
        thread = self._thread
        if thread is not None:
            end = time.monotonic() + bound
            while thread.is_alive() and time.monotonic() < end:
                thread.join(min(1.0, max(end - time.monotonic(), 0.0)))
                if thread.is_alive():
                    log.warning("stopping: waiting for the result log to commit %d verdicts (%s)", self.backlog(),
                                self._db_error or "writing")  # fmt: skip
            if thread.is_alive():
                self._abort.set()
                thread.join(2.0)  # one SQLite busy timeout at most
        self._keep_unjournalled()
        if thread is None or not thread.is_alive():
            self._conn.close()
        kept = self.journal.uncommitted()
        self.journal.close(remove=True)
        if kept:
            log.warning("result log: %d verdicts are not in %s yet; kept in %s for the next start",
                        kept, self.db_path, self.journal.path)  # fmt: skip

    def _keep_unjournalled(self) -> None:
        """At a stop that could not reach SQLite: journal what only memory holds."""
        left: list[_Item] = list(self._aborted)
        with self._held_lock:
            left.extend(self._held)
            self._held.clear()
        while True:
            try:
                left.append(self._queue.get_nowait())
            except queue.Empty:
                break
        spill: VerdictJournal | None = None
        for item in left:
            if isinstance(item, ResultRecord) and item.result_id in self._unjournalled:
                try:
                    self.journal.append(item.result_id, item.journal_dict())
                    self._unjournalled.discard(item.result_id)
                    continue
                except OSError:
                    pass
                try:  # the storage disk is still full: another file system keeps it for the next start
                    spill = spill or VerdictJournal(self.spill_dir, reserve=False)
                    spill.append(item.result_id, item.journal_dict())
                    self._unjournalled.discard(item.result_id)
                    self.spilled += 1
                except OSError:
                    self.lost += 1
        if spill is not None:
            spill.close()  # kept: the next start recovers it into SQLite
            log.error("result log: the storage disk is full; %d verdicts kept in %s for the next start",
                      self.spilled, spill.path)  # fmt: skip
        if self.lost:
            log.error("result log: %d verdicts lost: neither the database nor the journal could be written", self.lost)
