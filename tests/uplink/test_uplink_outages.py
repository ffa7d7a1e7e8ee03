"""Store-and-forward against real outages at 50 parts/s: the broker SIGKILLed for 10 s, and a
network partition (station and broker in separate network namespaces joined by a veth pair,
the link cut for 30 s). After de-duplication by ``result_id`` the plant holds every verdict the
station logged, in order; while cut, the link state and its alarm are shown."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from line.loop.alarms import AlarmKind
from line.uplink.sink import UplinkSink
from tests.reliability.faults import running_station, verdicts, wait_for
from tests.reliability.station_env import make_env
from tests.uplink.broker import Collector, Mosquitto, SubCollector
from tests.uplink.helpers import first_occurrences, uplink_section, validate_all
from tests.uplink.test_uplink_broker import _logged_ids, _uplink

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]


def _link(sink: UplinkSink) -> str:
    return sink.uplink.link.state.value


def test_broker_killed_for_10_s_loses_nothing(tmp_path: Path, broker: Mosquitto, collector: Collector) -> None:
    config = make_env(tmp_path, server_port=None, rate_hz=50,
                      extra={"uplink": uplink_section(broker, tmp_path, keepalive_s=5)})  # fmt: skip
    with running_station(config) as station:
        sink = _uplink(station)
        wait_for(lambda: _link(sink) == "connected", 30, "the uplink to connect")
        wait_for(lambda: verdicts(station) >= 100, 60, "100 verdicts")
        time.sleep(1.5)  # the collector's session is in the broker's autosave (every 1 s)
        broker.kill()
        wait_for(lambda: _link(sink) != "connected", 60, "the uplink to notice")
        at_kill = verdicts(station)
        time.sleep(10.0)  # the outage (a scenario length, not an assertion)
        assert sink.uplink.outbox.depth > 0
        wait_for(lambda: station.alarm_set.is_active(AlarmKind.MQTT_LINK_LOST), 30, "the link alarm")
        assert verdicts(station) > at_kill  # the station never waited for the broker
        broker.start()
        wait_for(lambda: _link(sink) == "connected", 60, "the reconnect")
        wait_for(lambda: sink.uplink.outbox.depth < 50, 120, "the outbox to drain")
        wait_for(lambda: not station.alarm_set.is_active(AlarmKind.MQTT_LINK_LOST), 30, "the alarm to clear")
    logged = _logged_ids(config)
    wait_for(lambda: len(first_occurrences(validate_all(collector.messages).get("part", []))) >= len(logged), 120,
             "every logged verdict at the plant")  # fmt: skip
    assert first_occurrences(validate_all(collector.messages)["part"]) == logged


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture
def netns() -> Iterator[tuple[str, str, str, str]]:
    """(namespace, station-side veth, station address, broker address): a link-local /30 on a
    veth pair of our own, names unique to this process."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 for a network namespace")
    tag = f"{os.getpid() % 100000}"
    ns, s_dev, b_dev = f"lc-uplink-{tag}", f"lcs{tag}", f"lcb{tag}"
    octet = os.getpid() % 250 + 1
    s_addr, b_addr = f"169.254.{octet}.1", f"169.254.{octet}.2"
    try:
        _ip("netns", "add", ns)
        _ip("link", "add", s_dev, "type", "veth", "peer", "name", b_dev)
        _ip("link", "set", b_dev, "netns", ns)
        _ip("addr", "add", f"{s_addr}/30", "dev", s_dev)
        _ip("link", "set", s_dev, "up")
        _ip("netns", "exec", ns, "ip", "addr", "add", f"{b_addr}/30", "dev", b_dev)
        _ip("netns", "exec", ns, "ip", "link", "set", b_dev, "up")
        _ip("netns", "exec", ns, "ip", "link", "set", "lo", "up")
    except subprocess.CalledProcessError as exc:
        subprocess.run(["ip", "link", "del", s_dev], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        pytest.skip(f"network namespaces unavailable here: {exc.stderr.decode(errors='replace').strip()}")
    try:
        yield ns, s_dev, s_addr, b_addr
    finally:
        subprocess.run(["ip", "link", "del", s_dev], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def test_network_partition_of_30_s_loses_nothing_and_shows_the_link(tmp_path: Path,
                                                                   netns: tuple[str, str, str, str]) -> None:  # fmt: skip
    ns, s_dev, _, b_addr = netns
    broker = Mosquitto(tmp_path / "broker", host=b_addr, netns=ns, also_listen=("127.0.0.1",)).start()
    plant = SubCollector(broker, "127.0.0.1", tmp_path / "plant.txt")  # inside the broker's namespace
    try:
        wait_for(lambda: "plant-sub-plant" in broker.log_text(), 30, "the plant subscriber")
        config = make_env(tmp_path / "station", server_port=None, rate_hz=50,
                          extra={"uplink": uplink_section(broker, tmp_path, keepalive_s=5)})  # fmt: skip
        with running_station(config) as station:
            sink = _uplink(station)
            wait_for(lambda: _link(sink) == "connected", 30, "the uplink to connect")
            wait_for(lambda: verdicts(station) >= 100, 60, "100 verdicts")
            _ip("link", "set", s_dev, "down")  # the partition
            cut_at = time.monotonic()
            wait_for(lambda: _link(sink) != "connected", 60, "the uplink to notice the partition")
            wait_for(lambda: station.alarm_set.is_active(AlarmKind.MQTT_LINK_LOST), 30, "the link alarm")
            shown = station.snapshot()["sinks"]["mqtt_uplink"]  # type: ignore[index]
            assert shown["link"] in ("reconnecting", "failed") and shown["outbox_depth"] > 0
            time.sleep(max(0.0, 30.0 - (time.monotonic() - cut_at)))  # the 30 s cut (scenario length)
            _ip("link", "set", s_dev, "up")
            wait_for(lambda: _link(sink) == "connected", 120, "the reconnect after the partition")
            wait_for(lambda: sink.uplink.outbox.depth < 50, 120, "the outbox to drain")
        logged = _logged_ids(config)
        wait_for(lambda: len(first_occurrences(validate_all(plant.messages()).get("part", []))) >= len(logged), 120,
                 "every logged verdict at the plant")  # fmt: skip
        assert first_occurrences(validate_all(plant.messages())["part"]) == logged
    finally:
        plant.close()
        broker.stop()
