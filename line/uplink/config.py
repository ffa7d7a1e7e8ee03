"""The ``uplink:`` section of the station config: which plant broker, which ISA-95 topic path,
how large the disk outbox may grow and what happens when it is full.

Why a separate model: the uplink is optional and plant-wide settings (broker, TLS, topic tree)
are owned by the plant's data engineer, not by the line; one frozen model keeps them together
and validated before anything is opened.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from line.config_model import ConfigModel
from line.errors import Problem
from plc.config import Host

# an MQTT topic level: no wildcards, no separators, no leading '$' (reserved for the broker)
_LEVEL = re.compile(r"^[^/#+$\x00][^/#+\x00]*$")


class TopicPath(ConfigModel):
    """ISA-95 levels of the Unified Namespace: ``<enterprise>/<site>/<area>/<line>/<station>``.
    ``station`` None: the station section's ``id``."""

    enterprise: str = "enterprise"
    site: str = "site"
    area: str = "area"
    line: str = "line"
    station: str | None = None

    @field_validator("enterprise", "site", "area", "line", "station")
    @classmethod
    def _level(cls, value: str | None) -> str | None:
        if value is not None and not _LEVEL.match(value):
            raise ValueError(f"{value!r} is not a topic level (no '/', '+', '#', leading '$' or empty)")
        return value

    def root(self, station_id: str) -> str:
        return "/".join((self.enterprise, self.site, self.area, self.line, self.station or station_id))


class TlsConfig(ConfigModel):
    """Server certificate checked against ``ca_file``; ``cert_file``/``key_file`` for brokers
    that authenticate clients by certificate."""

    ca_file: Path
    cert_file: Path | None = None
    key_file: Path | None = None

    @model_validator(mode="after")
    def _pair(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return self


class SparkplugConfig(ConfigModel):
    """Sparkplug B edge-node mode (spec 3.0, docs/mqtt-uplink.md "Sparkplug B"): the station is
    the edge node ``edge_node_id`` of ``group_id`` with one device ``device_id`` carrying the
    parts, alarms and counters. ``primary_host_id``: the SCADA / historian host whose
    ``spBv1.0/STATE/<id>`` gates publishing (None: publish whenever connected).

    ``data_qos`` 1 (default) keeps the outbox's promise (a row leaves only on PUBACK); the spec
    asks for QoS 0 on DDATA, which a consumer reads the same way but which can lose the messages
    in flight when the link drops."""

    group_id: str
    edge_node_id: str | None = None  # None: the station id
    device_id: str | None = None  # None: the station id
    primary_host_id: str | None = None  # publish only while spBv1.0/STATE/<id> says online; None: always
    data_qos: Literal[0, 1] = 1  # DDATA: 1 leaves the outbox on PUBACK; 0 as the spec says (in-flight loss)

    @field_validator("group_id", "edge_node_id", "device_id", "primary_host_id")
    @classmethod
    def _id(cls, value: str | None) -> str | None:
        if value is not None and not _LEVEL.match(value):
            raise ValueError(f"{value!r} is not a Sparkplug id (no '/', '+', '#', leading '$' or empty)")
        return value


class UplinkConfig(ConfigModel):
    enabled: bool = True
    host: Host = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    client_id: str | None = Field(default=None, min_length=1, max_length=64)  # None: linecheck-<station>
    username: str | None = None
    # the password is read from a file (mode 0600, outside the config repository), never inline
    password_file: Path | None = None
    tls: TlsConfig | None = None
    keepalive_s: int = Field(default=15, ge=5, le=600)
    topic: TopicPath = TopicPath()
    counters_interval_s: float = Field(default=5.0, ge=0.5, le=3600)
    # hot path -> writer thread; full: the message is counted as dropped and alarmed
    queue_size: int = Field(default=4096, ge=16, le=1_000_000)
    # the disk outbox (SQLite WAL) in storage.dir; bounded by rows
    outbox_max_rows: int = Field(default=500_000, ge=100, le=100_000_000)
    outbox_policy: Literal["drop_oldest", "drop_newest"] = "drop_oldest"
    outbox_alarm_rows: int = Field(default=10_000, ge=1)  # alarm above this many undelivered
    inflight: int = Field(default=64, ge=1, le=65535)  # QoS 1 messages awaiting PUBACK
    reconnect_min_s: float = Field(default=1.0, ge=0.1, le=60)
    reconnect_max_s: float = Field(default=30.0, ge=1, le=3600)
    # a refused login (bad password, not authorised) waits this long before the next try
    refused_retry_s: float = Field(default=60.0, ge=1, le=86_400)
    # recipe switch over MQTT: off unless set; the broker's ACL decides who may publish to it
    commands_enabled: bool = False
    # Sparkplug B edge-node mode instead of the JSON topic tree (None: JSON)
    sparkplug: SparkplugConfig | None = None

    @model_validator(mode="after")
    def _consistent(self) -> UplinkConfig:
        if self.password_file is not None and self.username is None:
            raise ValueError("password_file needs a username")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be at least reconnect_min_s")
        if self.outbox_alarm_rows > self.outbox_max_rows:
            raise ValueError("outbox_alarm_rows must not exceed outbox_max_rows")
        return self

    def file_problems(self) -> list[tuple[str, str]]:
        """(key, reason) for each file the uplink needs that cannot be read: told at start-up,
        before a connection is tried, not as a traceback from the TLS layer."""
        files = [("password_file", self.password_file)]
        if self.tls is not None:
            files += [("tls.ca_file", self.tls.ca_file), ("tls.cert_file", self.tls.cert_file),
                      ("tls.key_file", self.tls.key_file)]  # fmt: skip
        problems = []
        for key, path in files:
            if path is None:
                continue
            try:
                path.read_bytes()
            except OSError as exc:
                problems.append((key, f"cannot read {path}: {exc.strerror or exc}"))
        return problems

    def read_password(self) -> str | None:
        if self.password_file is None:
            return None
        return self.password_file.read_text().strip()


def uplink_problems(file: str, config: UplinkConfig | None) -> list[Problem]:
    """What ``run`` and ``validate`` report about the ``uplink:`` section before anything opens."""
    if config is None or not config.enabled:
        return []
    return [Problem(file, f"uplink.{key}", reason) for key, reason in config.file_problems()]
