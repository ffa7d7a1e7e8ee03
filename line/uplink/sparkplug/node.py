"""The station as a Sparkplug B edge node (spec 3.0): topic names, the metric table with its
aliases, NBIRTH / DBIRTH / NDEATH payloads, DDATA for parts, alarms and counters, the message
sequence number, the persisted birth-death sequence number (``bdSeq``) and what the primary
host's ``STATE`` and ``NCMD`` ask for.

Why DDATA is encoded twice over: the writer thread encodes each part once (names resolved to
aliases, no ``seq``) into the disk outbox, and the sender stamps ``seq`` as it publishes
(:meth:`SparkplugNode.stamp`): ``seq`` counts the messages of one birth (0 in NBIRTH, +1 per
message, wrapping at 256), so it can only be known when the row actually leaves, possibly after
a reconnect or a rebirth. Aliases are fixed per metric name, so a stored row stays valid
across births.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from line.uplink.config import SparkplugConfig
from line.uplink.payload import BASE_COUNTS, VERDICTS, PartFacts
from line.uplink.sparkplug import sparkplug_b_pb2 as pb

log = logging.getLogger(__name__)

NAMESPACE = "spBv1.0"
REBIRTH = "Node Control/Rebirth"


@dataclass(frozen=True)
class MetricDef:
    name: str
    alias: int
    datatype: int  # pb.DataType


_S, _B, _I32, _U32, _I64, _U64, _D = pb.String, pb.Boolean, pb.Int32, pb.UInt32, pb.Int64, pb.UInt64, pb.Double

NODE_METRICS = (MetricDef(REBIRTH, 1, _B),)  # bdSeq goes by name only (spec: NBIRTH and NDEATH)
PART_METRICS = tuple(MetricDef(name, alias, dtype) for alias, (name, dtype) in enumerate((
    ("Part/ResultId", _S), ("Part/CameraId", _S), ("Part/PartId", _I64), ("Part/FrameId", _I64),
    ("Part/Recipe", _S), ("Part/RecipeCode", _I32), ("Part/Verdict", _S), ("Part/ResultCode", _I32),
    ("Part/RejectBin", _I32), ("Part/RejectMask", _U32), ("Part/FailSafeReason", _S), ("Part/Defects", _S),
    ("Part/ProcessingMs", _D), ("Part/Timings", _S), ("Part/ImageRef", _S),
), start=10))  # fmt: skip
ALARM_METRICS = tuple(MetricDef(name, alias, dtype) for alias, (name, dtype) in enumerate((
    ("Alarm/Kind", _S), ("Alarm/Active", _B), ("Alarm/Message", _S), ("Alarm/Count", _I64),
), start=40))  # fmt: skip
COUNTER_METRICS = tuple(MetricDef(f"Counters/{name}", alias, _U64) for alias, name in enumerate(BASE_COUNTS, start=60))
DEVICE_METRICS = PART_METRICS + ALARM_METRICS + COUNTER_METRICS
BY_NAME = {m.name: m for m in NODE_METRICS + DEVICE_METRICS}
BY_ALIAS = {m.alias: m for m in NODE_METRICS + DEVICE_METRICS}


def set_value(metric: pb.Payload.Metric, datatype: int, value: Any) -> None:
    """The value field the spec assigns to a data type; None is ``is_null``."""
    if value is None:
        metric.is_null = True
    elif datatype == pb.Boolean:
        metric.boolean_value = bool(value)
    elif datatype == pb.String:
        metric.string_value = str(value)
    elif datatype == pb.Double:
        metric.double_value = float(value)
    elif datatype in (pb.Int64, pb.UInt64):
        metric.long_value = int(value) & 0xFFFF_FFFF_FFFF_FFFF  # Int64: two's complement in uint64
    else:
        metric.int_value = int(value) & 0xFFFF_FFFF


def value_of(metric: pb.Payload.Metric, datatype: int) -> Any:
    """The inverse of :func:`set_value` (for subscribers and tests)."""
    if metric.is_null:
        return None
    if datatype == pb.Boolean:
        return metric.boolean_value
    if datatype == pb.String:
        return metric.string_value
    if datatype == pb.Double:
        return metric.double_value
    if datatype in (pb.Int64, pb.UInt64):
        v = metric.long_value
        return v - (1 << 64) if datatype == pb.Int64 and v >= 1 << 63 else v
    v = metric.int_value
    return v - (1 << 32) if datatype == pb.Int32 and v >= 1 << 31 else v


@dataclass(frozen=True)
class SparkplugTopics:
    group: str
    edge: str
    device: str
    primary_host: str | None

    def node(self, kind: str) -> str:
        return f"{NAMESPACE}/{self.group}/{kind}/{self.edge}"

    def device_topic(self, kind: str) -> str:
        return f"{NAMESPACE}/{self.group}/{kind}/{self.edge}/{self.device}"

    @property
    def state(self) -> str | None:
        return f"{NAMESPACE}/STATE/{self.primary_host}" if self.primary_host else None


class BdSeqStore:
    """The birth-death sequence number, one per MQTT connect, persisted so that a restarted
    station does not reuse the number of its previous connection (a host would take the old NDEATH
    for the new session's). The file holds the next number; written atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def take(self) -> int:
        try:
            value = int(self.path.read_text().strip()) % 256
        except (OSError, ValueError):
            value = 0
        tmp = self.path.with_suffix(".tmp")
        try:
            tmp.write_text(str((value + 1) % 256))
            os.replace(tmp, self.path)
        except OSError as exc:  # runs on paho's thread before a connect: never kill it
            log.error("Sparkplug: bdSeq not persisted to %s: %s", self.path, exc)
        return value


class SparkplugNode:
    """One edge node with one device. Thread use: ``death`` on paho's thread before each
    connect, ``on_message`` on paho's thread, everything else on the uplink's threads."""

    def __init__(self, config: SparkplugConfig, station_id: str, bdseq_path: Path) -> None:
        self.config = config
        self.topics = SparkplugTopics(config.group_id, config.edge_node_id or station_id,
                                      config.device_id or station_id, config.primary_host_id)  # fmt: skip
        self._bdseq = BdSeqStore(bdseq_path)
        self.bd_seq = -1  # of the connection being made or held
        self._seq = 0
        self._seq_lock = threading.Lock()
        self._birth_ms = 0  # time of the current NBIRTH
        # the primary host's last STATE; without one configured, always online
        self.host_online = config.primary_host_id is None
        self.rebirth = threading.Event()  # STATE came back ONLINE, or NCMD Node Control/Rebirth
        self.births = 0

    @property
    def subscriptions(self) -> tuple[str, ...]:
        state = self.topics.state
        return (self.topics.node("NCMD"), *((state,) if state else ()))

    # --- session ---------------------------------------------------------------------------
    def death(self) -> tuple[str, bytes]:
        """Before each connect: a new bdSeq and the NDEATH that carries it (the MQTT will).
        The primary host counts as offline until this connection hears its retained STATE."""
        self.host_online = self.config.primary_host_id is None
        self.bd_seq = self._bdseq.take()
        return self.topics.node("NDEATH"), self._death_payload()

    def death_now(self) -> tuple[str, bytes]:
        """The NDEATH of the connection held now (a clean stop publishes it itself)."""
        return self.topics.node("NDEATH"), self._death_payload()

    def _death_payload(self) -> bytes:
        payload = pb.Payload(timestamp=_now_ms())
        metric = payload.metrics.add(name="bdSeq", datatype=pb.Int64, timestamp=payload.timestamp)
        metric.long_value = self.bd_seq
        return payload.SerializeToString()

    def birth(self, counts: Mapping[str, int]) -> list[tuple[str, bytes]]:
        """NBIRTH (seq 0, this connection's bdSeq, Rebirth) and DBIRTH (every device metric by
        name and alias, counters with their values, the rest null)."""
        now = _now_ms()
        with self._seq_lock:
            self._birth_ms = now
            self._seq = 0
            nbirth = pb.Payload(timestamp=now, seq=self._next())
            dbirth = pb.Payload(timestamp=now, seq=self._next())
        bd = nbirth.metrics.add(name="bdSeq", datatype=pb.Int64, timestamp=now)
        bd.long_value = self.bd_seq
        for m in NODE_METRICS:
            set_value(nbirth.metrics.add(name=m.name, alias=m.alias, datatype=m.datatype, timestamp=now), m.datatype, False)
        for m in DEVICE_METRICS:
            value = counts.get(m.name.removeprefix("Counters/"), 0) if m in COUNTER_METRICS else None
            set_value(dbirth.metrics.add(name=m.name, alias=m.alias, datatype=m.datatype, timestamp=now), m.datatype, value)
        self.births += 1
        self.rebirth.clear()
        return [(self.topics.node("NBIRTH"), nbirth.SerializeToString()),
                (self.topics.device_topic("DBIRTH"), dbirth.SerializeToString())]  # fmt: skip

    def _next(self) -> int:
        seq = self._seq
        self._seq = (seq + 1) % 256
        return seq

    def stamp(self, payload: bytes) -> bytes:
        """A stored DDATA with the next ``seq`` of this birth; data from before the birth (held
        through an outage or an offline primary host, or sent again) is marked
        ``is_historical``, so a host files it in history instead of taking it for the
        current value (spec 3.0, store and forward)."""
        message = pb.Payload.FromString(payload)
        with self._seq_lock:
            message.seq = self._next()
            historical = message.timestamp < self._birth_ms
        if historical:
            for metric in message.metrics:
                metric.is_historical = True
        return message.SerializeToString()

    # --- data ------------------------------------------------------------------------------
    @property
    def data_topic(self) -> str:
        return self.topics.device_topic("DDATA")

    def part_data(self, facts: PartFacts) -> bytes:
        values = (facts.result_id, facts.camera_id, facts.part_id, facts.frame_id, facts.recipe_id, facts.recipe_code,
                  VERDICTS.get(facts.result_code, "unknown"), facts.result_code, facts.reject_bin, facts.reject_mask,
                  facts.reason or None, facts.defects_json, round(facts.processing_us / 1000, 3), facts.timings_json,
                  facts.image_ref or None)  # fmt: skip
        return _data(facts.t_verdict_ns // 1_000_000, zip(PART_METRICS, values, strict=True))

    def alarm_data(self, alarm: Mapping[str, Any], t_ns: int) -> bytes:
        values = (alarm["kind"], alarm["active"], alarm["message"], alarm["count"])
        return _data(t_ns // 1_000_000, zip(ALARM_METRICS, values, strict=True))

    def counters_data(self, counts: Mapping[str, int]) -> bytes:
        values = (counts.get(name.removeprefix("Counters/"), 0) for name in (m.name for m in COUNTER_METRICS))
        return _data(_now_ms(), zip(COUNTER_METRICS, values, strict=True))

    # --- from the broker (paho's thread) ---------------------------------------------------
    def on_message(self, topic: str, payload: bytes) -> bool:
        """STATE of the primary host or NCMD; False: not a Sparkplug topic of this node."""
        if topic == self.topics.state:
            online = state_online(payload)
            if online is None:
                log.warning("Sparkplug: unreadable STATE from %s: %r", self.topics.primary_host, payload[:80])
            else:
                if online and not self.host_online:
                    self.rebirth.set()
                self.host_online = online
                log.info("Sparkplug: primary host %s %s", self.topics.primary_host, "online" if online else "offline")
            return True
        if topic == self.topics.node("NCMD"):
            try:
                command = pb.Payload.FromString(payload)
            except Exception:  # a malformed command is logged, never a dead network thread
                log.warning("Sparkplug: unreadable NCMD (%d bytes)", len(payload))
                return True
            for metric in command.metrics:
                if (metric.name == REBIRTH or (not metric.name and metric.alias == 1)) and metric.boolean_value:
                    self.rebirth.set()
            return True
        return False


def _data(t_ms: int, metrics: Any) -> bytes:
    payload = pb.Payload(timestamp=t_ms)
    for m, value in metrics:
        set_value(payload.metrics.add(alias=m.alias, datatype=m.datatype, timestamp=t_ms), m.datatype, value)
    return payload.SerializeToString()


def state_online(payload: bytes) -> bool | None:
    """Spec 3.0: ``{"online": true|false, "timestamp": ...}``; Sparkplug 2.2's plain
    ``ONLINE`` / ``OFFLINE`` is read too (older primary hosts)."""
    text = payload.decode("utf-8", "replace").strip()
    if text in ("ONLINE", "OFFLINE"):
        return text == "ONLINE"
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None
    online = data.get("online") if isinstance(data, dict) else None
    return online if isinstance(online, bool) else None


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
