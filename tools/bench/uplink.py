"""``linecheck bench --what uplink``: does a dead plant broker move the station?

The station runs the demo model at 20 parts/s (``--rate-hz``) with the MQTT uplink configured
(line/uplink, JSON or ``--uplink-sparkplug``), in four runs of ``--duration`` seconds (default
20), in ABAB order: against a Debian ``mosquitto`` this bench starts on a free port (up), then
against a free port nothing listens on (down: every part piles up in the disk outbox while the
link reconnects with back-off), up again, down again. Each run is a fresh station (book, engine) and a
fresh outbox. Reported: the station's t_ready -> verdict p50 / p99 per run, the run-to-run spread of
the two up runs and the change down against up. Target (issue 25): down within the spread.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
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
from line.uplink.attach import attach_uplink
from line.uplink.config import UplinkConfig


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Broker:
    """A plain mosquitto on loopback (no login, no persistence): the bench measures the
    station, not the broker's security."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("mosquitto")
        if binary is None:
            raise SystemExit("bench --what uplink: Debian mosquitto is not installed (apt-get install mosquitto)")
        self.port = _free_port()
        conf = folder / "mosquitto.conf"
        conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        self.proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("bench --what uplink: mosquitto did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def run_uplink_bench(args: argparse.Namespace, duration_s: float = 20.0, rate_hz: float = 20.0) -> dict[str, Any]:
    from tools.bench import inputs as bench

    recipe = bench.resolve_recipe("demo", args.width, args.height)
    options = bench.engine_options(args)
    frames, truths = bench.make_frames(args.width, args.height, args.pixel_format)
    sparkplug = {"group_id": "bench"} if args.uplink_sparkplug else None
    with tempfile.TemporaryDirectory(prefix="linecheck-uplink-bench-") as tmp:
        work = Path(tmp)
        (work / "recipes").mkdir()
        (work / "recipes" / "demo.yaml").write_text(yaml.safe_dump(recipe.model_dump(mode="json")))
        broker = _Broker(work)
        try:

            def one_run(name: str, port: int) -> dict[str, Any]:
                config = UplinkConfig.model_validate({"host": "127.0.0.1", "port": port, "sparkplug": sparkplug,
                                                      "reconnect_min_s": 1, "reconnect_max_s": 5})  # fmt: skip
                folder = work / name
                book = RecipeBook(work / "recipes", lambda r: open_engine(r.detector_spec(), options),
                                  warm_shape=(args.height, args.width, args.pixel_format))  # fmt: skip
                assert book.switch(recipe.id, "bench").ok  # noqa: S101  # the station's stop closes its book
                source = MemorySource("cam1", MemorySource.Options(rate_hz=rate_hz, pixel_format=args.pixel_format),
                                      images=frames, truths=truths)  # fmt: skip
                station = Station("bench", book, [source], [], ResultLog(folder / "results.db", None), fetch_timeout_s=0.5)
                uplink = attach_uplink(config, station, folder)
                station.sinks.append(uplink)
                station.start()
                try:
                    time.sleep(3)  # warm-up; the up runs are connected by now
                    station.stats.reset()
                    time.sleep(duration_s)
                    latency: dict[str, float] = station.snapshot()["latency_ms"]  # type: ignore[assignment]
                    figures = uplink.uplink.snapshot()
                finally:
                    station.stop()
                return {"latency_ms": latency, "link": figures["link"], "outbox_depth": figures["outbox_depth"],
                        "acked": figures["acked"]}  # fmt: skip

            runs = {"up": one_run("up", broker.port), "down": one_run("down", _free_port()),
                    "up_again": one_run("up_again", broker.port), "down_again": one_run("down_again", _free_port())}  # fmt: skip
        finally:
            broker.stop()

    up = runs["up"]["latency_ms"]

    def change(p99: float) -> float:
        return round((p99 - up["p99"]) / up["p99"] * 100, 1) if up["p99"] else float("nan")

    return {"runs": runs, "spread_p99_pct": change(runs["up_again"]["latency_ms"]["p99"]),
            "down_p99_change_pct": change(runs["down"]["latency_ms"]["p99"]),
            "down_again_p99_change_pct": change(runs["down_again"]["latency_ms"]["p99"]),
            "mode": "sparkplug" if sparkplug else "json", "rate_hz": rate_hz, "duration_s": duration_s}  # fmt: skip


def print_uplink(result: dict[str, Any]) -> None:
    for name, run in result["runs"].items():
        lat = run["latency_ms"]
        print(f"uplink ({result['mode']}) broker {name:<10} station t_ready->verdict p50 {lat['p50']:.2f} / "
              f"p99 {lat['p99']:.2f} ms   link {run['link']}, outbox {run['outbox_depth']}, acked {run['acked']}")  # fmt: skip
    print(f"p99 change against the first up run: up again {result['spread_p99_pct']:+.1f} % (run-to-run), "
          f"down {result['down_p99_change_pct']:+.1f} %, down again {result['down_again_p99_change_pct']:+.1f} %")
