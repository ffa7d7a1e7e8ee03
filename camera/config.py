"""Camera configuration, parsed once into frozen validated models (pydantic, as everywhere).

``CameraSettings`` is the recipe's ``camera:`` block (what the product needs from the sensor);
``CameraConfig`` is the station's description of a physical or simulated camera. Backend
specific options are validated by the backend's own ``Options`` model, looked up through the
registry in :mod:`camera.source`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    """Base of the configuration models here: the same settings as ``line.config_model.ConfigModel``
    (why: see there). A copy per package, because camera, inference and plc never import each
    other (tests/architecture/test_shared_copies.py keeps the copies in step)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)  # .inf/.nan never work here


class CameraSettings(_Frozen):
    exposure_us: float | None = Field(default=None, gt=0)
    gain_db: float | None = None
    pixel_format: str | None = None
    width: int | None = Field(default=None, gt=0)
    height: int | None = Field(default=None, gt=0)
    offset_x: int | None = Field(default=None, ge=0)
    offset_y: int | None = Field(default=None, ge=0)
    frame_rate: float | None = Field(default=None, gt=0)
    trigger_mode: Literal["free_run", "software", "hardware"] = "free_run"
    trigger_source: str | None = None  # e.g. "Line0" for hardware, "Software" implied for software
    trigger_activation: Literal["RisingEdge", "FallingEdge", "AnyEdge", "LevelHigh", "LevelLow"] | None = None


class CameraConfig(_Frozen):
    id: str = Field(min_length=1)
    kind: str = Field(description="registry name: synthetic | replay | genicam | aravis")
    options: dict[str, Any] = Field(default_factory=dict)
    fetch_timeout_ms: float = Field(default=1000, gt=0)


class SupervisorOptions(BaseModel):
    """Reconnect and liveness settings shared by the hardware backends' ``Options``."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    probe_interval_s: float = Field(default=0.25, gt=0, le=10)
    backoff_initial_s: float = Field(default=0.1, gt=0)
    backoff_max_s: float = Field(default=1.0, gt=0)
    max_pending_triggers: int = Field(default=64, ge=1)
    node_names: dict[str, list[str]] = Field(
        default_factory=dict,
        description="override SFNC node names per setting, e.g. {exposure_us: [ExposureTimeRaw]}",
    )
