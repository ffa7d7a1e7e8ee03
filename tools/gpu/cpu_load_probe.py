"""How much CPU does a shared cloud VM really give, and when does the hypervisor start taking it back?

The bench runs showed steal (``tools.bench.host_steal``) on all 16 vCPUs at once while the station
ran, and none with the machine idle. Two causes look alike from inside: other tenants on the
same physical cores, or a CPU quota on the VM (the host throttles every vCPU for the rest of a
period once the VM has used its share). This loads K vCPUs with busy processes for a few
seconds each, K = 1..all, and prints per K the work done (against one process alone: the
effective cores), the steal, and how late a 1 ms sleep in this process woke. A quota shows as
effective cores that stop growing at some K, with steal on every vCPU from then on.

    python3 tools/gpu/cpu_load_probe.py [SECONDS_PER_STEP]   # bench_round.sh step `cpuload`
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tools.bench.host_steal import read_steal_ms, steal_since  # noqa: E402


def _spin(seconds: float, out: mp.Queue) -> None:  # type: ignore[type-arg]
    n = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for _ in range(1000):
            n += 1
    out.put(n)


def step(k: int, seconds: float) -> tuple[float, dict[str, float], np.ndarray]:
    out: mp.Queue = mp.Queue()  # type: ignore[type-arg]
    procs = [mp.Process(target=_spin, args=(seconds, out)) for _ in range(k)]
    before = read_steal_ms()
    for p in procs:
        p.start()
    late = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        time.sleep(0.001)
        late.append((time.perf_counter() - t - 0.001) * 1e3)
    work = sum(out.get() for _ in procs)
    for p in procs:
        p.join()
    return work, steal_since(before), np.array(late)


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 4.0
    cpus = os.cpu_count() or 1
    ks = sorted({1, 2, 4, *range(6, cpus + 1, 2), cpus - 1, cpus})
    single = None
    print(f"cpu load probe: {cpus} vCPUs, {seconds:.0f} s per step (busy processes + a 1 ms sleeper)")
    for k in ks:
        work, steal, late = step(k, seconds)
        single = single or work
        print(f"  {k:2d} busy: effective cores {work / single:5.2f}; steal {steal['steal_ms']:6.0f} ms "
              f"(most from one vCPU {steal['steal_max_cpu_ms']:4.0f}); sleeper late max {late.max():6.2f} ms, "
              f">2 ms {(late > 2).sum()}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
