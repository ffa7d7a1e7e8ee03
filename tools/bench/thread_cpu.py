"""CPU time per thread of this process, named, and how long each waited for a CPU.

On a VM whose host takes vCPUs back under load (``tools.bench.host_steal``), the station's own CPU
use is part of the story: every core kept busy, by work or by spinning, is one the host may
count against us. The bench reads this before and after its paced run and reports which
threads burnt the time, by their Python names where they have one (ORT's and CUDA's own
threads go by their OS names), and how long each was ready to run but not running (the
scheduler's run delay): a thread that stalls with no run delay was waiting on something
(a lock, the GIL, the device), not on a CPU.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

TASKS = Path("/proc/self/task")


def _read(task: Path, tick_ms: float) -> tuple[str, float, float] | None:
    try:
        stat = (task / "stat").read_text()
    except OSError:  # the thread ended meanwhile
        return None
    comm = stat[stat.index("(") + 1 : stat.rindex(")")]
    try:  # schedstat: ns on CPU, ns runnable and waiting, timeslices (kernels with schedstats)
        on_cpu, waited, _ = (int(v) for v in (task / "schedstat").read_text().split())
        return comm, on_cpu / 1e6, waited / 1e6
    except (OSError, ValueError):
        fields = stat[stat.rindex(")") + 2 :].split()
        # fields[0] is the file's 3rd field (state); utime and stime are its 14th and 15th
        return comm, (int(fields[11]) + int(fields[12])) * tick_ms, 0.0


def thread_cpu_ms() -> dict[int, tuple[str, float, float]]:
    """{tid: (name, CPU ms so far, run-delay ms so far)}; empty where /proc is not there."""
    tick_ms = 1000.0 / os.sysconf("SC_CLK_TCK")
    names = {t.native_id: t.name for t in threading.enumerate() if t.native_id is not None}
    out: dict[int, tuple[str, float, float]] = {}
    try:
        tasks = list(TASKS.iterdir())
    except OSError:
        return out
    for task in tasks:
        read = _read(task, tick_ms)
        if read is not None:
            tid = int(task.name)
            out[tid] = (names.get(tid, read[0]), read[1], read[2])
    return out


def busiest_since(before: dict[int, tuple[str, float, float]], top: int = 6) -> list[tuple[str, int, int]]:
    """The ``top`` threads by CPU ms since ``before``, each with its run delay in ms (threads
    born since count from zero)."""
    used = []
    for tid, (name, cpu, waited) in thread_cpu_ms().items():
        _, cpu0, waited0 = before.get(tid, (name, 0.0, 0.0))
        used.append((name, round(cpu - cpu0), round(waited - waited0)))
    used.sort(key=lambda item: -item[1])
    return [item for item in used[:top] if item[1] > 0]
