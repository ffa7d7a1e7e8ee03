"""What goes on the wire: topic names under the station's ISA-95 root and the JSON payloads,
one versioned JSON Schema per message kind (``schema/<kind>-v1.json``, shipped as package data).

Why JSON and not protobuf for the plain mode: the plant's historian, Node-RED flows and Kafka
connectors read JSON without a schema registry; the schema files document and test it. Every
payload names its schema (``"schema": "linecheck/part/v1"``) so a consumer can tell versions
apart when a v2 appears next to v1 during a plant-wide upgrade.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cache
from importlib import resources
from typing import Any

from line.uplink.config import TopicPath

KINDS = ("part", "state", "alarm", "counters", "command_result")
VERDICTS = {0: "pass", 1: "reject", 2: "fail_safe_reject", 3: "hold"}


@dataclass(frozen=True)
class Topics:
    """The station's topic tree (docs/mqtt-uplink.md)."""

    root: str

    @classmethod
    def of(cls, path: TopicPath, station_id: str) -> Topics:
        return cls(f"{path.root(station_id)}/linecheck")

    @property
    def part(self) -> str:
        return f"{self.root}/part"

    @property
    def state(self) -> str:
        return f"{self.root}/state"

    @property
    def alarm(self) -> str:
        return f"{self.root}/alarm"

    @property
    def counters(self) -> str:
        return f"{self.root}/counters"

    @property
    def command(self) -> str:
        return f"{self.root}/cmd/recipe"

    @property
    def command_result(self) -> str:
        return f"{self.root}/cmd/recipe/result"

    def kind_of(self, topic: str) -> str | None:
        """The message kind a topic carries (None: not one of ours)."""
        for kind in ("part", "state", "alarm", "counters", "command_result"):
            if topic == getattr(self, kind):
                return kind
        return None


@dataclass(frozen=True, slots=True)
class PartFacts:
    """What the hot path copies out of a decided part: plain values only (the record object
    stays the result log's), encoded to JSON later on the uplink's writer thread."""

    result_id: str
    camera_id: str
    part_id: int
    frame_id: int
    recipe_id: str
    recipe_code: int
    result_code: int
    reject_bin: int
    reject_mask: int
    reason: str
    defects_json: str
    timings_json: str
    processing_us: int
    t_verdict_ns: int
    image_ref: str


def iso_time(t_ns: int) -> str:
    return datetime.fromtimestamp(t_ns / 1e9, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def part_payload(station: str, facts: PartFacts) -> dict[str, Any]:
    return {
        "schema": "linecheck/part/v1",
        "station": station,
        "result_id": facts.result_id,
        "camera_id": facts.camera_id,
        "part_id": facts.part_id,
        "frame_id": facts.frame_id,
        "time": iso_time(facts.t_verdict_ns),
        "t_verdict_ns": facts.t_verdict_ns,
        "recipe": {"id": facts.recipe_id, "code": facts.recipe_code},
        "verdict": VERDICTS.get(facts.result_code, "unknown"),
        "result_code": facts.result_code,
        "reject_bin": facts.reject_bin,
        "reject_mask": facts.reject_mask,
        "fail_safe_reason": facts.reason or None,
        "defects": json.loads(facts.defects_json),
        "processing_ms": round(facts.processing_us / 1000, 3),
        "timings_ms": json.loads(facts.timings_json),
        "image_ref": facts.image_ref or None,
    }


def state_payload(station: str, state: str, t_ns: int, recipe: str | None = None,
                  status_bits: int | None = None) -> dict[str, Any]:  # fmt: skip
    """``online`` / ``offline`` (also the last will, so it carries no recipe or status)."""
    return {"schema": "linecheck/state/v1", "station": station, "state": state, "time": iso_time(t_ns),
            "active_recipe": recipe, "status_bits": status_bits}  # fmt: skip


def alarm_payload(station: str, kind: str, title: str, message: str, active: bool, t_ns: int,
                  count: int) -> dict[str, Any]:  # fmt: skip
    return {"schema": "linecheck/alarm/v1", "station": station, "kind": kind, "title": title, "message": message,
            "active": active, "time": iso_time(t_ns), "count": count}  # fmt: skip


BASE_COUNTS = ("verdicts", "passed", "rejected", "fail_safe")  # always present, 0 before the first part


def counters_payload(station: str, t_ns: int, counts: dict[str, int], uplink: dict[str, Any]) -> dict[str, Any]:
    return {"schema": "linecheck/counters/v1", "station": station, "time": iso_time(t_ns),
            "counts": {**dict.fromkeys(BASE_COUNTS, 0), **counts}, "uplink": uplink}  # fmt: skip


def command_result_payload(station: str, t_ns: int, request_id: str | None, recipe_id: str | None,
                           ok: bool, message: str) -> dict[str, Any]:  # fmt: skip
    return {"schema": "linecheck/command_result/v1", "station": station, "time": iso_time(t_ns),
            "request_id": request_id, "recipe_id": recipe_id, "ok": ok, "message": message}  # fmt: skip


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()


@cache
def schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of one message kind, from the package data."""
    text = resources.files("line.uplink").joinpath("schema", f"{kind}-v1.json").read_text()
    loaded: dict[str, Any] = json.loads(text)
    return loaded
