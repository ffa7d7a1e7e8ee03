"""Does a shared GPU machine stall our GPU work with nothing of ours running beside it?

Runs alone, before or after a bench round: every ~2 ms it enqueues a fixed matrix product
(≈0.5 ms of device time, about the network's share of a station's cycle) between two CUDA
events and waits for it. Three figures per call: the host round trip (enqueue → wait returns),
the device time between the events, and whether the hypervisor took a vCPU around it
(``tools.bench.host_steal``). A round trip far above the device time with steal around it is the host;
a long device time is the GPU itself (clocks, another context, the link); a long round trip
with neither is the guest (the waiting thread woke late).

    python3 tools/gpu/device_stall_probe.py [SECONDS]   # bench_round.sh step `stall`
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import cupy as cp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tools.bench.host_steal import read_steal_ms  # noqa: E402

N = 4096  # fp16 product: 2*N^3 = 137 GFLOP


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 20.0
    a = cp.random.random((N, N)).astype(cp.float16)
    b = cp.random.random((N, N)).astype(cp.float16)
    out = cp.empty_like(a)
    stream = cp.cuda.Stream(non_blocking=True)
    e0, e1 = cp.cuda.Event(), cp.cuda.Event()
    with stream:
        for _ in range(50):
            cp.matmul(a, b, out=out)
        stream.synchronize()
        rows: list[tuple[float, float, float]] = []  # round trip ms, device ms, steal ms around
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            before = sum(read_steal_ms().values())
            t0 = time.perf_counter()
            e0.record(stream)
            cp.matmul(a, b, out=out)
            e1.record(stream)
            e1.synchronize()
            trip = (time.perf_counter() - t0) * 1e3
            rows.append((trip, cp.cuda.get_elapsed_time(e0, e1), sum(read_steal_ms().values()) - before))
            time.sleep(0.0015)
    r = np.array(rows)
    trip_ms, dev, steal = r[:, 0], r[:, 1], r[:, 2]
    p50 = float(np.percentile(dev, 50))
    slow_dev = dev > 2 * p50
    slow_trip = (trip_ms > dev + 1.0) & ~slow_dev
    print(f"device stall probe, {len(r)} products of {p50:.3f} ms (p50 device time), {seconds:.0f} s:")
    print(f"  device time p99.9 {np.percentile(dev, 99.9):.3f} max {dev.max():.2f} ms; over 2x p50: {slow_dev.sum()} "
          f"(with steal around: {(slow_dev & (steal > 0)).sum()})")  # fmt: skip
    print(f"  round trip p50 {np.percentile(trip_ms, 50):.3f} p99.9 {np.percentile(trip_ms, 99.9):.3f} max {trip_ms.max():.2f} ms; "
          f"more than 1 ms above its device time: {slow_trip.sum()} (with steal around: {(slow_trip & (steal > 0)).sum()})")  # fmt: skip
    print(f"  steal during the probe: {steal.sum():.0f} ms (calls with any: {(steal > 0).sum()})", flush=True)


if __name__ == "__main__":
    main()
