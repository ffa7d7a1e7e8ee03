"""CPU time per thread of this process, named, from ``/proc/self/task``.

On a VM whose host takes vCPUs back under load (``line.host_steal``), the station's own CPU
use is part of the story: every core kept busy, by work or by spinning, is one the host may
count against us. The bench reads this before and after its paced run and reports which
threads burnt the time, by their Python names where they have one (ORT's and CUDA's own
threads go by their OS names).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

TASKS = Path("/proc/self/task")


def thread_cpu_ms() -> dict[int, tuple[str, float]]:
    """{tid: (name, user + system ms so far)}; empty where /proc is not there."""
    tick_ms = 1000.0 / os.sysconf("SC_CLK_TCK")
    names = {t.native_id: t.name for t in threading.enumerate() if t.native_id is not None}
    out: dict[int, tuple[str, float]] = {}
    try:
        tasks = list(TASKS.iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            stat = (task / "stat").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        tid = int(task.name)
        # fields[0] is the file's 3rd field (state); utime and stime are its 14th and 15th
        ms = (int(fields[11]) + int(fields[12])) * tick_ms
        out[tid] = (names.get(tid, comm), ms)
    return out


def busiest_since(before: dict[int, tuple[str, float]], top: int = 6) -> list[tuple[str, float]]:
    """The ``top`` threads by CPU ms since ``before`` (threads born since count from zero)."""
    after = thread_cpu_ms()
    used = [(name, ms - before.get(tid, (name, 0.0))[1]) for tid, (name, ms) in after.items()]
    used.sort(key=lambda item: -item[1])
    return [(name, round(ms)) for name, ms in used[:top] if ms > 0]
