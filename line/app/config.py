"""The station configuration (``configs/*.yaml``), parsed once into frozen models and passed
in by constructor injection; nothing on the hot path reads files or the environment."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from camera.config import CameraConfig
from inference.config import EngineOptions
from line.config_model import ConfigModel
from line.mes.config import OpcUaServerConfig
from line.passwords import parse_hash
from line.uplink.config import UplinkConfig
from plc.config import Host, ModbusClientConfig, ModbusServerConfig, OpcUaClientConfig


class StationSection(ConfigModel):
    id: str = Field(default="station-1", min_length=1)
    queue_size: int = Field(default=4, ge=1, le=1024)
    # what happens when inference falls behind acquisition; every drop is counted and becomes
    # a fail-safe verdict for that part (a dropped frame is never a silent pass)
    overflow_policy: Literal["drop_oldest", "drop_newest"] = "drop_oldest"
    status_interval_s: float = Field(default=1.0, ge=0.01, le=3600)
    # several cameras batched (engine.max_batch > 1): how long a batch may wait for the other
    # cameras' frames of the same trigger before it runs without them
    batch_wait_ms: float = Field(default=1.0, ge=0.0, le=50.0)
    # one camera per engine call (no batching): the camera's thread starts the GPU on a frame
    # the moment it is ready, when the engine is idle (saves the hand-over to the inference thread)
    early_launch: bool = True
    # at start, everything loaded so far (models, schemas, libraries) is frozen out of the
    # garbage collector, so a full collection (which holds the GIL: every lane waits) no longer
    # walks it. False only to measure what the freeze buys
    gc_freeze: bool = True
    # an unbatched lane drops its decided parts from the watchdog's list at once, so the
    # watchdog does not wake at each decided part's deadline (a core taken from the engine on
    # a 2-core CPU). False only to measure what this buys
    retire_decided: bool = True


class RecipesSection(ConfigModel):
    dir: Path = Path("../recipes")
    # recipe id to start with; it must exist and be valid, or the station refuses to start.
    # None: the valid recipe with the lowest code (the start-up log says so)
    active: str | None = Field(default=None, min_length=1)
    warm_max: int = Field(default=2, ge=1, le=64)
    # the station polls the recipes folder while it runs (HMI or not): an edited, added or
    # removed file reloads the book; a bad file is listed as invalid and never becomes active
    watch: bool = True
    watch_interval_s: float = Field(default=1.0, gt=0)


class PlcSection(ConfigModel):
    modbus_server: ModbusServerConfig | None = ModbusServerConfig()
    modbus_client: ModbusClientConfig | None = None
    opcua_client: OpcUaClientConfig | None = None


class StorageSection(ConfigModel):
    dir: Path = Path("../var/station")
    archive_ng_images: bool = True
    archive_max_images: int = Field(default=500, ge=0, le=10_000_000)
    archive_format: Literal["png", "jpg"] = "png"
    log_queue_size: int = Field(default=1024, ge=1, le=10_000_000)


HmiRole = Literal["viewer", "qa", "operator", "admin"]


class HmiUser(ConfigModel):
    """One HMI login: a scrypt hash from ``python -m line.passwords``, never a password."""

    password_hash: str
    role: HmiRole

    @field_validator("password_hash")
    @classmethod
    def _hash_format(cls, value: str) -> str:
        _, _, _, salt, digest = parse_hash(value)  # ValueError names what is wrong
        if len(salt) < 8 or len(digest) < 16:
            raise ValueError("password_hash is a placeholder, not a hash; make one with python -m line.passwords")
        return value


class HmiSection(ConfigModel):
    enabled: bool = False
    host: Host = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    users: dict[str, HmiUser] = Field(default_factory=dict)
    # sessions, live view, shift boundaries
    session_ttl_s: float = Field(default=8 * 3600.0, gt=0)
    live_fps: float = Field(default=5.0, gt=0, le=30)
    live_max_width: int = Field(default=640, ge=64, le=4096)
    live_jpeg_quality: int = Field(default=80, ge=10, le=100)
    shift_starts: tuple[str, ...] = ("06:00", "14:00", "22:00")  # local HH:MM; counters/yield since the latest
    # Host header names the HMI answers to (DNS-rebinding guard); empty: loopback names and
    # ``host`` itself. List the names a reverse proxy forwards; "*" accepts any (docs/security.md)
    allowed_hosts: tuple[str, ...] = ()


class StationConfig(ConfigModel):
    station: StationSection = StationSection()
    recipes: RecipesSection = RecipesSection()
    cameras: tuple[CameraConfig, ...] = Field(min_length=1)
    engine: EngineOptions = EngineOptions()
    plc: PlcSection = PlcSection()
    opcua_server: OpcUaServerConfig | None = None
    storage: StorageSection = StorageSection()
    hmi: HmiSection = HmiSection()
    uplink: UplinkConfig | None = None  # the plant MQTT broker (docs/mqtt-uplink.md); None: off

    @model_validator(mode="before")
    @classmethod
    def _moved_fields(cls, data: Any) -> Any:
        """Fields that moved: say where to, rather than only that they are unknown here."""
        hmi = data.get("hmi") if isinstance(data, dict) else None
        if isinstance(hmi, dict):
            moved = {"watch_recipes": "recipes.watch", "watch_interval_s": "recipes.watch_interval_s"}
            found = [f"hmi.{old} is now {new}" for old, new in moved.items() if old in hmi]
            if found:
                raise ValueError("; ".join(found) + " (the station watches its recipes folder, HMI or not)")
        return data

    @model_validator(mode="before")
    @classmethod
    def _mes_station_id(cls, data: Any) -> Any:
        """The OPC UA server names the station as the station section does, unless told otherwise."""
        if isinstance(data, dict) and isinstance(data.get("opcua_server"), dict):
            station = data.get("station")
            station_id = station.get("id") if isinstance(station, dict) else None
            if isinstance(station_id, str) and "station_id" not in data["opcua_server"]:
                data = {**data, "opcua_server": {"station_id": station_id, **data["opcua_server"]}}
        return data

    @field_validator("cameras")
    @classmethod
    def _unique_camera_ids(cls, value: tuple[CameraConfig, ...]) -> tuple[CameraConfig, ...]:
        ids = [camera.id for camera in value]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"camera ids must be unique, repeated: {dupes}")
        return value
