"""``linecheck`` command line: demo | run | init | validate | build | bench | recipe | cameras.

Only the application layer (this module and line/app/run.py) installs signal handlers and reads the
environment (library code never does)."""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from line import demo_station
from line.errors import ConfigError, Problem

if TYPE_CHECKING:
    from line.app.config import StationConfig
    from line.recipes.book import RecipeBook

log = logging.getLogger(__name__)
DEMO_STATE_DIR = Path("var/demo")  # relative to the current folder: the shipped files may be read-only


def _cmd_run(args: argparse.Namespace, demo: bool = False) -> int:
    from line.app.assembly import build_station, load_station_config
    from line.app.run import ExtraSummary, run_service

    config = _with_overrides(load_station_config(Path(args.config)), args)
    # checks everything ``validate`` checks (recipes, the start recipe, storage) before it opens
    # a camera or a port; a refusal is ConfigError: the problems and exit status 2
    station = build_station(config, active=args.recipe, file=args.config)
    extra: ExtraSummary | None = None
    if demo:  # the synthetic camera's ground truth: recall and false rejects on the status line
        from line.app.demo import attach_scorer

        extra = attach_scorer(station).summary
    return run_service(station, config, args.duration, args.json, announce_ports=args.free_ports, extra=extra)


def _with_overrides(config: StationConfig, args: argparse.Namespace) -> StationConfig:
    """The command-line overrides ``run`` and ``validate`` share, so both check the same station.

    ``--state-dir`` moves everything the station writes (the result log and archive, and the OPC
    UA server's certificate in its ``opcua`` subfolder), so a station whose config lives in a
    read-only place (the demo shipped in the package) still runs."""
    if getattr(args, "state_dir", None):
        state_dir = Path(args.state_dir).resolve()
        update: dict[str, object] = {"storage": config.storage.model_copy(update={"dir": state_dir})}
        if config.opcua_server is not None:
            update["opcua_server"] = config.opcua_server.model_copy(update={"state_dir": state_dir / "opcua"})
        config = config.model_copy(update=update)
    if getattr(args, "free_ports", False):
        config = with_free_ports(config)
    if getattr(args, "port", None) is not None and config.plc.modbus_server is not None:  # an explicit port still wins
        server = config.plc.modbus_server.model_copy(update={"port": args.port})
        config = config.model_copy(update={"plc": config.plc.model_copy(update={"modbus_server": server})})
    return config


def _cmd_demo(args: argparse.Namespace) -> int:
    """The demo station shipped in the package, its state in ``var/demo`` of the current folder."""
    if args.config is None:
        args.config = str(demo_station.config_path())
        if args.state_dir is None:
            args.state_dir = str(DEMO_STATE_DIR)
    return _cmd_run(args, demo=True)


def _cmd_init(args: argparse.Namespace) -> int:
    target = Path(args.dir)
    try:
        written = demo_station.write_starter(target)
    except demo_station.StarterExistsError as exc:
        print(f"linecheck init: {exc}", file=sys.stderr)
        return 2
    config = target / demo_station.CONFIG_NAME
    for path in written:
        print(f"wrote {path}")
    print(f"""
Next steps:
  1. Run it as it is:        linecheck run -c {config}
     (HMI on http://127.0.0.1:8080, users viewer/operator/admin with passwords
     viewer-demo/operator-demo/admin-demo; results under {target / "var" / "demo"})
  2. Put your model and recipe in {target / "recipes"} (copy demo-parts.yaml, point
     model.onnx at your .onnx, set classes and reject rules), then check every file:
                             linecheck validate {config} {target / "recipes"}/*.yaml
  3. Set your camera, PLC and users in {config}; make password hashes with
                             python -m line.passwords
     and replace the demo users before the station goes on a network.""")
    return 0


