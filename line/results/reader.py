"""The read side of the result log: the HMI, the MES server (its ``ResultHistory``, OPC 40100
by-id and filtered reads) and tests read verdicts through one read-only connection. The writer
(``line.results.log``) owns the schema; this module only reads it."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from line.results.log import COLUMNS, ResultRecord, connect


def _read_record(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> ResultRecord:
    record = ResultRecord(*row[1:])
    record.rowid = row[0]
    return record


class ResultQuery(Protocol):
    """What a filtered read selects on (the MES server's OPC 40100 ``ResultFilter`` is one);
    None: any."""

    @property
    def part_id(self) -> int | None: ...
    @property
    def recipe_id(self) -> str | None: ...
    @property
    def result_codes(self) -> Sequence[int] | None: ...


class ResultLogReader:
    """Read side for the HMI, the MES server (its ``ResultHistory``: pages in (t_verdict_ns,
    rowid) order, the order HistoryRead continuation points need) and tests; its own read-only
    connection.

    One connection, many threads (the MES server pages ``GetResults`` on worker threads while
    its event loop reads by id): every read holds the reader's lock, because a sqlite3
    connection used by two threads at once fails (``InterfaceError: bad parameter or other API
    misuse``, seen with five concurrent ``GetResults`` pollers)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn = connect(path, readonly=True)
        self._conn.row_factory = _read_record
        self._lock = threading.Lock()

    _SELECT = "SELECT rowid, " + ", ".join(COLUMNS) + " FROM results"

    def query(self, from_ns: int, to_ns: int, start_index: int = 0, max_results: int = 100) -> list[ResultRecord]:
        with self._lock:
            cur = self._conn.execute(
                self._SELECT + " WHERE t_verdict_ns >= ? AND t_verdict_ns <= ? ORDER BY t_verdict_ns, rowid LIMIT ? OFFSET ?",
                (from_ns, to_ns, max_results, start_index),
            )
            return list(cur.fetchall())

    def count(self, from_ns: int = 0, to_ns: int = 2**63 - 1) -> int:
        with self._lock:
            cur = self._conn.execute("SELECT COUNT(*) FROM results WHERE t_verdict_ns >= ? AND t_verdict_ns <= ?", (from_ns, to_ns))
            cur.row_factory = None  # type: ignore[assignment]
            return int(cur.fetchone()[0])

    def by_id(self, result_id: str) -> ResultRecord | None:
        """One result by its id (unique and indexed): OPC 40100 GetResultById."""
        with self._lock:
            row: ResultRecord | None = self._conn.execute(self._SELECT + " WHERE result_id = ?", (result_id,)).fetchone()
            return row

    def filtered(self, flt: ResultQuery, start_index: int, max_results: int) -> tuple[list[ResultRecord], int]:
        """One page in time order and the number of matches: OPC 40100 GetResultListFiltered."""
        with self._lock:
            where, params = ["1 = 1"], []  # type: list[str], list[Any]
            if flt.part_id is not None:
                where.append("part_id = ?")
                params.append(flt.part_id)
            if flt.recipe_id is not None:
                where.append("recipe_id = ?")
                params.append(flt.recipe_id)
            if flt.result_codes is not None:
                where.append(f"result_code IN ({', '.join('?' * len(flt.result_codes))})")
                params.extend(flt.result_codes)
            cond = " AND ".join(where)
            cur = self._conn.execute(f"SELECT COUNT(*) FROM results WHERE {cond}", params)  # noqa: S608 - fixed column names
            cur.row_factory = None  # type: ignore[assignment]
            total = int(cur.fetchone()[0])
            if start_index >= total:
                return [], total
            rows = self._conn.execute(
                self._SELECT + f" WHERE {cond} ORDER BY t_verdict_ns, rowid LIMIT ? OFFSET ?",  # noqa: S608
                [*params, max_results, start_index],
            ).fetchall()
            return list(rows), total

    def latest(self, n: int = 20) -> list[ResultRecord]:
        with self._lock:
            return list(reversed(self._conn.execute(self._SELECT + " ORDER BY rowid DESC LIMIT ?", (n,)).fetchall()))

    def since_rowid(self, rowid: int, limit: int = 1000) -> list[ResultRecord]:
        with self._lock:
            return list(self._conn.execute(self._SELECT + " WHERE rowid > ? ORDER BY rowid LIMIT ?", (rowid, limit)).fetchall())

    def all(self) -> list[ResultRecord]:
        with self._lock:
            return list(self._conn.execute(self._SELECT + " ORDER BY rowid").fetchall())

    def events(self, kind: str | None = None) -> list[tuple[int, str, str, str, str]]:
        with self._lock:
            cur = self._conn.cursor()
            cur.row_factory = None
            sql = "SELECT t_ns, kind, severity, message, data_json FROM events"
            rows = cur.execute(sql + " WHERE kind = ? ORDER BY rowid", (kind,)) if kind else cur.execute(sql + " ORDER BY rowid")
            return list(rows.fetchall())

    def close(self) -> None:
        with self._lock:
            self._conn.close()
