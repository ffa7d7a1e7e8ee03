"""PLC link configuration (frozen pydantic models). Register addresses follow docs/plc.md
and are configurable per plant."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal
from urllib.parse import urlparse

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

_HOSTNAME = re.compile(r"^(?=.{1,253}$)(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*$")


def check_host(value: str) -> str:
    """An IP address or a host name; refused here rather than as a socket error at start
    (``192.0.2.300``, ``plc1:502``, ``http://plc1`` all parse as strings)."""
    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        pass
    if _HOSTNAME.match(value) and not value.replace(".", "").isdigit():
        return value
    raise ValueError(f"{value!r} is neither an IP address nor a host name (the port is a separate key)")


Host = Annotated[str, AfterValidator(check_host)]


class _Frozen(BaseModel):
    """Base of the configuration models here: the same settings as ``line.config_model.ConfigModel``
    (why: see there). A copy per package, because camera, inference and plc never import each
    other (tests/architecture/test_shared_copies.py keeps the copies in step)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)  # .inf/.nan never work here


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

    def vision_to_plc(self) -> dict[str, int]:
        """Register name -> address of every register vision writes (processing_us counts two)."""
        return {
            "heartbeat": self.heartbeat,
            "status": self.status,
            "active_recipe": self.active_recipe,
            "result_seq": self.result_seq,
            "part_id": self.part_id,
            "result_code": self.result_code,
            "reject_mask": self.reject_mask,
            "defect_count": self.defect_count,
            "processing_us_hi": self.processing_us,
            "processing_us_lo": self.processing_us + 1,
        }

    def plc_to_vision(self) -> dict[str, int]:
        """Register name -> address of every register the PLC writes."""
        return {
            "recipe_select": self.recipe_select,
            "next_part_id": self.next_part_id,
            "result_ack": self.result_ack,
            "command": self.command,
        }

    @model_validator(mode="after")
    def _no_overlap(self) -> ModbusMap:
        # A register used twice would let one field silently overwrite another on the wire.
        addrs = [*self.vision_to_plc().values(), *self.plc_to_vision().values()]
        if len(set(addrs)) != len(addrs):
            raise ValueError("ModbusMap: register addresses overlap (processing_us takes two registers)")
        if min(addrs) < 0 or max(addrs) > 65535:
            raise ValueError("ModbusMap: register addresses must lie in 0..65535")
        return self


class ModbusServerConfig(_Frozen):
    enabled: bool = True
    host: Host = "127.0.0.1"
    port: int = Field(default=5020, ge=0, le=65535)  # 0: pick a free port (tests)
    unit_id: int = Field(default=1, ge=0, le=247)
    map: ModbusMap = ModbusMap()
    heartbeat_ms: int = Field(default=250, gt=0)
    # at a stop: keep serving until a PLC that has been polling has read the last verdict, at
    # most this long (a port closed right after the last write leaves that verdict unread)
    close_linger_ms: int = Field(default=1000, ge=0)


class ModbusClientConfig(_Frozen):
    enabled: bool = False
    host: Host = "127.0.0.1"
    port: int = Field(default=502, ge=1, le=65535)
    unit_id: int = Field(default=1, ge=0, le=247)
    map: ModbusMap = ModbusMap()
    write_timeout_ms: float = Field(default=20, gt=0)
    heartbeat_ms: int = Field(default=250, gt=0)
    poll_ms: int = Field(default=10, gt=0)
    reconnect_min_ms: int = Field(default=50, gt=0)
    reconnect_max_ms: int = Field(default=500, gt=0)  # the link must be back within 1 s of the PLC's return
    reject_pulse_ms: int | None = Field(default=None, gt=0)  # None: no coil pulse
    # How a result reaches the PLC when result_seq is not the last register of the result
    # block (the default map: seq at 3, data at 4..9). "separate": data in one FC16, then
    # result_seq in a second request only after the first was acknowledged, so the PLC can
    # never see a new seq with old data whatever its request consistency. "single": one FC16
    # over the whole block; correct only for PLCs that apply one request atomically
    # (consistent data area between two program scans); one round trip less.
    seq_write: Literal["separate", "single"] = "separate"
    connect_timeout_ms: int = Field(default=500, gt=0)  # TCP connect; the poll is the liveness probe


OPCUA_RESULT_FIELDS = ("part_id", "result_code", "reject_mask", "defect_count", "processing_us", "result_id", "reason")
OPCUA_STATE_FIELDS = ("heartbeat", "status", "active_recipe")
OPCUA_READ_FIELDS = ("recipe_select", "command", "result_ack", "next_part_id")


class OpcUaClientConfig(_Frozen):
    """Writing verdicts to a PLC's OPC UA server (``plc.opcua_client``)."""

    enabled: bool = True
    endpoint: str = "opc.tcp://127.0.0.1:4840"
    # field -> node id, e.g. {"result_seq": "ns=2;s=Vision.ResultSeq"}. result_seq is required;
    # written per verdict: OPCUA_RESULT_FIELDS; cyclic: OPCUA_STATE_FIELDS; read (polled):
    # OPCUA_READ_FIELDS. Only configured fields are used; values are converted to each node's
    # DataType, read once per connection.
    nodes: dict[str, str] = Field(default_factory=dict)
    security_policy: Literal["None", "Basic256Sha256"] = "None"
    security_mode: Literal["None", "Sign", "SignAndEncrypt"] = "None"
    certificate: str | None = None  # client certificate (DER/PEM) for Basic256Sha256
    private_key: str | None = None
    server_certificate: str | None = None
    user: str | None = None
    password: str | None = None
    seq_write: Literal["separate", "single"] = "separate"  # as ModbusClientConfig.seq_write
    write_timeout_ms: float = Field(default=50, gt=0)
    connect_timeout_ms: int = Field(default=2000, gt=0)
    heartbeat_ms: int = Field(default=250, gt=0)
    poll_ms: int = Field(default=50, gt=0)
    keepalive_ms: int = Field(default=1000, gt=0)  # liveness probe when nothing else is read
    reconnect_min_ms: int = Field(default=100, gt=0)
    reconnect_max_ms: int = Field(default=5000, gt=0)

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        url = urlparse(value)
        if url.scheme != "opc.tcp" or not url.hostname:
            raise ValueError("endpoint must look like opc.tcp://host:port")
        try:
            url.port  # noqa: B018 - raises for a port that is not a number in 0..65535
        except ValueError as exc:
            raise ValueError(f"endpoint port: {exc}") from None
        return value

    @model_validator(mode="after")
    def _check(self) -> OpcUaClientConfig:
        if "result_seq" not in self.nodes:
            raise ValueError("OpcUaClientConfig.nodes needs at least 'result_seq'")
        known = {"result_seq", *OPCUA_RESULT_FIELDS, *OPCUA_STATE_FIELDS, *OPCUA_READ_FIELDS}
        unknown = set(self.nodes) - known
        if unknown:
            raise ValueError(f"OpcUaClientConfig.nodes: unknown fields {sorted(unknown)}; known: {sorted(known)}")
        if (self.security_policy == "None") != (self.security_mode == "None"):
            raise ValueError("security_policy and security_mode must both be None or both set")
        if self.security_policy != "None" and not (self.certificate and self.private_key):
            raise ValueError("Basic256Sha256 needs certificate and private_key")
        return self
