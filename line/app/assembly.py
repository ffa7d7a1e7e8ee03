"""Build a station from its config file: the one place where configuration becomes objects
(constructor injection everywhere below)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from camera.config import CameraConfig
from camera.source import FrameSource, open_source, validate_options
from inference.engine import open_engine
from line.app.config import StationConfig
from line.errors import ConfigError, Problem, problems_from_validation
from line.loop.alarms import AlarmKind
from line.loop.station import Station
from line.recipes.book import RecipeBook, absolute, budget_problem, engine_latency_ms, file_kind, read_yaml
from line.recipes.model import Recipe
from line.results.archive import ImageArchive
from line.results.log import ResultLog
from line.uplink.config import uplink_problems
from plc.vocabulary import ResultSink

log = logging.getLogger(__name__)

_PATH_OPTIONS = ("folder", "cti", "producers", "state_dir")


def load_station_config(path: Path) -> StationConfig:
    """Parse and validate; relative paths resolve against the config file's folder. Camera
    options go through their backend's own validation, so a typo there is a problem reported
    here, not a traceback when the camera opens."""
    data = read_yaml(path)
    kind = file_kind(path, data)
    if kind != "station":
        what = "a recipe" if kind == "recipe" else "an opcua_server fragment"
        raise ConfigError([Problem(str(path), "", f"this is {what}, not a station config")])
    assert isinstance(data, dict)  # noqa: S101 - file_kind refuses anything else
    base = path.parent.resolve()
    for section, key in (("recipes", "dir"), ("storage", "dir"), ("engine", "engine_cache_dir")):
        value = data.get(section, {}).get(key) if isinstance(data.get(section), dict) else None
        if isinstance(value, str) and not Path(value).is_absolute():
            data[section][key] = str(absolute(base, value))
    mes = data.get("opcua_server")
    if isinstance(mes, dict):
        for key in ("state_dir", "trust_dir"):
            mes[key] = _resolve_paths(mes.get(key), base)
        for key in [k for k in ("state_dir", "trust_dir") if mes.get(k) is None]:
            mes.pop(key)
    uplink: dict[str, Any] = data["uplink"] if isinstance(data.get("uplink"), dict) else {}  # its files: from the config's folder
    for owner, key in ((uplink, "password_file"), *((uplink.get("tls"), k) for k in ("ca_file", "cert_file", "key_file"))):
        if isinstance(owner, dict) and isinstance(owner.get(key), str) and not Path(owner[key]).is_absolute():
            owner[key] = str(absolute(base, owner[key]))
    for section, default in (("recipes", "../recipes"), ("storage", "../var/station")):
        if data.get(section) is None:  # absent, or a section whose keys are all commented out
            data[section] = {}
        if isinstance(data[section], dict):  # anything else is reported by the validation below
            data[section].setdefault("dir", str(absolute(base, default)))
    cameras = data.get("cameras")
    problems: list[Problem] = []
    for index, camera in enumerate(cameras if isinstance(cameras, list) else []):
        options = camera.get("options") if isinstance(camera, dict) else None
        if isinstance(options, dict):
            for key in _PATH_OPTIONS:
                options[key] = _resolve_paths(options.get(key), base)
            for key in [k for k, v in options.items() if v is None and k in _PATH_OPTIONS]:
                del options[key]
        problems += _camera_problems(path, index, camera)
    try:
        config = StationConfig.model_validate(data)
    except ValidationError as exc:
        seen = {(p.path, p.reason) for p in problems}
        problems += [p for p in problems_from_validation(path, exc) if (p.path, p.reason) not in seen]
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    return config


def _camera_problems(path: Path, index: int, raw: object) -> list[Problem]:
    """The camera's ``kind`` and its ``options`` through the backend's own ``Options`` model."""
    if not isinstance(raw, dict) or "kind" not in raw:
        return []  # reported by the station model
    where = f"cameras.{index + 1}"
    try:
        camera = CameraConfig.model_validate(raw)
    except ValidationError:
        return []  # reported by the station model
    try:
        validate_options(camera)
    except ValidationError as exc:
        return problems_from_validation(path, exc, prefix=f"{where}.options")
    except ValueError as exc:  # unknown kind
        return [Problem(str(path), f"{where}.kind", str(exc))]
    except ImportError as exc:
        return [Problem(str(path), f"{where}.kind", f"camera kind {camera.kind!r} is not installed here: {exc}")]
    return []


def _resolve_paths(value: Any, base: Path) -> Any:
    if isinstance(value, str) and value and not Path(value).is_absolute():
        return str(absolute(base, value))
    if isinstance(value, list):
        return [_resolve_paths(v, base) for v in value]
    return value


@dataclass(frozen=True)
class StartRecipe:
    """The recipe a station starts on, and why (the start-up log and the snapshot say it)."""

    recipe_id: str
    reason: str
    warning: str | None = None  # a saved recipe that could not be restored


def state_file(config: StationConfig) -> Path:
    """Where the last switched recipe is kept, so a restart resumes the product on the line."""
    return config.storage.dir / "active_recipe"


def recipes_folder_problems(file: str, config: StationConfig) -> list[Problem]:
    folder = config.recipes.dir
    if not folder.is_dir():
        return [Problem(file, "recipes.dir", f"recipes folder not found: {folder}")]
    return []


def storage_problems(file: str, config: StationConfig) -> list[Problem]:
    """The folders the station writes must be writable (or creatable) by this user: the result
    log, the journal and the saved recipe live in ``storage.dir``, the OPC UA server's
    certificate in its ``state_dir``; none of them may fail after the start."""
    folders = [("storage.dir", config.storage.dir)]
    if config.opcua_server is not None:
        folders.append(("opcua_server.state_dir", config.opcua_server.state_dir))
    problems = []
    for field, folder in folders:
        reason = _unwritable(folder)
        if reason:
            problems.append(Problem(file, field, reason))
    return problems


def _unwritable(folder: Path) -> str | None:
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "folder" if existing == folder else f"folder does not exist and {existing}"
        return f"{what} is not writable by this user: {folder}"
    return None


def choose_start_recipe(file: str, book: RecipeBook, config: StationConfig, requested: str | None) -> StartRecipe:
    """The recipe asked for (``--recipe``, else ``recipes.active``), which must exist and be
    valid: the station never starts on another product's recipe. The recipe saved at the last
    switch wins over ``recipes.active`` (not over ``--recipe``) while it is still valid."""
    if requested is not None:
        if requested not in book.recipes:
            raise ConfigError(_missing_recipe(file, "--recipe", requested, book))
        return StartRecipe(requested, "requested with --recipe")
    configured = config.recipes.active
    if configured is not None:
        if configured not in book.recipes:
            raise ConfigError(_missing_recipe(file, "recipes.active", configured, book))
        chosen, why = configured, "recipes.active in the station config"
    else:
        if not book.recipes:
            raise ConfigError([Problem(file, "recipes.dir", f"no valid recipe in {book.directory}"),
                               *(p for problems in book.invalid.values() for p in problems)])  # fmt: skip
        chosen, why = book.default_id(), "the lowest code (recipes.active is not set)"
    saved_file = state_file(config)
    try:
        saved = saved_file.read_text().strip() if saved_file.is_file() else ""
    except (OSError, UnicodeDecodeError) as exc:
        saved, why = "", f"{why}; the saved recipe in {saved_file} is unreadable: {exc}"
    if not saved or saved == chosen:
        return StartRecipe(chosen, why)
    if saved in book.recipes:
        return StartRecipe(saved, f"restored from {saved_file} (the last switch); the config asks for {chosen}")
    state = "invalid" if _invalid_file(book, saved) else "no longer in the recipes folder"
    warning = f"the saved recipe {saved!r} ({saved_file}) is {state}; started on {chosen}: {why}"
    return StartRecipe(chosen, warning, warning)


def _invalid_file(book: RecipeBook, recipe_id: str) -> str | None:
    """The invalid file that would hold ``recipe_id`` (by its ``id:`` or its file name)."""
    for name in book.invalid:
        if Path(name).stem == recipe_id:
            return name
        try:
            data = read_yaml(Path(name))
        except ConfigError:
            continue
        if isinstance(data, dict) and data.get("id") == recipe_id:
            return name
    return None


def _missing_recipe(file: str, field: str, recipe_id: str, book: RecipeBook) -> list[Problem]:
    invalid = _invalid_file(book, recipe_id)
    if invalid is not None:
        return [Problem(file, field, f"recipe {recipe_id!r} is invalid ({invalid}); the station does not start on another recipe"),
                *book.invalid[invalid]]  # fmt: skip
    known = ", ".join(sorted(book.recipes)) or "none"
    return [Problem(file, field, f"recipe {recipe_id!r} not found in {book.directory} (valid recipes: {known})")]


def open_recipe_book(config: StationConfig, engine_factory: Callable[[Recipe], Any],
                     validate_camera: Callable[[Recipe], None] | None = None) -> RecipeBook:  # fmt: skip
    first = config.cameras[0]
    shape = (int(first.options.get("height", 1024)), int(first.options.get("width", 1280)), str(first.options.get("pixel_format", "Mono8")))
    return RecipeBook(config.recipes.dir, engine_factory, config.recipes.warm_max, validate_camera, shape,
                      warm_batch=_batch(config))  # fmt: skip


def _batch(config: StationConfig) -> int:
    """The batch the station runs: cameras batched when the engine takes more than one."""
    return config.engine.max_batch if config.engine.max_batch > 1 and len(config.cameras) > 1 else 1


def check_station(file: str, config: StationConfig, requested: str | None = None,
                  validate_camera: Callable[[Recipe], None] | None = None) -> tuple[RecipeBook, StartRecipe]:  # fmt: skip
    """Everything ``run`` checks before it opens a camera or a port: the recipes folder, the
    recipe to start on, the folders it writes. ``validate`` calls the same function, so the
    two refuse the same files with the same reasons."""
    problems = recipes_folder_problems(file, config) + storage_problems(file, config) + uplink_problems(file, config.uplink)
    if problems:
        raise ConfigError(problems)

    def engine_factory(recipe: Recipe) -> Any:
        return open_engine(recipe.detector_spec(), config.engine)

    book = open_recipe_book(config, engine_factory, validate_camera)
    try:
        return book, choose_start_recipe(file, book, config, requested)
    except ConfigError:
        book.close()
        raise


def build_station(config: StationConfig, *, active: str | None = None, file: str = "station config") -> Station:
    """Check first (nothing opened), then open the cameras, the recipe, the log and the sinks.
    ``file`` names the config in problems."""
    sources: list[FrameSource] = []

    def validate_camera(recipe: Recipe) -> None:
        for source in sources:
            source.validate_settings(recipe.camera)

    book, start = check_station(file, config, active, validate_camera)
    try:
        for camera in config.cameras:
            sources.append(open_source(camera))
        first = config.cameras[0]
        # cross-camera batching; on the GPU padded to one shape, so one CUDA graph serves every batch
        batching = _batch(config) > 1
        pad_to = config.engine.max_batch if batching and config.engine.device == "cuda" else None
        storage = config.storage.dir
        saved = state_file(config)
        if start.warning:
            log.warning("%s", start.warning)
        first_switch = book.switch(start.recipe_id, "startup", reason=start.reason)
        if not first_switch.ok:
            raise ConfigError([Problem(file, "recipes.active", f"recipe {start.recipe_id!r} cannot start: {first_switch.message}")])
        log.warning("active recipe %s: %s", start.recipe_id, start.reason)
        archive = ImageArchive(storage / "ng", config.storage.archive_max_images, config.storage.archive_format)
        result_log = ResultLog(storage / "results.db", archive if config.storage.archive_ng_images else None,
                               config.storage.log_queue_size)  # fmt: skip
        if result_log.recovered:
            log.warning("recovered %d verdicts from the journal of an earlier run", result_log.recovered)
        station = Station(
            config.station.id, book, sources, [], result_log,
            queue_size=config.station.queue_size, overflow_policy=config.station.overflow_policy,
            fetch_timeout_s=first.fetch_timeout_ms / 1000, archive_ng=config.storage.archive_ng_images,
            max_batch=config.engine.max_batch, pad_to=pad_to, batch_wait_s=config.station.batch_wait_ms / 1000,
            early_launch=config.station.early_launch, gc_freeze=config.station.gc_freeze,
            retire_decided=config.station.retire_decided,
            recipe_watch_interval_s=config.recipes.watch_interval_s if config.recipes.watch else None,
        )  # fmt: skip
        if start.warning:
            station.raise_alarm(start.warning, AlarmKind.STATION)
        _check_budget(station, book)
        for src in sources:  # the recipe's camera block goes to the device before the first frame
            src.apply_settings(book.active.recipe.camera)  # type: ignore[union-attr]
        book.listeners.append(lambda new, old, source, user: _persist_active(saved, new.recipe.id))
        book.listeners.append(lambda new, old, source, user: _apply_camera(station, new.recipe))
        _persist_active(saved, start.recipe_id)
        station.sinks.extend(build_sinks(config, station))
        if config.uplink is not None and config.uplink.enabled:
            from line.uplink.attach import attach_uplink

            station.sinks.append(attach_uplink(config.uplink, station, storage, file))
        return station
    except BaseException:
        for source in sources:
            source.close()
        book.close()
        raise


def _check_budget(station: Station, book: RecipeBook) -> None:
    """After warm-up: a recipe whose engine cannot meet its cycle budget is an alarm at start
    (every part would otherwise be a silent fail-safe)."""
    active = book.active
    if active is None or book.warm_shape is None:
        return
    height, width, fmt = book.warm_shape
    camera = active.recipe.camera
    measured = engine_latency_ms(active.engine, camera.height or height, camera.width or width,
                                 camera.pixel_format or fmt, book.warm_batch)  # fmt: skip
    problem = budget_problem(active.recipe, measured)
    log.info("recipe %s: engine %.2f ms per frame, budget %g ms", active.recipe.id, measured, active.recipe.cycle_budget_ms)
    if problem is not None:
        station.raise_alarm(problem, AlarmKind.ENGINE_BELOW_BUDGET)


def _apply_camera(station: Station, recipe: Recipe) -> None:
    """After a switch: the settings were validated during preparation, so a refusal here is a
    device fault — alarmed, and the station goes on deciding (fail-safe if frames stop)."""
    for lane in station.lanes:
        try:
            lane.source.apply_settings(recipe.camera)
        except Exception as exc:
            station.camera_event(lane.camera_id, "camera_settings", f"recipe {recipe.id}: {exc}")


def _persist_active(state_file: Path, recipe_id: str) -> None:
    state_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = state_file.with_suffix(".tmp")
    tmp.write_text(recipe_id + "\n")
    tmp.replace(state_file)


def build_sinks(config: StationConfig, station: Station) -> list[ResultSink]:
    sinks: list[ResultSink] = []
    if config.plc.modbus_server is not None and config.plc.modbus_server.enabled:
        from plc.modbus_server import ModbusServerSink

        sinks.append(ModbusServerSink(config.plc.modbus_server, requests=station))
    if config.plc.modbus_client is not None and config.plc.modbus_client.enabled:
        from plc.modbus_client import ModbusClientSink

        sinks.append(ModbusClientSink(config.plc.modbus_client, requests=station))
    if config.plc.opcua_client is not None:
        from plc.opcua_client import OpcUaClientSink

        sinks.append(OpcUaClientSink(config.plc.opcua_client))
    if config.opcua_server is not None:
        sinks.append(build_mes_sink(config, station))
    return sinks


def build_mes_sink(config: StationConfig, station: Station) -> ResultSink:
    """The OPC UA server for MES runs in its own process; the station only enqueues."""
    import functools

    from line.mes.process import OpcUaPublisherSink
    from line.mes.wiring import open_result_history

    assert config.opcua_server is not None  # noqa: S101
    mes = config.opcua_server

    def select_recipe(recipe_id: str, source: str, user: str) -> tuple[bool, str]:
        if recipe_id not in station.book.recipes:
            return False, f"unknown recipe {recipe_id!r}"
        result = station.request_switch(recipe_id, source, user)
        return result.ok, result.message

    def control(action: str, source: str, user: str) -> tuple[bool, str]:
        result = station.request_control(action, source, user)
        return result.ok, result.message

    history = functools.partial(open_result_history, config.storage.dir / "results.db")
    return OpcUaPublisherSink(mes, history, sorted(station.book.recipes), select_recipe, control=control)
