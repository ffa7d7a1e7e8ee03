"""PLC link configuration (frozen pydantic models). Register addresses follow DESIGN.md
and are configurable per plant."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ModbusMap(_Frozen):
    """Holding-register addresses. Vision -> PLC block starts at ``heartbeat``; PLC -> vision
    block at ``recipe_select``."""

    heartbeat: int = 0
    status: int = 1
    active_recipe: int = 2
    result_seq: int = 3
    part_id: int = 4
    result_code: int = 5
    reject_mask: int = 6
    defect_count: int = 7
    processing_us: int = 8  # uint32, two registers, high word first
    recipe_select: int = 100
    next_part_id: int = 101
    result_ack: int = 102
    command: int = 103
    reject_coil: int = 0  # coil address for the optional direct reject pulse


class ModbusServerConfig(_Frozen):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=5020, ge=0, le=65535)  # 0: pick a free port (tests)
    unit_id: int = Field(default=1, ge=0, le=247)
    map: ModbusMap = ModbusMap()
    heartbeat_ms: int = Field(default=250, gt=0)


class ModbusClientConfig(_Frozen):
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=502, ge=1, le=65535)
    unit_id: int = Field(default=1, ge=0, le=247)
    map: ModbusMap = ModbusMap()
    write_timeout_ms: float = Field(default=20, gt=0)
    heartbeat_ms: int = Field(default=250, gt=0)
    poll_ms: int = Field(default=10, gt=0)
    reconnect_min_ms: int = Field(default=50, gt=0)
    reconnect_max_ms: int = Field(default=2000, gt=0)
    reject_pulse_ms: int | None = Field(default=None, gt=0)  # None: no coil pulse
