"""An append-only verdict journal: the crash-durable half of the result log.

Every verdict is appended here *before* it is written to the PLC (one ``os.write`` of one
JSON line to an ``O_APPEND`` file: a few microseconds, survives SIGKILL because the data is in
the kernel's page cache). The SQLite log is then filled off the hot path by the writer thread;
at start-up :func:`recover` inserts whatever a crash left in journals and not in SQLite. So a
verdict that reached the PLC is never lost from the log, and the hot path never waits on a
database that another process may be holding locked.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROTATE_BYTES = 8 * 1024 * 1024


class VerdictJournal:
    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"journal-{os.getpid()}.jsonl"
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        self._lock = threading.Lock()
        self._appended = 0
        self._committed = 0
        self._size = os.fstat(self._fd).st_size

    def append(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
        with self._lock:
            os.write(self._fd, line)
            self._appended += 1
            self._size += len(line)

    def mark_committed(self, count: int) -> None:
        """Called by the writer after ``count`` journalled rows are committed to SQLite; the
        journal is truncated once everything in it is committed and it has grown large."""
        with self._lock:
            self._committed += count
            if self._committed >= self._appended and self._size >= ROTATE_BYTES:
                os.ftruncate(self._fd, 0)
                self._size = 0

    def close(self, remove: bool = False) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
        if remove:
            self.path.unlink(missing_ok=True)


def journal_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("journal-*.jsonl")) if directory.exists() else []


def read_journal(path: Path) -> Iterator[dict[str, Any]]:
    """Yield complete records; a torn last line (killed mid-write) is skipped."""
    with path.open("rb") as fh:
        for raw in fh:
            if not raw.endswith(b"\n"):
                break
            try:
                yield json.loads(raw)
            except json.JSONDecodeError:
                continue
