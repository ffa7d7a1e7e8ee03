"""``linecheck bench --what mes``: does MES load on the OPC UA server move the station?

The station runs the demo model at the demo's 20 parts/s with the OPC UA server in its own
process (production security: Basic256Sha256 SignAndEncrypt, a user, a trusted client
certificate). Its t_ready → verdict p99 is measured over the same duration: alone; while 20
clients are subscribed to ``ResultReady`` and 5 loop ``GetResults`` (the load runs in a process
of its own, as separate MES systems would); alone again (the run-to-run spread); and while 20
clients are subscribed to the OPC 40100 ``ResultReadyEvent`` on the Server object. Target: p99
changes by less than 10 %, and with the 40100 subscribers stays within the spread.
"""

from __future__ import annotations

import argparse
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from camera.memory import MemorySource
from inference.engine import open_engine
from line.loop.station import Station
from line.recipes.book import RecipeBook
from line.results.log import ResultLog

SUBSCRIBERS, POLLERS = 20, 5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_mes_bench(args: argparse.Namespace, duration_s: float = 30.0, rate_hz: float = 20.0) -> dict[str, Any]:
    """``args.mv_subscribers``: OPC 40100 subscribers of the last phase (0: no such phase)."""
    mv_subscribers = int(getattr(args, "mv_subscribers", SUBSCRIBERS))
    if mv_subscribers < 0:
        raise ValueError("--mv-subscribers must be 0 or more")
    from line.mes.config import OpcUaServerConfig, hash_password
    from line.mes.process import OpcUaPublisherSink
    from line.mes.wiring import open_result_history
    from tools.bench import inputs as bench
    from tools.bench.opcua_load import (
        LoadSpec,
        create_client_certificate,
        start_load_process,
        trust_client_certificate,
    )

    recipe = bench.resolve_recipe("demo", args.width, args.height)
    options = bench.engine_options(args)
    frames, truths = bench.make_frames(args.width, args.height, args.pixel_format)
    with tempfile.TemporaryDirectory(prefix="linecheck-mes-bench-") as tmp:
        work = Path(tmp)
        (work / "recipes").mkdir()
        (work / "recipes" / "demo.yaml").write_text(yaml.safe_dump(recipe.model_dump(mode="json")))
        book = RecipeBook(work / "recipes", lambda r: open_engine(r.detector_spec(), options),
                          warm_shape=(args.height, args.width, args.pixel_format))  # fmt: skip
        assert book.switch(recipe.id, "bench").ok  # noqa: S101
        endpoint = f"opc.tcp://127.0.0.1:{_free_port()}/linecheck/"
        mes = OpcUaServerConfig.model_validate({
            "endpoint": endpoint, "station_id": "bench", "state_dir": work / "opcua",
            "users": {"mes": {"password_hash": hash_password("bench"), "role": "reader"}}})  # fmt: skip
        cert, key = create_client_certificate(work / "client")
        trust_client_certificate(mes.trusted_dir, cert)
        from functools import partial

        sink = OpcUaPublisherSink(mes, partial(open_result_history, work / "results.db"), [recipe.id],
                                  lambda rid, source, user: (False, "bench"))  # fmt: skip
        source = MemorySource("cam1", MemorySource.Options(rate_hz=rate_hz, pixel_format=args.pixel_format),
                              images=frames, truths=truths)  # fmt: skip
        station = Station("bench", book, [source], [sink], ResultLog(work / "results.db", None), fetch_timeout_s=0.5)
        station.start()
        try:
            time.sleep(3)  # warm-up

            def measure() -> dict[str, float]:
                station.stats.reset()
                time.sleep(duration_s)
                latency: dict[str, float] = station.snapshot()["latency_ms"]  # type: ignore[assignment]
                return latency

            def under_load(**load_args: Any) -> tuple[dict[str, float], dict[str, Any]]:
                spec = LoadSpec(endpoint=endpoint, station_id="bench", cert=cert, key=key, user="mes", password="bench",
                                duration_s=duration_s + 25, nice=19, **load_args)  # fmt: skip
                load = start_load_process(spec)
                time.sleep(20)  # the secure sessions connect (scrypt + RSA handshakes) before we measure
                latency = measure()
                return latency, load.result()

            alone = measure()
            loaded, counts = under_load(subscribers=SUBSCRIBERS, pollers=POLLERS)
            alone_again = measure()
            mv_loaded: dict[str, float] = {}
            mv_counts: dict[str, Any] = {}
            if mv_subscribers:
                mv_loaded, mv_counts = under_load(subscribers=mv_subscribers, pollers=0, machine_vision=True)
        finally:
            station.stop()

    def change(p99: float) -> float:
        return round((p99 - alone["p99"]) / alone["p99"] * 100, 1) if alone["p99"] else float("nan")

    return {"alone_ms": alone, "loaded_ms": loaded, "p99_change_pct": change(loaded["p99"]),
            "alone_again_ms": alone_again, "spread_p99_pct": change(alone_again["p99"]),
            "mv_subscribers": mv_subscribers, "mv_loaded_ms": mv_loaded,
            "mv_p99_change_pct": change(mv_loaded["p99"]) if mv_loaded else None, "mv_load": mv_counts,
            "subscribers": SUBSCRIBERS, "pollers": POLLERS, "load": counts, "rate_hz": rate_hz}  # fmt: skip
