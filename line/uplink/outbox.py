"""The disk outbox: every QoS 1 message (parts, alarms) waits here until the broker has
acknowledged it, so a broker outage, a network partition or a station restart loses nothing.

SQLite in WAL mode, one table, rows in insertion order (``seq``). Bounded by rows; when full
the named policy decides: ``drop_oldest`` deletes the oldest undelivered rows (the plant loses
the oldest history, the newest parts still arrive), ``drop_newest`` refuses the new row. Either
way every lost message is counted (``dropped``) and the uplink raises an alarm.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Policy = Literal["drop_oldest", "drop_newest"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    retain INTEGER NOT NULL DEFAULT 0,
    t_enqueued REAL NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class OutboxRow:
    seq: int
    topic: str
    payload: bytes
    retain: bool


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    topic: str
    payload: bytes
    retain: bool = False


class DiskOutbox:
    """Thread-safe (the writer thread adds, the sender thread reads and removes)."""

    def __init__(self, path: Path, max_rows: int, policy: Policy = "drop_oldest", clock: Callable[[], float] | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_rows = max_rows
        self.policy = policy
        self._clock: Callable[[], float] = clock or time.time
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across a process crash
        self._db.executescript(_SCHEMA)
        self._depth = int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
        self.recovered = self._depth  # undelivered rows found at start (an earlier run's)
        self.dropped = 0
        self._closed = False
        self._age_at_close = 0.0

    def add(self, messages: list[OutgoingMessage]) -> int:
        """Append in order, one transaction; returns how many rows the policy dropped."""
        if not messages:
            return 0
        now = self._clock()
        with self._lock:
            dropped = 0
            room = self.max_rows - self._depth
            if self.policy == "drop_newest" and len(messages) > room:
                dropped = len(messages) - max(room, 0)
                messages = messages[: max(room, 0)]
            self._db.execute("BEGIN")
            try:
                self._db.executemany(
                    "INSERT INTO outbox (topic, payload, retain, t_enqueued) VALUES (?, ?, ?, ?)",
                    [(m.topic, m.payload, int(m.retain), now) for m in messages],
                )
                excess = self._depth + len(messages) - self.max_rows
                if self.policy == "drop_oldest" and excess > 0:
                    self._db.execute(
                        "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox ORDER BY seq LIMIT ?)", (excess,)
                    )
                    dropped += excess
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._depth += len(messages) - (excess if self.policy == "drop_oldest" and excess > 0 else 0)
            self.dropped += dropped
            return dropped

    def after(self, seq: int, limit: int) -> list[OutboxRow]:
        """Undelivered rows past ``seq``, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, topic, payload, retain FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)
            ).fetchall()
        return [OutboxRow(int(s), str(t), bytes(p), bool(r)) for s, t, p, r in rows]

    def remove(self, seqs: list[int]) -> None:
        """Acknowledged by the broker (PUBACK), or refused by it for good."""
        if not seqs:
            return
        with self._lock:
            cur = self._db.executemany("DELETE FROM outbox WHERE seq = ?", [(s,) for s in seqs])
            self._depth -= max(cur.rowcount, 0)

    @property
    def depth(self) -> int:
        return self._depth

    def oldest_age_s(self) -> float:
        """Age of the oldest undelivered message (after ``close``: as it was then; a stopped
        station's snapshot is still read)."""
        with self._lock:
            if self._closed:
                return self._age_at_close
            row = self._db.execute("SELECT t_enqueued FROM outbox ORDER BY seq LIMIT 1").fetchone()
        return max(0.0, self._clock() - float(row[0])) if row else 0.0

    def close(self) -> None:
        age = self.oldest_age_s()
        with self._lock:
            if self._closed:
                return
            self._age_at_close, self._closed = age, True
            self._db.close()
