"""The station configuration (``configs/*.yaml``), parsed once into frozen models and passed
in by constructor injection; nothing on the hot path reads files or the environment."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from camera.config import CameraConfig
from inference.config import EngineOptions
from plc.config import ModbusClientConfig, ModbusServerConfig


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StationSection(_Frozen):
    id: str = Field(default="station-1", min_length=1)
    queue_size: int = Field(default=4, ge=1, le=1024)
    # what happens when inference falls behind acquisition; every drop is counted and becomes
    # a fail-safe verdict for that part (a dropped frame is never a silent pass)
    overflow_policy: Literal["drop_oldest", "drop_newest"] = "drop_oldest"
    status_interval_s: float = Field(default=1.0, gt=0)
    # several cameras batched (engine.max_batch > 1): how long a batch may wait for the other
    # cameras' frames of the same trigger before it runs without them
    batch_wait_ms: float = Field(default=1.0, ge=0.0, le=50.0)
    # one camera per engine call (no batching): the camera's thread starts the GPU on a frame
    # the moment it is ready, when the engine is idle (saves the hand-over to the inference thread)
    early_launch: bool = True


class RecipesSection(_Frozen):
    dir: Path = Path("../recipes")
    active: str | None = None  # recipe id; default: the lowest code
    warm_max: int = Field(default=2, ge=1)


class PlcSection(_Frozen):
    modbus_server: ModbusServerConfig | None = ModbusServerConfig()
    modbus_client: ModbusClientConfig | None = None
    opcua_client: dict[str, Any] | None = None  # validated by plc.opcua_client


class StorageSection(_Frozen):
    dir: Path = Path("../var/station")
    archive_ng_images: bool = True
    archive_max_images: int = Field(default=500, ge=0)
    archive_format: Literal["png", "jpg"] = "png"
    log_queue_size: int = Field(default=1024, ge=1)


class HmiSection(_Frozen):
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    users: dict[str, dict[str, str]] = Field(default_factory=dict)  # name -> {password_hash, role}
    # additive (HMI helper): sessions, live view, shift boundaries, recipe folder watching
    session_ttl_s: float = Field(default=8 * 3600.0, gt=0)
    live_fps: float = Field(default=5.0, gt=0, le=30)
    live_max_width: int = Field(default=640, ge=64, le=4096)
    live_jpeg_quality: int = Field(default=80, ge=10, le=100)
    shift_starts: tuple[str, ...] = ("06:00", "14:00", "22:00")  # local HH:MM; counters/yield since the latest
    watch_recipes: bool = True
    watch_interval_s: float = Field(default=1.0, gt=0)
    # Host header names the HMI answers to (DNS-rebinding guard); empty: loopback names and
    # ``host`` itself. List the names a reverse proxy forwards; "*" accepts any (docs/security.md)
    allowed_hosts: tuple[str, ...] = ()


class StationConfig(_Frozen):
    station: StationSection = StationSection()
    recipes: RecipesSection = RecipesSection()
    cameras: tuple[CameraConfig, ...] = Field(min_length=1)
    engine: EngineOptions = EngineOptions()
    plc: PlcSection = PlcSection()
    opcua_server: dict[str, Any] | None = None  # validated by plc.opcua_server
    storage: StorageSection = StorageSection()
    hmi: HmiSection = HmiSection()
