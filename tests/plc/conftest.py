"""Fixtures for the PLC tests: real peers (PLC simulator subprocess, our server) that are
always stopped and reaped at test end."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from plc.vocabulary import ResultCode, VerdictMessage


@dataclass
class RecordingRequests:
    """A PlcRequests implementation that records what the PLC asked for."""

    recipes: list[tuple[int, str]] = field(default_factory=list)
    commands: list[tuple[int, str]] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def select_recipe_code(self, code: int, source: str) -> None:
        with self.cond:
            self.recipes.append((code, source))
            self.cond.notify_all()

    def command(self, command: int, source: str) -> None:
        with self.cond:
            self.commands.append((command, source))
            self.cond.notify_all()

    def wait_for(self, pred: object, timeout: float = 5.0) -> bool:
        with self.cond:
            return self.cond.wait_for(pred, timeout)  # type: ignore[arg-type]


def verdict(i: int, deadline_s: float = 1.0, **kw: object) -> VerdictMessage:
    """A verdict numbered ``i`` with a deadline ``deadline_s`` from now."""
    args: dict[str, object] = dict(
        result_id=f"r{i}", camera_id="cam0", part_id=1000 + i, recipe_id="cap-a", recipe_code=3,
        result_code=ResultCode.REJECT if i % 3 == 0 else ResultCode.PASS, reject_mask=(i % 4),
        defect_count=i % 7, processing_us=70000 + i, deadline=time.perf_counter() + deadline_s,
    )
    args.update(kw)
    return VerdictMessage(**args)  # type: ignore[arg-type]


def wait_until(pred: object, timeout: float = 5.0, step: float = 0.01) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():  # type: ignore[operator]
            return True
        time.sleep(step)
    return bool(pred())  # type: ignore[operator]


@pytest.fixture
def requests_rec() -> Iterator[RecordingRequests]:
    yield RecordingRequests()


def _children() -> set[int]:
    """Child pids of this process (Linux /proc), without psutil."""
    import os

    me, kids = os.getpid(), set()
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == me:
                        kids.add(int(d))
            except (OSError, ValueError, IndexError):
                pass
    return kids


@pytest.fixture(autouse=True)
def _no_leaks() -> Iterator[None]:
    """Fail a PLC test that leaves threads or child processes behind."""
    threads = set(threading.enumerate())
    kids = _children()
    yield
    assert wait_until(lambda: not (set(threading.enumerate()) - threads), timeout=5), (
        f"leaked threads: {set(threading.enumerate()) - threads}"
    )
    assert wait_until(lambda: not (_children() - kids), timeout=5), f"leaked processes: {_children() - kids}"
