"""Write-latency benchmark for the Modbus client role (``linecheck bench``).

``measure_write_latency`` starts the PLC simulator (``python -m tools.plc_simulator``) as a
subprocess on a free loopback port, connects a ``ModbusClientSink`` and publishes ``n``
verdicts, measuring verdict -> "PLC write acknowledged" (``publish`` call to
``Delivery.ack_time``: all requests of the result answered by the PLC), the number a user
of the line feels. Speed belongs here, not in tests.

Measured on the 2-core development container (loopback, simulator in its own process,
2 ms between verdicts, n=3000..5000, other jobs running: load average 7-8):

    sync client + lock (chosen), "separate" (2 requests): p50 0.38-0.58, p99 4.9-7.0,
                                                          p99.9 6.4-21, max 9.5-46 ms
    sync client + lock, "single" (1 request):             p50 0.25-0.37, p99 3.9-4.4,
                                                          p99.9 5.6-14, max 8.5-29 ms
    asyncio loop thread + run_coroutine_threadsafe, "separate" (same container, one run):
                                                          p50 1.0, p99 14.3, p99.9 32.5, max 67 ms

The asyncio variant pays two cross-thread wakeups per verdict and competes with the poll
task on the loop; the synchronous client is faster at every percentile, hence the choice.
Run: ``python -m tools.bench.plc_latency [n]``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Literal

from plc.config import ModbusClientConfig
from plc.modbus_client import ModbusClientSink
from plc.vocabulary import ResultCode, VerdictMessage


def percentiles_ms(samples_s: list[float]) -> dict[str, float]:
    """p50/p99/p99.9/max in milliseconds (nearest-rank) of samples in seconds."""
    if not samples_s:
        return {
            "p50_ms": float("nan"),
            "p99_ms": float("nan"),
            "p999_ms": float("nan"),
            "max_ms": float("nan"),
        }
    xs = sorted(samples_s)

    def rank(q: float) -> float:
        return xs[min(len(xs) - 1, max(0, int(round(q * len(xs))) - 1))] * 1000.0

    return {"p50_ms": rank(0.50), "p99_ms": rank(0.99), "p999_ms": rank(0.999), "max_ms": xs[-1] * 1000.0}


def start_simulator(*extra: str, timeout: float = 15.0) -> tuple[subprocess.Popen[str], int]:
    """Start ``python -m tools.plc_simulator --port 0 ...``; returns (process, port) once READY."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.plc_simulator", "--port", "0", *extra],
        stdout=subprocess.PIPE,
        text=True,
    )
    if proc.stdout is None:
        raise RuntimeError("no stdout pipe")
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        line = proc.stdout.readline()
        if line.startswith("READY "):
            return proc, int(line.split()[1])
        if not line and proc.poll() is not None:
            break
    stop_process(proc)
    raise RuntimeError("PLC simulator did not become ready")


def stop_process(proc: subprocess.Popen[str], timeout: float = 5.0) -> None:
    """Terminate and reap a child process (kill if it does not stop)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
    if proc.stdout is not None:
        proc.stdout.close()


def measure_write_latency(
    n: int,
    *,
    seq_write: Literal["separate", "single"] = "separate",
    interval_ms: float = 2.0,
    deadline_ms: float = 40.0,
    write_timeout_ms: float = 20.0,
    warmup: int = 50,
) -> dict[str, float | int | str]:
    """Publish ``n`` verdicts (one every ``interval_ms``) to a simulator subprocess and return
    p50/p99/p999/max of verdict -> write acknowledged in ms, plus delivery counts."""
    if n < 1:
        raise ValueError("n must be >= 1")
    proc, port = start_simulator()
    sink = ModbusClientSink(
        ModbusClientConfig(port=port, write_timeout_ms=write_timeout_ms, seq_write=seq_write)
    )
    samples: list[float] = []
    try:
        sink.start()
        if not sink.wait_connected(10.0):
            raise RuntimeError("could not connect to the PLC simulator")
        for i in range(warmup + n):
            t0 = time.perf_counter()
            v = VerdictMessage(
                result_id=f"bench-{i}",
                camera_id="bench",
                part_id=i,
                recipe_id="bench",
                recipe_code=1,
                result_code=ResultCode(i % 2),
                reject_mask=i % 2,
                defect_count=i % 3,
                processing_us=1000,
                deadline=t0 + deadline_ms / 1000.0,
            )
            d = sink.publish(v)
            if i >= warmup and d.delivered and d.ack_time is not None:
                samples.append(d.ack_time - t0)
            time.sleep(max(0.0, interval_ms / 1000.0 - (time.perf_counter() - t0)))
        counters = sink.counters()
    finally:
        sink.close()
        stop_process(proc)
    return {
        "n": n,
        "seq_write": seq_write,
        "delivered": len(samples),
        "undelivered": n - len(samples),
        "reconnects": counters["reconnects"],
        **percentiles_ms(samples),
    }


if __name__ == "__main__":
    import json

    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    for mode in ("separate", "single"):
        print(json.dumps(measure_write_latency(count, seq_write=mode)))  # type: ignore[arg-type]
