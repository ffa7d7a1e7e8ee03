"""Host jitter beside a benchmark: how late a 1 ms sleep wakes, until SIGTERM (or ``SECONDS``).

A tail in the bench's figures means little unless we know whether the host itself stalled
at the time: this runs in parallel with the bench (its own process and core) and prints one
summary line when stopped. Stalls here are the host's, not the station's.

    python3 deploy/gpu/jitter.py [SECONDS]   # also bench_round.sh step `jitter` (10 s)
"""

from __future__ import annotations

import signal
import sys
import time

import numpy as np


def main() -> None:
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    end = time.perf_counter() + (float(sys.argv[1]) if len(sys.argv) > 1 else 3600.0)
    late: list[float] = []
    while not stop and time.perf_counter() < end:
        t = time.perf_counter()
        time.sleep(0.001)
        late.append((time.perf_counter() - t - 0.001) * 1e3)
    a = np.array(late or [0.0])
    print(f"host jitter during the run ({len(a)} sleeps of 1 ms): oversleep p50 {np.percentile(a, 50):.3f} "
          f"p99.9 {np.percentile(a, 99.9):.3f} max {a.max():.2f} ms; >2 ms: {(a > 2).sum()}, >5 ms: {(a > 5).sum()}",
          flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
