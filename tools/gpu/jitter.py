"""Host jitter beside a benchmark: how late a 1 ms sleep wakes, until SIGTERM (or ``SECONDS``).

A tail in the bench's figures means little unless we know whether the host itself stalled
at the time: this runs in parallel with the bench (its own process and core) and prints one
summary line when stopped. Stalls here are the host's, not the station's. On a VM it also
reads the hypervisor's steal (``tools.bench.host_steal``) every 10 ms and says how many of the late
wake-ups had steal around them: those are the host taking the vCPU away, not the guest.

    python3 tools/gpu/jitter.py [SECONDS]   # also bench_round.sh step `jitter` (10 s)
"""

from __future__ import annotations

import bisect
import signal
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tools.bench.host_steal import read_steal_ms  # noqa: E402

STEAL_EVERY = 10  # sleeps between /proc/stat reads (~10 ms, the kernel's tick)


def main() -> None:
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    end = time.perf_counter() + (float(sys.argv[1]) if len(sys.argv) > 1 else 3600.0)
    late: list[float] = []
    stalls: list[tuple[float, float]] = []  # (start, end) of the sleeps more than 2 ms late
    first = read_steal_ms()
    steal_t: list[float] = [time.perf_counter()]
    steal_ms: list[float] = [sum(first.values())]
    while not stop and time.perf_counter() < end:
        t = time.perf_counter()
        time.sleep(0.001)
        t_end = time.perf_counter()
        late.append((t_end - t - 0.001) * 1e3)
        if late[-1] > 2:
            stalls.append((t, t_end))
        if len(late) % STEAL_EVERY == 0:
            steal_t.append(t_end)
            steal_ms.append(sum(read_steal_ms().values()))
    last = read_steal_ms()
    a = np.array(late or [0.0])
    print(f"host jitter during the run ({len(a)} sleeps of 1 ms): oversleep p50 {np.percentile(a, 50):.3f} "
          f"p99.9 {np.percentile(a, 99.9):.3f} max {a.max():.2f} ms; >2 ms: {(a > 2).sum()}, >5 ms: {(a > 5).sum()}",
          flush=True)  # fmt: skip
    if not first:
        return
    per_cpu = {cpu: last[cpu] - ms for cpu, ms in first.items() if cpu in last}
    # a stall "had steal" when the count rose between the read before it and the read after it
    # (one tick either side: the kernel books steal at its next tick)
    with_steal = 0
    for start, stop_t in stalls:
        i = max(bisect.bisect_right(steal_t, start - 0.011) - 1, 0)
        j = min(bisect.bisect_left(steal_t, stop_t + 0.011), len(steal_t) - 1)
        with_steal += steal_ms[j] > steal_ms[i]
    print(f"hypervisor steal during the run: {sum(per_cpu.values()):.0f} ms over {len(per_cpu)} vCPUs "
          f"(most from one: {max(per_cpu.values(), default=0):.0f} ms; vCPUs with any: "
          f"{sum(v > 0 for v in per_cpu.values())}); sleeps >2 ms late with steal around them: "
          f"{with_steal} of {len(stalls)}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
