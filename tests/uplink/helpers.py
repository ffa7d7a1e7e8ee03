"""Shared checks for the uplink tests: schema validation of every message, de-duplication."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema

from line.uplink.payload import Topics, schema
from tests.uplink.broker import PASSWORDS, ROOT, Mosquitto

TOPIC = {"enterprise": "acme", "site": "plant1", "area": "packing", "line": "line4"}
assert "/".join(TOPIC.values()) == ROOT  # noqa: S101


def uplink_section(broker: Mosquitto, folder: Path, user: str = "test-1", password: str | None = None,
                   **extra: Any) -> dict[str, Any]:  # fmt: skip
    secret = folder / f"{user}.password"
    secret.write_text(PASSWORDS[user] if password is None else password)
    return {"host": broker.host, "port": broker.port, "username": user, "password_file": str(secret),
            "tls": {"ca_file": str(broker.ca_file)}, "topic": dict(TOPIC), "counters_interval_s": 0.5,
            "reconnect_min_s": 0.5, "reconnect_max_s": 2, **extra}  # fmt: skip


def validate_all(messages: list[tuple[str, bytes]], station: str = "test-1") -> dict[str, list[dict[str, Any]]]:
    """Every message of the station validated against its kind's schema; by kind."""
    topics = Topics(f"{ROOT}/{station}/linecheck")
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for topic, payload in messages:
        kind = topics.kind_of(topic)
        if kind is None:
            continue
        data = json.loads(payload)
        jsonschema.validate(data, schema(kind), format_checker=jsonschema.FormatChecker())
        by_kind.setdefault(kind, []).append(data)
    return by_kind


def first_occurrences(parts: list[dict[str, Any]]) -> list[str]:
    """Result ids in arrival order, duplicates (at-least-once re-sends) dropped."""
    seen: set[str] = set()
    out = []
    for p in parts:
        if p["result_id"] not in seen:
            seen.add(p["result_id"])
            out.append(p["result_id"])
    return out