def with_free_ports(config: StationConfig) -> StationConfig:
    """Modbus server, HMI and OPC UA server on ports the system picks (never a fixed one), so a
    run can go next to another (tests on a shared machine, a second demo)."""
    update: dict[str, object] = {}
    if config.plc.modbus_server is not None:
        server = config.plc.modbus_server.model_copy(update={"port": 0})
        update["plc"] = config.plc.model_copy(update={"modbus_server": server})
    update["hmi"] = config.hmi.model_copy(update={"port": 0})
    if config.opcua_server is not None:
        url = urlsplit(str(config.opcua_server.endpoint))
        host = url.hostname or "127.0.0.1"
        # asyncua cannot report a port it was given as 0: take a free one from the system
        with socket.socket() as probe:
            probe.bind((host, 0))
            port = probe.getsockname()[1]
        endpoint = url._replace(netloc=f"{host}:{port}").geturl()
        update["opcua_server"] = config.opcua_server.model_copy(update={"endpoint": endpoint})
    return config.model_copy(update=update)


def _cmd_validate(args: argparse.Namespace) -> int:
    from line.recipes.book import file_kind, load_recipe, read_yaml

    failed = False
    for name in args.files:
        path = Path(name)
        try:
            data = read_yaml(path)
            kind = file_kind(path, data)
            if kind == "station":
                print(f"{path}: ok ({_validate_station(path, args)})")
            elif kind == "opcua_fragment":
                assert isinstance(data, dict)  # noqa: S101 - file_kind says so
                _validate_opcua_fragment(path, data["opcua_server"])
                print(f"{path}: ok")
            else:
                load_recipe(path)
                print(f"{path}: ok")
        except ConfigError as exc:
            failed = True
            for problem in exc.problems:
                print(problem, file=sys.stderr)
    return 1 if failed else 0


def _validate_station(path: Path, args: argparse.Namespace) -> str:
    """What ``run`` checks before it opens anything (the same function), and with
    ``--engines`` each valid recipe's engine built, warmed and timed against its budget."""
    from line.app.assembly import check_station, load_station_config

    config = _with_overrides(load_station_config(path), args)
    book, start = check_station(str(path), config, args.recipe)
    try:
        for problems in book.invalid.values():  # not refused: ``run`` does not start on them either
            for problem in problems:
                print(f"warning: invalid recipe, never active: {problem}", file=sys.stderr)
        if start.warning:
            print(f"warning: {path}: {start.warning}", file=sys.stderr)
        if args.engines:
            _check_engines(path, book)
    finally:
        book.close()
    return f"starts on recipe {start.recipe_id}: {start.reason}"


def _check_engines(path: Path, book: RecipeBook) -> None:
    from line.recipes.book import budget_problem, engine_latency_ms

    problems = []
    for recipe_id in sorted(book.recipes):
        try:
            prepared = book.prepare(recipe_id)
        except Exception as exc:  # any engine failure is this recipe's problem, reported
            problems.append(Problem(str(book.files[recipe_id]), "model", f"engine cannot start: {type(exc).__name__}: {exc}"))
            continue
        height, width, fmt = book.warm_shape or (1024, 1280, "Mono8")
        camera = prepared.recipe.camera
        measured = engine_latency_ms(prepared.engine, camera.height or height, camera.width or width,
                                     camera.pixel_format or fmt, book.warm_batch)  # fmt: skip
        print(f"{path}: recipe {recipe_id}: engine {measured:.2f} ms per frame, budget {prepared.recipe.cycle_budget_ms:g} ms")
        reason = budget_problem(prepared.recipe, measured)
        if reason is not None:
            problems.append(Problem(str(book.files[recipe_id]), "cycle_budget_ms", reason))
    if problems:
        raise ConfigError(problems)


def _validate_opcua_fragment(path: Path, data: object) -> None:
    from pydantic import ValidationError

    from line.errors import problems_from_validation
    from line.mes.config import OpcUaServerConfig

    try:
        OpcUaServerConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(problems_from_validation(path, exc, prefix="opcua_server")) from None


def _cmd_build(args: argparse.Namespace) -> int:
    from line.app.build import build_all

    return build_all(Path(args.config) if args.config else demo_station.config_path(), force=args.force)


def _cmd_recipe(args: argparse.Namespace) -> int:
    from line.app.remote import recipe_command

    return recipe_command(args)


TOOL_COMMANDS = "linecheck.commands"  # entry-point group of the tools' subcommands (bench)


