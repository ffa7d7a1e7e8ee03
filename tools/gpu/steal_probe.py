"""Which of the station's activities makes a shared VM's host take vCPUs away (steal)?

Bench runs on a shared H100 VM showed 0.1-10 s of steal spread over all 16 vCPUs while the
station used 1-1.5 cores, and none with the machine idle or with 14 vCPUs spinning on pure CPU
work (``cpu_load_probe.py``). This runs each ingredient of a station's cycle alone for a few
seconds, at the 8-camera rate (1520 frames/s), beside a 1 ms sleeper, and prints the steal and
the sleeper's lateness per ingredient: thread wake-ups, page-fault churn, pinned host-to-device
copies of a Mono8 frame, small kernels waited for by spinning and by blocking.

    python3 tools/gpu/steal_probe.py [SECONDS]   # bench_round.sh step `steal`
"""

from __future__ import annotations

import mmap
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tools.bench.host_steal import read_steal_ms, steal_since  # noqa: E402

RATE_HZ = 1520.0
FRAME = 1280 * 1024


BODY_MS: list[float] = []  # how long each call of the running ingredient took


def paced(seconds: float, body: Callable[[], None], rate_hz: float = RATE_HZ) -> int:
    """Call ``body`` at ``rate_hz`` (sleeping between calls, as a station would), for ``seconds``."""
    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        t = time.perf_counter()
        body()
        BODY_MS.append((time.perf_counter() - t) * 1e3)
        n += 1
        wait = t0 + n / rate_hz - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
    return n


def run(name: str, seconds: float, work: Callable[[float], object]) -> None:
    late: list[float] = []
    done = threading.Event()

    def sleeper() -> None:
        while not done.is_set():
            t = time.perf_counter()
            time.sleep(0.001)
            late.append((time.perf_counter() - t - 0.001) * 1e3)

    before = read_steal_ms()
    s = threading.Thread(target=sleeper)
    s.start()
    work(seconds)
    done.set()
    s.join()
    steal = steal_since(before)
    a = np.array(late or [0.0])
    b = np.array(BODY_MS or [0.0])
    BODY_MS.clear()
    print(f"  {name:24} steal {steal['steal_ms']:6.0f} ms (most from one vCPU {steal['steal_max_cpu_ms']:4.0f}); "
          f"sleeper late p99.9 {np.percentile(a, 99.9):5.2f} max {a.max():6.2f} ms, >2 ms {(a > 2).sum()}; "
          f"each call p50 {np.percentile(b, 50):.3f} p99.9 {np.percentile(b, 99.9):.3f} max {b.max():.2f} ms, "
          f">10 ms {(b > 10).sum()}", flush=True)  # fmt: skip


def idle(seconds: float) -> None:
    time.sleep(seconds)


def wakeups(seconds: float) -> None:
    """16 threads waking every 1 ms: ~16 000 wake-ups/s (the 8-camera station: ~18 000/s)."""
    end = time.perf_counter() + seconds

    def beat() -> None:
        while time.perf_counter() < end:
            time.sleep(0.001)

    threads = [threading.Thread(target=beat) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def page_churn(seconds: float) -> None:
    """A fresh mapping per frame, written and dropped: 320 page faults a frame."""

    def body() -> None:
        m = mmap.mmap(-1, FRAME)
        m.write(b"\x01" * FRAME)
        m.close()

    paced(seconds, body)


def gpu_parts() -> tuple[Callable[[float], None], Callable[[float], None], Callable[[float], None], Callable[[float], None]]:
    import cupy as cp
    import cupyx
    from cuda.bindings import runtime

    host = cupyx.empty_pinned((FRAME,), dtype=np.uint8)
    host[:] = 7
    dev = cp.empty((FRAME,), dtype=cp.uint8)
    x = cp.zeros((1 << 16,), dtype=cp.float32)
    stream = cp.cuda.Stream(non_blocking=True)

    def h2d(seconds: float) -> None:
        def body() -> None:
            dev.set(host, stream=stream)
            stream.synchronize()

        paced(seconds, body)

    def h2d_max(seconds: float) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            t = time.perf_counter()
            for _ in range(50):
                dev.set(host, stream=stream)
            stream.synchronize()
            BODY_MS.append((time.perf_counter() - t) * 1e3)

    def kernels(flag: int) -> Callable[[float], None]:
        def go(seconds: float) -> None:
            runtime.cudaSetDeviceFlags(flag)

            def body() -> None:
                with stream:
                    x.__iadd__(1.0)
                stream.synchronize()

            for _ in range(100):  # the first waits after a flag change are not the steady state
                body()
            paced(seconds, body)
            runtime.cudaSetDeviceFlags(runtime.cudaDeviceScheduleAuto)

        return go

    return h2d, h2d_max, kernels(int(runtime.cudaDeviceScheduleSpin)), kernels(int(runtime.cudaDeviceScheduleBlockingSync))


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 8.0
    print(f"steal probe: each ingredient alone for {seconds:.0f} s at {RATE_HZ:.0f}/s where paced, beside a 1 ms sleeper")
    h2d, h2d_max, spin, block = gpu_parts()
    for name, work in [("idle", idle), ("thread wake-ups", wakeups), ("page-fault churn", page_churn),
                       ("pinned H2D 1.3 MB paced", h2d), ("pinned H2D back to back", h2d_max),
                       ("kernels, spin wait", spin), ("kernels, blocking wait", block), ("idle again", idle)]:  # fmt: skip
        run(name, seconds, work)


if __name__ == "__main__":
    main()
