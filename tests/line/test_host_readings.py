"""The bench's host readings: hypervisor steal from /proc/stat, CPU time per named thread."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from tools.bench.host_steal import read_steal_ms, steal_since
from tools.bench.thread_cpu import busiest_since, thread_cpu_ms

TICK_MS = 1000.0 / os.sysconf("SC_CLK_TCK")

STAT = """cpu  10 0 10 100 0 0 0 7 0 0
cpu0 5 0 5 50 0 0 0 3 0 0
cpu1 5 0 5 50 0 0 0 4 0 0
intr 123 0 0
ctxt 456
"""


def test_steal_is_read_per_vcpu_and_the_aggregate_line_is_left_out(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    stat.write_text(STAT)
    assert read_steal_ms(stat) == {"cpu0": 3 * TICK_MS, "cpu1": 4 * TICK_MS}


def test_steal_since_sums_the_vcpus_and_names_the_worst() -> None:
    before = {"cpu0": 10.0, "cpu1": 20.0, "cpu2": 0.0}
    after = {"cpu0": 40.0, "cpu1": 20.0, "cpu2": 10.0}
    assert steal_since(before, after) == {"steal_ms": 40.0, "steal_max_cpu_ms": 30.0}


def test_no_proc_stat_reads_as_nothing_not_as_an_error(tmp_path: Path) -> None:
    assert read_steal_ms(tmp_path / "missing") == {}
    assert steal_since({}, {}) == {"steal_ms": 0.0, "steal_max_cpu_ms": 0.0}


@pytest.mark.skipif(not Path("/proc/stat").is_file(), reason="no /proc on this system")
def test_this_machines_vcpus_are_all_read() -> None:
    lines = [ln for ln in Path("/proc/stat").read_text().splitlines() if ln.startswith("cpu") and not ln.startswith("cpu ")]
    steal = read_steal_ms()
    assert len(steal) == len(lines) >= 1
    assert all(ms >= 0 for ms in steal.values())


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="no /proc on this system")
def test_the_thread_that_burnt_the_cpu_is_named_first() -> None:
    before = thread_cpu_ms()
    burnt = threading.Event()
    release = threading.Event()

    def burn() -> None:
        t0 = time.thread_time()
        while time.thread_time() - t0 < 0.3:  # CPU time, whatever else the machine runs
            pass
        burnt.set()
        release.wait(10)  # alive while it is read: a finished thread's time leaves /proc

    worker = threading.Thread(target=burn, name="burner")
    worker.start()
    try:
        assert burnt.wait(30)
        busiest = busiest_since(before)
    finally:
        release.set()
        worker.join()
    name, cpu_ms, waited_ms = busiest[0]
    assert name == "burner"
    assert cpu_ms >= 300 - 2 * TICK_MS
    assert waited_ms >= 0
    assert all(ms > 0 for _, ms, _ in busiest)
