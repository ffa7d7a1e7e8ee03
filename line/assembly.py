"""Build a station from its config file: the one place where configuration becomes objects
(constructor injection everywhere below)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from camera.source import FrameSource, open_source
from inference.engine import open_engine
from line.archive import ImageArchive
from line.config import StationConfig
from line.errors import ConfigError, Problem, problems_from_validation
from line.recipe_model import Recipe
from line.recipes import RecipeBook, absolute, read_yaml
from line.results import ResultLog
from line.station import Station
from plc.sink import ResultSink

log = logging.getLogger(__name__)

_PATH_OPTIONS = ("folder", "cti", "producers", "state_dir")


def load_station_config(path: Path) -> StationConfig:
    """Parse and validate; relative paths resolve against the config file's folder."""
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError([Problem(str(path), "", "a station config must be a YAML mapping")])
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
    for section, default in (("recipes", "../recipes"), ("storage", "../var/station")):
        if data.get(section) is None:  # absent, or a section whose keys are all commented out
            data[section] = {}
        if isinstance(data[section], dict):  # anything else is reported by the validation below
            data[section].setdefault("dir", str(absolute(base, default)))
    cameras = data.get("cameras")
    for camera in cameras if isinstance(cameras, list) else []:
        options = camera.get("options") if isinstance(camera, dict) else None
        if isinstance(options, dict):
            for key in _PATH_OPTIONS:
                options[key] = _resolve_paths(options.get(key), base)
            for key in [k for k, v in options.items() if v is None and k in _PATH_OPTIONS]:
                del options[key]
    try:
        return StationConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(problems_from_validation(path, exc)) from None


def _resolve_paths(value: Any, base: Path) -> Any:
    if isinstance(value, str) and value and not Path(value).is_absolute():
        return str(absolute(base, value))
    if isinstance(value, list):
        return [_resolve_paths(v, base) for v in value]
    return value


def build_station(config: StationConfig, *, active: str | None = None) -> Station:
    sources: list[FrameSource] = []
    try:
        for camera in config.cameras:
            sources.append(open_source(camera))
        first = config.cameras[0]
        width = int(first.options.get("width", 1280))
        height = int(first.options.get("height", 1024))
        fmt = str(first.options.get("pixel_format", "Mono8"))

        def engine_factory(recipe: Recipe) -> Any:
            return open_engine(recipe.detector_spec(), config.engine)

        def validate_camera(recipe: Recipe) -> None:
            for source in sources:
                source.validate_settings(recipe.camera)

        # cross-camera batching; on the GPU padded to one shape, so one CUDA graph serves every batch
        batching = config.engine.max_batch > 1 and len(sources) > 1
        pad_to = config.engine.max_batch if batching and config.engine.device == "cuda" else None
        book = RecipeBook(config.recipes.dir, engine_factory, config.recipes.warm_max, validate_camera, (height, width, fmt),
                          warm_batch=config.engine.max_batch if batching else 1)  # fmt: skip
        storage = config.storage.dir
        state_file = storage / "active_recipe"
        wanted = active or (state_file.read_text().strip() if state_file.exists() else None) or config.recipes.active
        if wanted not in book.recipes:
            wanted = config.recipes.active if config.recipes.active in book.recipes else book.default_id()
        first_switch = book.switch(wanted, "startup")
        if not first_switch.ok:
            raise ConfigError([Problem(str(config.recipes.dir), "recipes.active", first_switch.message)])
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
            early_launch=config.station.early_launch,
        )  # fmt: skip
        for src in sources:  # the recipe's camera block goes to the device before the first frame
            src.apply_settings(book.active.recipe.camera)  # type: ignore[union-attr]
        book.listeners.append(lambda new, old, source, user: _persist_active(state_file, new.recipe.id))
        book.listeners.append(lambda new, old, source, user: _apply_camera(station, new.recipe))
        _persist_active(state_file, wanted)
        station.sinks.extend(build_sinks(config, station))
        return station
    except BaseException:
        for source in sources:
            source.close()
        raise


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
        from plc.opcua_client import OpcUaClientConfig, OpcUaClientSink

        sinks.append(OpcUaClientSink(OpcUaClientConfig.model_validate(config.plc.opcua_client)))
    if config.opcua_server is not None:
        sinks.append(build_mes_sink(config, station))
    return sinks


def build_mes_sink(config: StationConfig, station: Station) -> ResultSink:
    """The OPC UA server for MES runs in its own process; the station only enqueues."""
    import functools

    from line.mes import open_result_history
    from plc.opcua_config import OpcUaServerConfig
    from plc.opcua_process import OpcUaPublisherSink

    assert config.opcua_server is not None  # noqa: S101
    mes = OpcUaServerConfig.model_validate({"station_id": config.station.id, **config.opcua_server})

    def select_recipe(recipe_id: str, source: str, user: str) -> tuple[bool, str]:
        if recipe_id not in station.book.recipes:
            return False, f"unknown recipe {recipe_id!r}"
        result = station.request_switch(recipe_id, source, user)
        return result.ok, result.message

    history = functools.partial(open_result_history, config.storage.dir / "results.db")
    return OpcUaPublisherSink(mes, history, sorted(station.book.recipes), select_recipe)
