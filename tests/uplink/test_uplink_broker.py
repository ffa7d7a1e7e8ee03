"""The uplink against a real mosquitto (TLS, logins, ACL): a real station's verdicts arrive in
order and valid against the schema; a wrong password or a topic outside the ACL is refused,
reported and alarmed, never retried in a tight loop; recipe commands switch only when enabled."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import pytest

from line.loop.alarms import AlarmKind
from line.results.reader import ResultLogReader
from line.uplink.sink import UplinkSink
from tests.reliability.faults import running_station, verdicts, wait_for
from tests.reliability.station_env import linecheck, make_env
from tests.uplink.broker import ROOT, Collector, Mosquitto
from tests.uplink.helpers import first_occurrences, uplink_section, validate_all

pytestmark = pytest.mark.timeout(240)


def _uplink(station: object) -> UplinkSink:
    return next(s for s in station.sinks if isinstance(s, UplinkSink))  # type: ignore[attr-defined]


def _logged_ids(config: Path) -> list[str]:
    reader = ResultLogReader(config.parent / "state" / "results.db")
    try:
        return [row.result_id for row in reader.all()]
    finally:
        reader.close()


def test_every_verdict_arrives_in_order_and_every_message_fits_its_schema(tmp_path: Path, broker: Mosquitto,
                                                                          collector: Collector) -> None:  # fmt: skip
    config = make_env(tmp_path, server_port=None, rate_hz=50, extra={"uplink": uplink_section(broker, tmp_path)})
    with running_station(config) as station:
        sink = _uplink(station)
        wait_for(lambda: sink.uplink.link.state.value == "connected", 30, "the uplink to connect")
        wait_for(lambda: verdicts(station) >= 40, 60, "40 verdicts")
        wait_for(lambda: any(json.loads(c)["counts"].get("verdicts", 0) >= 40 for c in collector.on("/counters")), 30,
                 "counters with the 40 verdicts")  # fmt: skip
        snap = sink.uplink.snapshot()
        assert snap["link"] == "connected" and snap["dropped"] == 0
        assert station.snapshot()["sinks"]["mqtt_uplink"]["link"] == "connected"  # type: ignore[index]
    assert station.snapshot()["sinks"]["mqtt_uplink"]["link"] == "closed"  # type: ignore[index]  # still readable
    logged = _logged_ids(config)
    wait_for(lambda: len(first_occurrences(validate_all(collector.messages).get("part", []))) >= len(logged), 30,
             "every logged verdict at the plant")  # fmt: skip
    by_kind = validate_all(collector.messages)
    assert first_occurrences(by_kind["part"]) == logged  # all of them, in the station's order
    part = by_kind["part"][0]
    assert part["station"] == "test-1" and part["recipe"] == {"id": "alpha", "code": 1}
    assert part["verdict"] == "reject" and part["reject_bin"] == 1 and part["defects"][0]["class"] == "missing_cap"
    assert "detect" in part["timings_ms"]
    states = [s["state"] for s in by_kind["state"]]
    assert states[0] == "online" and states[-1] == "offline"  # a clean stop says goodbye itself
    assert max(c["counts"]["verdicts"] for c in by_kind["counters"]) >= 40


def test_retained_state_and_last_will_mark_a_killed_station_offline(tmp_path: Path, broker: Mosquitto) -> None:
    config = make_env(tmp_path, server_port=None, rate_hz=20,
                      extra={"uplink": uplink_section(broker, tmp_path, keepalive_s=5)})  # fmt: skip
    proc = linecheck("run", "-c", str(config), "--duration", "120")
    late: Collector | None = None
    try:
        wait_for(lambda: '"state":"online"' in broker.log_text() or "Received PUBLISH from linecheck-test-1" in
                 broker.log_text(), 120, "the station process to connect")  # fmt: skip
        late = Collector(broker, topic=f"{ROOT}/test-1/linecheck/state").start()  # joins after: the retained one
        wait_for(lambda: late is not None and late.on("/state"), 30, "the retained state")
        assert json.loads(late.on("/state")[-1])["state"] == "online"
        proc.send_signal(signal.SIGKILL)  # no goodbye: the broker publishes the will
        proc.wait(30)
        wait_for(lambda: late is not None and json.loads(late.on("/state")[-1])["state"] == "offline", 60,
                 "the last will")  # fmt: skip
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        if proc.stdout is not None:
            proc.stdout.close()
        if late is not None:
            late.close()


def test_a_wrong_password_is_refused_reported_and_not_retried_in_a_loop(tmp_path: Path, broker: Mosquitto) -> None:
    config = make_env(tmp_path, server_port=None, rate_hz=20,
                      extra={"uplink": uplink_section(broker, tmp_path, password="wrong", refused_retry_s=60)})  # fmt: skip
    with running_station(config) as station:
        uplink = _uplink(station).uplink
        wait_for(lambda: uplink.link.state.value == "refused", 30, "the refusal")
        wait_for(lambda: station.alarm_set.is_active(AlarmKind.MQTT_LINK_LOST), 30, "the link alarm")
        assert "Not authorized" in uplink.snapshot()["last_error"]
        assert _uplink(station).link_state.value == "failed"  # what the HMI and /metrics show
        attempts = uplink.link.connect_attempts
        wait_for(lambda: verdicts(station) >= 40, 60, "the station deciding on regardless")
        time.sleep(2.0)  # a tight loop would have tried hundreds of times by now
        assert uplink.link.connect_attempts <= attempts + 1
        assert uplink.outbox.depth > 0  # kept for when the login is fixed
    assert broker.log_text().count("not authorised") + broker.log_text().count("not authorized") <= 3


def test_a_topic_outside_the_acl_is_refused_and_reported(tmp_path: Path, broker: Mosquitto) -> None:
    topic = {"enterprise": "acme", "site": "plant1", "area": "packing", "line": "line4", "station": "someone-else"}
    config = make_env(tmp_path, server_port=None, rate_hz=20,
                      extra={"uplink": uplink_section(broker, tmp_path, topic=topic)})  # fmt: skip
    with running_station(config) as station:
        uplink = _uplink(station).uplink
        wait_for(lambda: uplink.refused >= 5, 60, "refused publishes")
        wait_for(lambda: station.alarm_set.is_active(AlarmKind.MQTT_OUTBOX), 30, "the outbox alarm")
        assert "Not authorized" in uplink.snapshot()["last_error"]
        alarm = next(a for a in station.alarm_set.snapshot() if a.kind is AlarmKind.MQTT_OUTBOX)
        assert "refused by the broker" in alarm.message
        sent = uplink.sent
        wait_for(lambda: verdicts(station) >= 40, 60, "more verdicts")
        assert uplink.sent <= sent + verdicts(station) + 10  # each refused once, not re-sent in a loop


def _mes_command(broker: Mosquitto, payload: dict[str, str]) -> Collector:
    mes = Collector(broker, topic=f"{ROOT}/test-1/linecheck/cmd/recipe/result", user="mes").start()
    info = mes.client.publish(f"{ROOT}/test-1/linecheck/cmd/recipe", json.dumps(payload), qos=1)
    info.wait_for_publish(10)
    return mes


def test_recipe_command_switches_through_the_audited_path_when_enabled(tmp_path: Path, broker: Mosquitto) -> None:
    config = make_env(tmp_path, server_port=None, rate_hz=20,
                      extra={"uplink": uplink_section(broker, tmp_path, commands_enabled=True)})  # fmt: skip
    with running_station(config) as station:
        sink = _uplink(station)
        wait_for(lambda: sink.uplink.link.state.value == "connected", 30, "the uplink to connect")
        wait_for(lambda: "mqtt-commands" in {t.name for t in threading.enumerate()}, 10, "the command thread")
        wait_for(lambda: "Received SUBSCRIBE from linecheck-test-1" in broker.log_text(), 30, "the subscription")
        mes = _mes_command(broker, {"recipe_id": "beta", "user": "jo", "request_id": "r-1"})
        try:
            wait_for(lambda: mes.on("/result"), 60, "the command's answer")
            answer = json.loads(mes.on("/result")[-1])
            assert answer["ok"] is True and answer["request_id"] == "r-1" and answer["recipe_id"] == "beta"
            assert station.book.active.recipe.id == "beta"  # type: ignore[union-attr]
            mes.client.publish(f"{ROOT}/test-1/linecheck/cmd/recipe", b"{not json", qos=1).wait_for_publish(10)
            wait_for(lambda: len(mes.on("/result")) >= 2, 60, "the refusal")
            refusal = json.loads(mes.on("/result")[-1])
            assert refusal["ok"] is False and "not JSON" in refusal["message"]
        finally:
            mes.close()
    reader = ResultLogReader(config.parent / "state" / "results.db")
    try:
        switches = reader.events("recipe_switch")
    finally:
        reader.close()
    assert any(json.loads(data).get("source") == "mqtt" and json.loads(data).get("user") == "jo"
               for _, _, _, _, data in switches)  # fmt: skip


def test_commands_are_not_subscribed_unless_enabled(tmp_path: Path, broker: Mosquitto) -> None:
    config = make_env(tmp_path, server_port=None, rate_hz=20, extra={"uplink": uplink_section(broker, tmp_path)})
    with running_station(config) as station:
        sink = _uplink(station)
        assert sink.commands is None
        # a subscription goes out right after CONNACK, before the first publish
        wait_for(lambda: "Received PUBLISH from linecheck-test-1" in broker.log_text(), 60, "the first publish")
        assert "Received SUBSCRIBE from linecheck-test-1" not in broker.log_text()
        mes = _mes_command(broker, {"recipe_id": "beta"})
        mes.close()
        assert station.book.active.recipe.id == "alpha"  # type: ignore[union-attr]
