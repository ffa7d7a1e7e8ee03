"""The MES server process yields to the station once it listens: every one of its threads at
the configured nice level below the station's, under ``SCHED_BATCH`` (the shipped default, 10)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from line.mes.wiring import start_mes_server
from tests.opcua.fake_log import FakeLogWriter
from tests.opcua.helpers import RecipeCalls, make_config
from tests.reliability.faults import wait_for

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread priorities are Linux's")


def _threads(pid: int) -> list[tuple[int, int]]:
    """(nice, policy) of every thread of ``pid``, read from /proc."""
    out = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            nice = os.getpriority(os.PRIO_PROCESS, int(tid))
            policy = os.sched_getscheduler(int(tid))
        except OSError:  # the thread ended meanwhile
            continue
        out.append((nice, policy))
    return out


def test_the_server_process_runs_below_the_station_under_sched_batch(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, nice=10)  # the shipped default (the helpers' tests run at 0)
    log = FakeLogWriter(tmp_path / "results.db")
    sink = start_mes_server(cfg, tmp_path / "results.db", ["cap-a"], RecipeCalls())
    try:
        assert sink.pid is not None
        station_nice = os.getpriority(os.PRIO_PROCESS, 0)
        want = min(19, station_nice + 10)
        # the server lowers itself right after it reports that it listens: wait for that step
        wait_for(lambda: all(n == want for n, _ in _threads(sink.pid or 0)), 60, "the server to lower its threads")
        threads = _threads(sink.pid)
        assert threads, "no thread of the server process could be read"
        assert all(nice == want for nice, _ in threads), threads
        assert all(policy == os.SCHED_BATCH for _, policy in threads), threads
    finally:
        sink.close()
        log.close()
