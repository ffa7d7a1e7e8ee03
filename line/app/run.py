"""Running a station in the foreground: the status line once a second, SIGTERM/SIGINT, the
systemd notifications, the HMI next to it, and the exit status from the stop summary. Used by
``linecheck run`` and ``linecheck demo`` alike; the demo only adds its ground-truth scorer
(``line/app/demo.py``) through ``extra``."""

from __future__ import annotations

import json
import math
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

from line.app.config import StationConfig
from line.app.sdnotify import SystemdNotifier
from line.loop.station import Station
from line.loop.station_report import stop_ok
from plc.modbus_server import ModbusServerSink

ExtraSummary = Callable[[], dict[str, object]]  # more fields for the status line and the JSON summary


def summary(station: Station, extra: ExtraSummary | None = None) -> dict[str, object]:
    snap = station.snapshot()
    counts: dict[str, int] = snap["counts"]  # type: ignore[assignment]
    latency: dict[str, float] = snap["latency_ms"]  # type: ignore[assignment]
    ack: dict[str, float] = snap["plc_ack_ms"]  # type: ignore[assignment]
    return {
        "parts": sum(lane.parts for lane in station.lanes),
        "verdicts": counts.get("verdicts", 0),
        "rejects": counts.get("rejected", 0),
        "fail_safe": counts.get("fail_safe", 0),
        **(extra() if extra is not None else {}),
        "latency_ms": {k: number(latency[k]) for k in ("p50", "p99", "p999", "max")},
        "plc_ack_ms": {k: number(ack[k]) for k in ("p50", "p99", "p999", "max")},
        "dropped": sum(lane.queue.dropped for lane in station.lanes),
        "late_discarded": counts.get("late_discarded", 0),
        "fail_safe_reasons": {k.split(".", 1)[1]: v for k, v in counts.items() if k.startswith("fail_safe.")},
        "active_recipe": snap["active_recipe"],
        "log_written": station.result_log.written,
    }


def number(value: float | None) -> float | None:
    """JSON-safe: NaN (nothing measured yet) becomes None."""
    return None if value is None or math.isnan(value) else round(float(value), 4)


def status_line(elapsed: float, s: dict[str, object]) -> str:
    lat: dict[str, float | None] = s["latency_ms"]  # type: ignore[assignment]

    def f(v: object, spec: str) -> str:
        return "-" if v is None else format(v, spec)

    scored = ""
    if "recall" in s:
        scored = f" recall={f(s['recall'], '.3f')} false_reject={f(s.get('false_reject_rate'), '.3f')}"
    return (
        f"t={elapsed:5.1f}s parts={s['parts']} verdicts={s['verdicts']} rejects={s['rejects']} "
        f"fail_safe={s['fail_safe']}{scored} "
        f"latency p50={f(lat['p50'], '.1f')}ms p99={f(lat['p99'], '.1f')}ms recipe={s['active_recipe']}"
    )


def run_foreground(
    station: Station,
    duration_s: float | None,
    as_json: bool,
    out: TextIO = sys.stdout,
    interval_s: float = 1.0,
    stop_event: threading.Event | None = None,
    on_tick: Callable[[], None] | None = None,
    extra: ExtraSummary | None = None,
) -> dict[str, object]:
    """Run until ``duration_s`` passes or ``stop_event`` is set (a signal sets it)."""
    stop = stop_event or threading.Event()
    station.start()
    t0 = time.monotonic()
    try:
        while not stop.is_set():
            remaining = None if duration_s is None else duration_s - (time.monotonic() - t0)
            if remaining is not None and remaining <= 0:
                break
            stop.wait(interval_s if remaining is None else min(interval_s, remaining))
            print(status_line(time.monotonic() - t0, summary(station, extra)), file=out, flush=True)
            if on_tick is not None:
                on_tick()
    finally:
        station.stop()
    result = summary(station, extra)
    print(status_line(time.monotonic() - t0, result) + " (stopped)", file=out, flush=True)
    if as_json:
        print(json.dumps(result), file=out, flush=True)
    return result


def listening(station: Station, config: StationConfig, hmi_url: str | None) -> dict[str, object]:
    """Where a run with ``--free-ports`` listens (one JSON line on stderr)."""
    ports: dict[str, object] = {"hmi": hmi_url}
    for sink in station.sinks:
        if isinstance(sink, ModbusServerSink):
            ports["modbus_port"] = sink.port
    if config.opcua_server is not None:
        ports["opcua"] = config.opcua_server.endpoint
    return {"listening": ports}


def run_service(station: Station, config: StationConfig, duration_s: float | None, as_json: bool,
                announce_ports: bool = False, extra: ExtraSummary | None = None) -> int:  # fmt: skip
    """The station as a service in the foreground, with its HMI; 0 when every part seen got a
    verdict and none is lost, else 1 (the reason on stderr)."""
    stop = threading.Event()
    notifier = SystemdNotifier.from_environment()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    hmi = None
    flywheel = None
    if config.hmi.enabled:
        from functools import partial

        from line.flywheel.service import Flywheel
        from line.flywheel.shadow import candidate_engine, shadow_engine_options
        from line.hmi.server import start_hmi

        # the quality loop (capture, review, shadow, promotion) is served by the HMI
        shadow_options = shadow_engine_options(config.engine)
        flywheel = Flywheel(config.storage.dir / "flywheel", station, partial(candidate_engine, options=shadow_options))
        flywheel.attach()
        hmi = start_hmi(station, config.hmi, flywheel=flywheel)
    notifier.notify("READY=1")
    told: list[bool] = []

    def on_tick() -> None:
        notifier.notify("WATCHDOG=1")
        if announce_ports and not told:  # after the first second: every server listens by now
            told.append(True)
            print(json.dumps(listening(station, config, hmi.url if hmi else None)), file=sys.stderr, flush=True)

    try:
        run_foreground(station, duration_s, as_json, stop_event=stop, on_tick=on_tick, extra=extra)
    finally:
        if hmi is not None:
            hmi.close()
        if flywheel is not None:
            flywheel.close()
        notifier.notify("STOPPING=1")
        notifier.close()
    # counted from the station's own start: an operator's counter reset changes nothing here
    ended = station.stop_summary()
    if not stop_ok(ended):
        print(f"not every part is accounted for: {ended['parts']} parts, {ended['verdicts']} verdicts, "
              f"{ended['lost']} lost", file=sys.stderr)  # fmt: skip
    return 0 if stop_ok(ended) else 1
