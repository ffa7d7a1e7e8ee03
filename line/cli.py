"""``linecheck`` command line: demo | run | validate | build | bench | recipe.

Only the CLI installs signal handlers and reads the environment (library code never does)."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from line.errors import ConfigError

if TYPE_CHECKING:
    from line.config import StationConfig
    from line.station import Station

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO_ROOT / "configs" / "demo.yaml"


def _cmd_run(args: argparse.Namespace) -> int:
    from line.assembly import build_station, load_station_config
    from line.demo import run_foreground
    from line.sdnotify import SystemdNotifier

    config = load_station_config(Path(args.config))
    if args.state_dir:
        config = config.model_copy(update={"storage": config.storage.model_copy(update={"dir": Path(args.state_dir).resolve()})})
    if args.free_ports:
        config = with_free_ports(config)
    if args.port is not None and config.plc.modbus_server is not None:  # an explicit port still wins
        server = config.plc.modbus_server.model_copy(update={"port": args.port})
        config = config.model_copy(update={"plc": config.plc.model_copy(update={"modbus_server": server})})
    station = build_station(config, active=args.recipe)
    stop = threading.Event()
    notifier = SystemdNotifier.from_environment()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    hmi = None
    if config.hmi.enabled:
        from line.hmi.server import start_hmi

        hmi = start_hmi(station, config.hmi)
    notifier.notify("READY=1")
    told: list[bool] = []

    def on_tick() -> None:
        notifier.notify("WATCHDOG=1")
        if args.free_ports and not told:  # after the first second: every server listens by now
            told.append(True)
            print(json.dumps(listening(station, config, hmi.url if hmi else None)), file=sys.stderr, flush=True)

    try:
        result = run_foreground(station, args.duration, args.json, stop_event=stop, on_tick=on_tick)
    finally:
        if hmi is not None:
            hmi.close()
        notifier.notify("STOPPING=1")
        notifier.close()
    return 0 if result["verdicts"] == result["parts"] else 1


def with_free_ports(config: StationConfig) -> StationConfig:
    """Modbus server, HMI and OPC UA server on ports the system picks (never a fixed one), so a
    run can go next to another (tests on a shared machine, a second demo)."""
    update: dict[str, object] = {}
    if config.plc.modbus_server is not None:
        server = config.plc.modbus_server.model_copy(update={"port": 0})
        update["plc"] = config.plc.model_copy(update={"modbus_server": server})
    update["hmi"] = config.hmi.model_copy(update={"port": 0})
    if config.opcua_server is not None and "endpoint" in config.opcua_server:
        url = urlsplit(str(config.opcua_server["endpoint"]))
        host = url.hostname or "127.0.0.1"
        # asyncua cannot report a port it was given as 0: take a free one from the system
        with socket.socket() as probe:
            probe.bind((host, 0))
            port = probe.getsockname()[1]
        endpoint = url._replace(netloc=f"{host}:{port}").geturl()
        update["opcua_server"] = {**config.opcua_server, "endpoint": endpoint}
    return config.model_copy(update=update)


def listening(station: Station, config: StationConfig, hmi_url: str | None) -> dict[str, object]:
    """Where a run with ``--free-ports`` listens (one JSON line on stderr)."""
    from plc.modbus_server import ModbusServerSink

    ports: dict[str, object] = {"hmi": hmi_url}
    for sink in station.sinks:
        if isinstance(sink, ModbusServerSink):
            ports["modbus_port"] = sink.port
    if config.opcua_server is not None:
        ports["opcua"] = config.opcua_server.get("endpoint")
    return {"listening": ports}


def _cmd_validate(args: argparse.Namespace) -> int:
    from line.assembly import load_station_config
    from line.recipes import load_recipe, read_yaml

    failed = False
    for name in args.files:
        path = Path(name)
        try:
            data = read_yaml(path)
            if isinstance(data, dict) and "cameras" in data:
                load_station_config(path)
            elif isinstance(data, dict) and set(data) == {"opcua_server"}:  # a config fragment
                _validate_opcua_fragment(path, data["opcua_server"])
            else:
                load_recipe(path)
            print(f"{path}: ok")
        except ConfigError as exc:
            failed = True
            for problem in exc.problems:
                print(problem, file=sys.stderr)
    return 1 if failed else 0


def _validate_opcua_fragment(path: Path, data: object) -> None:
    from pydantic import ValidationError

    from line.errors import problems_from_validation
    from plc.opcua_config import OpcUaServerConfig

    try:
        OpcUaServerConfig.model_validate(data)
    except ValidationError as exc:
        problems = problems_from_validation(path, exc)
        raise ConfigError([type(p)(p.file, f"opcua_server.{p.path}".rstrip("."), p.reason) for p in problems]) from None


def _cmd_build(args: argparse.Namespace) -> int:
    from line.build import build_all

    return build_all(Path(args.config), force=args.force)


def _cmd_bench(args: argparse.Namespace) -> int:
    from line.bench import main as bench_main

    return bench_main(args)


def _cmd_recipe(args: argparse.Namespace) -> int:
    from line.control import recipe_command

    return recipe_command(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="linecheck", description="Inline inspection for production-line cameras")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    def add_run_options(p: argparse.ArgumentParser, default_config: Path | None) -> None:
        p.add_argument("-c", "--config", default=str(default_config) if default_config else None, required=default_config is None)
        p.add_argument("--duration", type=float, default=None, help="stop after SECONDS")
        p.add_argument("--json", action="store_true", help="last line: a JSON summary")
        p.add_argument("--recipe", default=None, help="recipe id to start with")
        p.add_argument("--state-dir", default=None, help="result log and archive folder (overrides the config)")
        p.add_argument("--port", type=int, default=None, help="Modbus server port (overrides the config)")
        p.add_argument("--free-ports", action="store_true",
                       help="Modbus, HMI and OPC UA on free ports; one JSON line on stderr says which")  # fmt: skip

    demo = sub.add_parser("demo", help="virtual line on embedded defaults (synthetic camera, ONNX Runtime CPU, Modbus server)")
    add_run_options(demo, DEMO_CONFIG)
    demo.set_defaults(func=_cmd_run)
    run = sub.add_parser("run", help="run a station from its config")
    add_run_options(run, None)
    run.set_defaults(func=_cmd_run)
    validate = sub.add_parser("validate", help="check recipe and station files; every problem as file: field: reason")
    validate.add_argument("files", nargs="+")
    validate.set_defaults(func=_cmd_validate)
    build = sub.add_parser("build", help="prebuild TensorRT engines for every recipe")
    build.add_argument("-c", "--config", default=str(DEMO_CONFIG))
    build.add_argument("--force", action="store_true")
    build.set_defaults(func=_cmd_build)
    bench = sub.add_parser("bench", help="latency and throughput: pipeline vs naive loop vs raw engine")
    from line.bench_args import add_bench_arguments

    add_bench_arguments(bench)
    bench.set_defaults(func=_cmd_bench)
    recipe = sub.add_parser("recipe", help="recipes of a running service")
    recipe.add_argument("action", choices=["switch", "list"])
    recipe.add_argument("recipe_id", nargs="?")
    recipe.add_argument("--url", default="http://127.0.0.1:8080")
    recipe.add_argument("--user", default=None)
    recipe.set_defaults(func=_cmd_recipe)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
