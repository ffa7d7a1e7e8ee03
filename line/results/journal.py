"""An append-only verdict journal: the crash-durable half of the result log.

Every verdict is appended here *before* it is written to the PLC (one ``os.write`` of one
JSON line to an ``O_APPEND`` file: a few microseconds, survives SIGKILL because the data is in
the kernel's page cache). The SQLite log is then filled off the hot path by the writer thread;
at start-up :func:`line.results.log.recover_journals` inserts whatever a crash left in journals and
not in SQLite. So a verdict that reached the PLC is never lost from the log, and the hot path
never waits on a database that another process may be holding locked.

The journal holds only what SQLite does not hold yet: it counts, per verdict, the lines it
appended (the verdict, then its delivery outcome) and forgets a verdict once the writer has
committed it; whenever nothing is left uncommitted the file is truncated, and on a line that
never pauses (a verdict always in flight) a file past ``COMPACT_BYTES`` is rewritten with only
the uncommitted verdicts' lines (a rename: a crash leaves the old file or the new one, whole).
Without that count a delivery line per verdict kept the file growing forever (and start-up
replayed all of it). A reserve file set aside next to the journal is given back to a disk that
fills up, so the journal keeps taking verdicts for a while after the disk is full.
"""

from __future__ import annotations

import errno
import json
import os
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

COMPACT_BYTES = 16 * 1024  # ~50 verdicts with their delivery lines
# space set aside next to the journal and given up when the disk is full: ~1,500 verdicts with
# their delivery lines can still be journalled (and a stop can journal what memory holds)
RESERVE_BYTES = 512 * 1024


class VerdictJournal:
    def __init__(self, directory: Path, reserve: bool = True) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        # never an earlier run's file (a container's pid repeats): that one may hold verdicts
        # SQLite does not have yet, which this journal's truncation would throw away
        self.path = directory / f"journal-{os.getpid()}-{time.time_ns()}.jsonl"
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o640)
        self._lock = threading.Lock()
        # result_id -> lines appended for it and not yet known to be in SQLite
        self._uncommitted: dict[str, int] = {}
        self._size = os.fstat(self._fd).st_size
        self._compact_at = COMPACT_BYTES
        self.reserve_path = directory / "reserve.bin"
        # a spill journal (a stop on a full disk, another file system) sets nothing aside
        self.reserve_released = not self.restore_reserve() if reserve else True
        self.truncations = 0

    def append(self, result_id: str, record: dict[str, Any]) -> None:
        """Append one line for ``result_id``; raises OSError (a full disk) with nothing counted."""
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
        with self._lock:
            try:
                self._write(line)
            except OSError as exc:
                if exc.errno != errno.ENOSPC or not self._release_reserve():
                    raise
                self._write(line)
            self._uncommitted[result_id] = self._uncommitted.get(result_id, 0) + 1

    def _write(self, line: bytes) -> None:
        written = os.write(self._fd, line)
        if written != len(line):  # a short write is a full disk: cut the torn line off again
            os.ftruncate(self._fd, self._size)
            raise OSError(errno.ENOSPC, "No space left on device (short journal write)")
        self._size += written

    def _release_reserve(self) -> bool:
        """The disk is full: give the reserve back to it; False when it is already spent."""
        if self.reserve_released:
            return False
        self.reserve_path.unlink(missing_ok=True)
        self.reserve_released = True
        return True

    def restore_reserve(self) -> bool:
        """Set the reserve aside (again); False while the disk cannot give that much."""
        try:
            fd = os.open(self.reserve_path, os.O_WRONLY | os.O_CREAT, 0o640)
            try:
                os.posix_fallocate(fd, 0, RESERVE_BYTES)
            finally:
                os.close(fd)
        except OSError:
            self.reserve_path.unlink(missing_ok=True)
            return False
        self.reserve_released = False
        return True

    def mark_committed(self, result_ids: Iterable[str]) -> None:
        """The writer committed these verdicts (with their delivery outcome) to SQLite."""
        with self._lock:
            for result_id in result_ids:
                self._uncommitted.pop(result_id, None)
            self._truncate_if_empty()

    def mark_replayed(self, lines_seen: dict[str, int]) -> None:
        """Lines read back from the file (``snapshot``) are in SQLite: forget a verdict unless a
        line for it was appended after the snapshot."""
        with self._lock:
            for result_id, seen in lines_seen.items():
                if self._uncommitted.get(result_id, 0) <= seen:
                    self._uncommitted.pop(result_id, None)
            self._truncate_if_empty()

    def _truncate_if_empty(self) -> None:
        if self._fd < 0 or not self._size:
            return
        if not self._uncommitted:
            os.ftruncate(self._fd, 0)
            self._size = 0
            self._compact_at = COMPACT_BYTES
            self.truncations += 1
        elif self._size >= self._compact_at:
            self._compact()

    def _compact(self) -> None:
        """Rewrite the file with the uncommitted verdicts' lines only (held lock: appends wait;
        each line's id is its first value, read without parsing the JSON)."""
        keep = [
            raw for raw in os.pread(self._fd, self._size, 0).splitlines(keepends=True)
            if raw.endswith(b"\n") and _line_id(raw) in self._uncommitted
        ]  # fmt: skip
        tmp = self.path.with_name(self.path.name + ".compact")
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o640)
        try:
            data = b"".join(keep)
            if data and os.write(fd, data) != len(data):
                raise OSError(28, "No space left on device (short journal write)")
            os.replace(tmp, self.path)
        except OSError:  # a full disk: keep the long file, it is still complete
            os.close(fd)
            tmp.unlink(missing_ok=True)
            return
        os.close(self._fd)
        self._fd, self._size = fd, len(data)
        self._compact_at = max(COMPACT_BYTES, 4 * self._size)  # amortised: a large backlog is not copied per batch
        self.truncations += 1

    def snapshot(self) -> bytes:
        """Everything the journal holds now (complete lines: appends hold the same lock)."""
        with self._lock:
            return os.pread(self._fd, self._size, 0) if self._size else b""

    def uncommitted(self) -> int:
        """Verdicts journalled and not yet in SQLite."""
        return len(self._uncommitted)

    def size_bytes(self) -> int:
        return self._size

    def close(self, remove: bool = False) -> None:
        """``remove`` only when nothing is uncommitted: a clean stop never deletes a verdict
        that SQLite does not hold."""
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            keep = bool(self._uncommitted)
        if remove and not keep:
            self.path.unlink(missing_ok=True)


def _line_id(raw: bytes) -> str:
    """The verdict a journal line belongs to: the value of its first key (``result_id`` of a
    verdict line, ``update`` of a delivery line)."""
    start = raw.find(b'":"') + 3
    return raw[start : raw.find(b'"', start)].decode()


def journal_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("journal-*.jsonl")) if directory.exists() else []


def parse_lines(data: bytes) -> Iterator[dict[str, Any]]:
    """Complete records; a torn last line (killed mid-write) is skipped."""
    for raw in data.splitlines(keepends=True):
        if not raw.endswith(b"\n"):
            break
        try:
            yield json.loads(raw)
        except json.JSONDecodeError:
            continue


def read_journal(path: Path) -> Iterator[dict[str, Any]]:
    yield from parse_lines(path.read_bytes())
