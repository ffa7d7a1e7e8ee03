"""CPU time the hypervisor took from this virtual machine (``steal`` in ``/proc/stat``).

On a VM a vCPU is a thread of the host: when the host runs something else, every guest thread
on that vCPU stops, however high its priority in the guest, and a station's tail latency
follows. The guest kernel counts that time as steal. A bench run reads it before and after, so
a tail can be told apart from the station's own stalls: no change to the station removes time
the host did not give it. Zero on bare metal; a kernel or container that does not report it
yields nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

PROC_STAT = Path("/proc/stat")
_STEAL_FIELD = 8  # cpuN user nice system idle iowait irq softirq steal ...


def read_steal_ms(path: Path = PROC_STAT) -> dict[str, float]:
    """Steal so far per vCPU (``cpu0``, ``cpu1``, ...), in ms; empty where it is not reported."""
    tick_ms = 1000.0 / os.sysconf("SC_CLK_TCK")
    steal: dict[str, float] = {}
    try:
        text = path.read_text()
    except OSError:
        return steal
    for line in text.splitlines():
        fields = line.split()
        if len(fields) > _STEAL_FIELD and fields[0].startswith("cpu") and fields[0] != "cpu":
            steal[fields[0]] = int(fields[_STEAL_FIELD]) * tick_ms
    return steal


def steal_since(before: dict[str, float], after: dict[str, float] | None = None) -> dict[str, float]:
    """``steal_ms``: summed over the vCPUs; ``steal_max_cpu_ms``: the most any one vCPU lost.

    The kernel counts in ticks (10 ms at the usual 100 Hz), so a single short steal reads as
    0 or 10 ms: the figures say whether the host took time, and roughly how much, not when."""
    after = read_steal_ms() if after is None else after
    delta = [after[cpu] - ms for cpu, ms in before.items() if cpu in after]
    return {"steal_ms": sum(delta), "steal_max_cpu_ms": max(delta, default=0.0)}
