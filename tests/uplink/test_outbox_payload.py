"""The disk outbox's order, bounds and policies; the payloads against their schemas; the
``uplink:`` section's validation."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jsonschema
import pytest
from pydantic import ValidationError

from line.uplink.commands import parse_command
from line.uplink.config import UplinkConfig
from line.uplink.outbox import DiskOutbox, OutgoingMessage
from line.uplink.payload import PartFacts, Topics, alarm_payload, encode, part_payload, schema, state_payload


def _msgs(*names: str) -> list[OutgoingMessage]:
    return [OutgoingMessage("t", n.encode()) for n in names]


def test_rows_leave_in_order_only_when_removed_and_survive_a_restart(tmp_path: Path) -> None:
    box = DiskOutbox(tmp_path / "o.db", 100)
    box.add(_msgs("a", "b", "c"))
    rows = box.after(0, 10)
    assert [r.payload for r in rows] == [b"a", b"b", b"c"]
    box.remove([rows[0].seq])
    assert [r.payload for r in box.after(0, 10)] == [b"b", b"c"]
    assert [r.payload for r in box.after(rows[1].seq, 10)] == [b"c"]
    box.close()
    again = DiskOutbox(tmp_path / "o.db", 100)
    assert again.recovered == 2 and [r.payload for r in again.after(0, 10)] == [b"b", b"c"]
    again.close()


def test_drop_oldest_keeps_the_newest_and_counts(tmp_path: Path) -> None:
    box = DiskOutbox(tmp_path / "o.db", 3, "drop_oldest")
    box.add(_msgs("1", "2"))
    assert box.add(_msgs("3", "4", "5")) == 2
    assert [r.payload for r in box.after(0, 10)] == [b"3", b"4", b"5"]
    assert box.dropped == 2 and box.depth == 3
    box.close()


def test_drop_newest_refuses_what_does_not_fit_and_counts(tmp_path: Path) -> None:
    box = DiskOutbox(tmp_path / "o.db", 3, "drop_newest")
    box.add(_msgs("1", "2"))
    assert box.add(_msgs("3", "4", "5")) == 2
    assert [r.payload for r in box.after(0, 10)] == [b"1", b"2", b"3"]
    assert box.dropped == 2 and box.depth == 3
    box.close()


def test_oldest_age_follows_the_injected_clock(tmp_path: Path) -> None:
    now = [1000.0]
    box = DiskOutbox(tmp_path / "o.db", 10, clock=lambda: now[0])
    assert box.oldest_age_s() == 0.0
    box.add(_msgs("a"))
    now[0] += 42.0
    box.add(_msgs("b"))
    assert box.oldest_age_s() == pytest.approx(42.0)
    box.remove([r.seq for r in box.after(0, 1)])
    assert box.oldest_age_s() == pytest.approx(0.0)
    now[0] += 5.0
    box.close()
    assert box.oldest_age_s() == pytest.approx(5.0) and box.depth == 1  # a stopped station is still read


def _facts(**changes: object) -> PartFacts:
    base = {"result_id": "r1", "camera_id": "cam1", "part_id": 7, "frame_id": 7, "recipe_id": "alpha", "recipe_code": 1,
            "result_code": 2, "reject_bin": 0, "reject_mask": 0, "reason": "timeout", "defects_json": "[]",
            "timings_json": "{}", "processing_us": 41000, "t_verdict_ns": time.time_ns(), "image_ref": ""}  # fmt: skip
    return PartFacts(**{**base, **changes})  # type: ignore[arg-type]


def _valid(kind: str, payload: dict[str, object]) -> None:
    jsonschema.validate(json.loads(encode(payload)), schema(kind), format_checker=jsonschema.FormatChecker())


def test_payloads_fit_their_schemas_and_a_wrong_one_does_not() -> None:
    fail_safe = part_payload("s1", _facts())
    assert fail_safe["verdict"] == "fail_safe_reject" and fail_safe["fail_safe_reason"] == "timeout"
    _valid("part", fail_safe)
    reject = part_payload("s1", _facts(result_code=1, reason="", reject_bin=2, image_ref="r1.png", defects_json=json.dumps(
        [{"class": "dent", "confidence": 0.91, "box": [1.0, 2.0, 30.5, 40.0]}]), timings_json='{"detect": 3.2}'))  # fmt: skip
    assert reject["fail_safe_reason"] is None
    _valid("part", reject)
    _valid("state", state_payload("s1", "offline", time.time_ns()))
    _valid("alarm", alarm_payload("s1", "camera_lost", "Camera lost", "cam1 is failed", True, time.time_ns(), 1))
    with pytest.raises(jsonschema.ValidationError):
        _valid("part", {**reject, "verdict": "maybe"})
    with pytest.raises(jsonschema.ValidationError):
        _valid("part", {k: v for k, v in reject.items() if k != "result_id"})


def test_topic_tree_follows_the_isa95_path() -> None:
    config = UplinkConfig(topic={"enterprise": "acme", "site": "plant1", "area": "packing", "line": "line4"})
    topics = Topics.of(config.topic, "st-9")
    assert topics.part == "acme/plant1/packing/line4/st-9/linecheck/part"
    assert topics.command == "acme/plant1/packing/line4/st-9/linecheck/cmd/recipe"
    assert topics.kind_of(topics.command_result) == "command_result" and topics.kind_of("x/y") is None


@pytest.mark.parametrize(("section", "message"), [
    ({"topic": {"site": "plant/1"}}, "is not a topic level"),
    ({"topic": {"line": "#"}}, "is not a topic level"),
    ({"password_file": "/x"}, "password_file needs a username"),
    ({"outbox_max_rows": 100, "outbox_alarm_rows": 200}, "outbox_alarm_rows"),
    ({"host": "broker:1883"}, "neither an IP address nor a host name"),
    ({"outbox_policy": "drop_all"}, "drop_oldest"),
])  # fmt: skip
def test_bad_uplink_sections_are_refused_with_a_reason(section: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        UplinkConfig.model_validate(section)


@pytest.mark.parametrize(("payload", "expected"), [
    (b'{"recipe_id": "beta", "user": "jo", "request_id": 5}', ("beta", "jo", "5", None)),
    (b'{"recipe_id": ""}', (None, "", None, "recipe_id (a non-empty string) is required")),
    (b"[1]", (None, "", None, "a command is a JSON object")),
    (b'{"recipe_id": "beta", "user": 3}', (None, "", None, "user must be a string")),
])  # fmt: skip
def test_recipe_commands_are_parsed_or_refused_with_a_reason(payload: bytes, expected: tuple[object, ...]) -> None:
    assert parse_command(payload) == expected


def test_uplink_files_resolve_from_the_config_folder_and_a_missing_one_is_a_problem(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.reliability.station_env import REPO, make_env

    uplink = {"username": "st", "password_file": "secrets/st.password", "tls": {"ca_file": "plant-ca.pem"}}
    config = make_env(tmp_path, server_port=None, extra={"uplink": uplink})
    result = subprocess.run([sys.executable, "-m", "line", "validate", str(config)], cwd=REPO,
                            capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr  # validate: 1 = the file has problems
    assert f"uplink.password_file: cannot read {tmp_path / 'secrets' / 'st.password'}" in result.stderr
    assert f"uplink.tls.ca_file: cannot read {tmp_path / 'plant-ca.pem'}" in result.stderr
    assert "Traceback" not in result.stderr
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "st.password").write_text("pw\n")
    (tmp_path / "plant-ca.pem").write_text("not opened by validate\n")
    result = subprocess.run([sys.executable, "-m", "line", "validate", str(config)], cwd=REPO,
                            capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert "uplink" not in result.stderr, result.stderr