def add_tool_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Subcommands the tools package offers (``linecheck bench``), found by entry point: the
    runtime packages never import the tools, the tools register themselves here."""
    from importlib.metadata import entry_points

    for entry in sorted(entry_points(group=TOOL_COMMANDS), key=lambda e: e.name):
        try:
            register = entry.load()
        except ImportError as exc:  # a tool whose extra dependencies are missing: say so, go on
            log.debug("linecheck %s unavailable: %s", entry.name, exc)
            continue
        register(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="linecheck", description="Inline inspection for production-line cameras")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level (default: warnings only)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add_run_options(p: argparse.ArgumentParser, config_help: str, required: bool) -> None:
        p.add_argument("-c", "--config", default=None, required=required, metavar="FILE", help=config_help)
        p.add_argument("--duration", type=float, default=None, metavar="SECONDS", help="stop after SECONDS (default: run until Ctrl-C)")
        p.add_argument("--json", action="store_true", help="last line: a JSON summary")
        p.add_argument("--recipe", default=None, help="recipe id to start with")
        p.add_argument("--state-dir", default=None, metavar="DIR",
                       help="folder for the result log, image archive and OPC UA certificate (overrides the config)")
        p.add_argument("--port", type=int, default=None, help="Modbus server port (overrides the config)")
        p.add_argument("--free-ports", action="store_true",
                       help="Modbus, HMI and OPC UA on free ports; one JSON line on stderr says which")  # fmt: skip

    demo = sub.add_parser("demo", help="virtual line on embedded defaults (synthetic camera, ONNX Runtime CPU, Modbus server)",
                          description="Run the demo station shipped with linecheck: a synthetic camera, the demo model "
                                      "on ONNX Runtime (CPU), a Modbus server, the HMI and the OPC UA server.")
    add_run_options(demo, "station config (default: the shipped demo station, its state in ./var/demo)", required=False)
    demo.set_defaults(func=_cmd_demo)
    run = sub.add_parser("run", help="run a station from its config")
    add_run_options(run, "station config file (YAML)", required=True)
    run.set_defaults(func=_cmd_run)
    init = sub.add_parser("init", help="write an editable copy of the demo station (config, recipes, model) to start from",
                          description="Write the demo station (configs/demo.yaml, its recipes and model) into DIR for "
                                      "you to edit, and print what to do next. DIR must be new or empty.")
    init.add_argument("dir", metavar="DIR", help="new or empty folder to write the station into")
    init.set_defaults(func=_cmd_init)
    validate = sub.add_parser("validate", help="check recipe and station files as run would; every problem as file: field: reason")
    validate.add_argument("files", nargs="+", metavar="FILE", help="station config, recipe or opcua_server fragment (YAML)")
    validate.add_argument("--recipe", default=None, help="check starting on this recipe id, as run --recipe would")
    validate.add_argument("--state-dir", default=None, help="result log folder (overrides the config), as for run")
    validate.add_argument("--engines", action="store_true",
                          help="also build and warm each valid recipe's engine and time it against its cycle_budget_ms")  # fmt: skip
    validate.set_defaults(func=_cmd_validate)
    build = sub.add_parser("build", help="prebuild TensorRT engines for every recipe")
    build.add_argument("-c", "--config", default=None, metavar="FILE", help="station config (default: the shipped demo station)")
    build.add_argument("--force", action="store_true", help="rebuild engines that are already cached")
    build.set_defaults(func=_cmd_build)
    add_tool_commands(sub)
    from line.app.cameras import add_cameras_command

    add_cameras_command(sub)
    recipe = sub.add_parser("recipe", help="recipes of a running service")
    recipe.add_argument("action", choices=["switch", "list"], help="list the recipes, or switch to RECIPE_ID")
    recipe.add_argument("recipe_id", nargs="?", help="recipe to switch to (switch only)")
    recipe.add_argument("--url", default="http://127.0.0.1:8080", help="the station's HMI address (default: %(default)s)")
    recipe.add_argument("--user", default=None, help="HMI user (operator or admin to switch; default: $LINECHECK_USER or a prompt); "
                        "the password comes from $LINECHECK_PASSWORD or a prompt")
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
