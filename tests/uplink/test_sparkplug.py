"""Sparkplug B edge-node mode against a real mosquitto: a plant-side subscriber decodes NBIRTH,
DBIRTH and DDATA with the same proto, aliases resolve to the names of the birth, ``seq`` counts
each birth's messages, the primary host's STATE holds and resumes publishing (with a rebirth and
nothing lost), NCMD Rebirth is obeyed, and a SIGKILLed station's NDEATH carries the bdSeq of its
NBIRTH. The vendored generated module is what grpcio-tools makes of the vendored proto."""

from __future__ import annotations

import json
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from line.results.reader import ResultLogReader
from line.uplink.config import SparkplugConfig
from line.uplink.sink import UplinkSink
from line.uplink.sparkplug import sparkplug_b_pb2 as pb
from line.uplink.sparkplug.node import BY_NAME, REBIRTH, BdSeqStore, SparkplugNode, state_online, value_of
from tests.reliability.faults import running_station, verdicts, wait_for
from tests.reliability.station_env import linecheck, make_env
from tests.uplink.broker import Collector, Mosquitto
from tests.uplink.helpers import uplink_section

pytestmark = pytest.mark.timeout(240)

GROUP, HOST = "packing", "scada-1"
STATE_TOPIC = f"spBv1.0/STATE/{HOST}"


def test_vendored_module_is_what_grpcio_tools_makes_of_the_proto() -> None:
    pytest.importorskip("grpc_tools")
    from tests.uplink.sparkplug_gen import FOLDER, generate

    for name, text in generate().items():
        vendored = (FOLDER / name).read_text()
        assert vendored == text, f"{name} differs from a fresh generation: python -m tests.uplink.sparkplug_gen"


def test_bdseq_is_persisted_per_connect_and_wraps_at_256(tmp_path: Path) -> None:
    store = BdSeqStore(tmp_path / "bdseq")
    assert [store.take() for _ in range(3)] == [0, 1, 2]
    assert BdSeqStore(tmp_path / "bdseq").take() == 3  # a restarted station goes on
    (tmp_path / "bdseq").write_text("255")
    assert store.take() == 255 and store.take() == 0


def test_state_and_rebirth_commands_are_read(tmp_path: Path) -> None:
    assert state_online(b'{"online": true, "timestamp": 1}') is True
    assert state_online(b'{"online": false, "timestamp": 2}') is False
    assert state_online(b"OFFLINE") is False and state_online(b"garbage") is None
    node = SparkplugNode(SparkplugConfig(group_id=GROUP, primary_host_id=HOST), "st", tmp_path / "bdseq")
    assert not node.host_online
    node.on_message(STATE_TOPIC, b'{"online": true, "timestamp": 1}')
    assert node.host_online and node.rebirth.is_set()
    node.rebirth.clear()
    command = pb.Payload(timestamp=1)
    command.metrics.add(name=REBIRTH, datatype=pb.Boolean, boolean_value=True)
    assert node.on_message(f"spBv1.0/{GROUP}/NCMD/st", command.SerializeToString()) and node.rebirth.is_set()
    assert not node.on_message("acme/other", b"")
    topic, will = node.death()  # a reconnect: wait for this connection's STATE again
    assert topic == f"spBv1.0/{GROUP}/NDEATH/st" and not node.host_online
    assert [(m.name, m.long_value) for m in pb.Payload.FromString(will).metrics] == [("bdSeq", 0)]


@dataclass
class Decoded:
    """The plant side: every Sparkplug message of the station decoded, DDATA resolved by the
    aliases of the last DBIRTH."""

    births: list[pb.Payload] = field(default_factory=list)  # NBIRTH
    dbirths: list[pb.Payload] = field(default_factory=list)
    deaths: list[pb.Payload] = field(default_factory=list)
    data: list[dict[str, Any]] = field(default_factory=list)  # DDATA, alias -> name
    seqs: list[list[int]] = field(default_factory=list)  # per birth: the seq of each message


def decode(messages: list[tuple[str, bytes]], edge: str = "test-1") -> Decoded:
    out = Decoded()
    names: dict[int, tuple[str, int]] = {}
    for topic, raw in messages:
        parts = topic.split("/")
        if len(parts) < 4 or parts[:2] != ["spBv1.0", GROUP] or parts[3] != edge:
            continue
        payload = pb.Payload.FromString(raw)
        kind = parts[2]
        if kind == "NBIRTH":
            out.births.append(payload)
            out.seqs.append([payload.seq])
        elif kind == "NDEATH":
            out.deaths.append(payload)
        elif kind == "DBIRTH":
            out.dbirths.append(payload)
            names = {m.alias: (m.name, m.datatype) for m in payload.metrics}
            out.seqs[-1].append(payload.seq)
        elif kind == "DDATA":
            out.seqs[-1].append(payload.seq)
            row = {}
            for m in payload.metrics:
                assert not m.name, "DATA carries aliases only"
                name, dtype = names[m.alias]  # KeyError: an alias the birth did not declare
                assert m.datatype == dtype
                row[name] = value_of(m, dtype)
                row["historical"] = m.is_historical
            out.data.append(row)
    return out


def bd_seq(payload: pb.Payload) -> int:
    return next(int(m.long_value) for m in payload.metrics if m.name == "bdSeq")


def part_ids(decoded: Decoded) -> list[str]:
    seen: set[str] = set()
    ids = []
    for row in decoded.data:
        rid = row.get("Part/ResultId")
        if rid and rid not in seen:
            seen.add(rid)
            ids.append(rid)
    return ids


def _section(broker: Mosquitto, folder: Path, sparkplug: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return uplink_section(broker, folder, sparkplug={"group_id": GROUP, **(sparkplug or {})}, **extra)


def _host_state(host: Collector, online: bool) -> None:
    payload = json.dumps({"online": online, "timestamp": 0}).encode()
    host.client.publish(STATE_TOPIC, payload, qos=1, retain=True).wait_for_publish(10)


def test_births_aliases_state_hold_and_rebirth_lose_nothing(tmp_path: Path, broker: Mosquitto) -> None:
    plant = Collector(broker, topic="spBv1.0/#").start()
    try:
        _host_state(plant, True)
        config = make_env(tmp_path, server_port=None, rate_hz=50,
                          extra={"uplink": _section(broker, tmp_path, {"primary_host_id": HOST})})  # fmt: skip
        with running_station(config) as station:
            uplink = next(s for s in station.sinks if isinstance(s, UplinkSink)).uplink
            wait_for(lambda: len(part_ids(decode(plant.messages))) >= 20, 60, "20 parts as DDATA")
            first = decode(plant.messages)
            assert len(first.births) == 1 and bd_seq(first.births[0]) == 0
            nbirth_names = {m.name for m in first.births[0].metrics}
            assert {"bdSeq", REBIRTH} <= nbirth_names
            dbirth = {m.name: m.alias for m in first.dbirths[0].metrics}
            assert dbirth["Part/ResultId"] == BY_NAME["Part/ResultId"].alias and "Counters/verdicts" in dbirth
            row = next(r for r in first.data if "Part/ResultId" in r)
            assert row["Part/Verdict"] == "reject" and row["Part/RejectBin"] == 1 and row["Part/Recipe"] == "alpha"
            assert json.loads(row["Part/Defects"])[0]["class"] == "missing_cap"
            assert first.seqs[0][:3] == [0, 1, 2]

            # the primary host goes offline: nothing more leaves, the outbox grows
            _host_state(plant, False)
            wait_for(lambda: not uplink.sparkplug.host_online, 30, "the station to hear OFFLINE")  # type: ignore[union-attr]
            held_at = verdicts(station)
            wait_for(lambda: uplink.outbox.depth >= 20 and verdicts(station) >= held_at + 40, 60, "the outbox growing")
            count = len(decode(plant.messages).data)
            wait_for(lambda: verdicts(station) >= held_at + 60, 60, "more parts while held")
            assert len(decode(plant.messages).data) == count  # held: not one more DDATA

            # back online: a rebirth, then the held parts
            _host_state(plant, True)
            wait_for(lambda: len(decode(plant.messages).births) >= 2, 60, "the rebirth")
            wait_for(lambda: uplink.outbox.depth < 20, 60, "the outbox draining")
            resumed = [r for r in decode(plant.messages).data[count:] if r.get("Part/ResultId")]
            assert resumed[0]["historical"]  # held through the offline host: filed as history
            live = [r for r in first.data if r.get("Part/ResultId") and not r["historical"]]
            assert live  # decided after the first birth: current values

            # NCMD Node Control/Rebirth
            command = pb.Payload(timestamp=0)
            command.metrics.add(name=REBIRTH, datatype=pb.Boolean, boolean_value=True)
            plant.client.publish(f"spBv1.0/{GROUP}/NCMD/test-1", command.SerializeToString(), qos=1)
            wait_for(lambda: len(decode(plant.messages).births) >= 3, 60, "the commanded rebirth")
        reader = ResultLogReader(config.parent / "state" / "results.db")
        try:
            logged = [r.result_id for r in reader.all()]
        finally:
            reader.close()
        wait_for(lambda: len(part_ids(decode(plant.messages))) >= len(logged), 60, "every logged part")
        done = decode(plant.messages)
        assert part_ids(done) == logged  # nothing lost, in the station's order
        assert {bd_seq(b) for b in done.births} == {0}  # rebirths within one connection keep its bdSeq
        assert all(seqs[:2] == [0, 1] for seqs in done.seqs)  # each birth counts its own messages from 0
        assert all(b == (a + 1) % 256 for a, b in zip(done.seqs[0], done.seqs[0][1:], strict=False))  # first birth, no re-sends
        assert done.deaths and bd_seq(done.deaths[-1]) == 0  # a clean stop says NDEATH itself
    finally:
        plant.close()


def test_a_killed_station_ndeath_carries_the_bdseq_of_its_birth(tmp_path: Path, broker: Mosquitto) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "sparkplug-bdseq").write_text("41")  # an earlier run's
    plant = Collector(broker, topic="spBv1.0/#").start()
    config = make_env(tmp_path, server_port=None, rate_hz=20,
                      extra={"uplink": _section(broker, tmp_path, keepalive_s=5)})  # fmt: skip
    proc = linecheck("run", "-c", str(config), "--duration", "120")
    try:
        wait_for(lambda: decode(plant.messages).births or proc.poll() is not None, 120, "the station's NBIRTH")
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else proc.returncode
        assert bd_seq(decode(plant.messages).births[0]) == 41
        wait_for(lambda: decode(plant.messages).data, 60, "DDATA")
        proc.send_signal(signal.SIGKILL)  # no goodbye: the broker publishes the will
        proc.wait(30)
        wait_for(lambda: decode(plant.messages).deaths, 60, "the NDEATH will")
        assert [bd_seq(d) for d in decode(plant.messages).deaths] == [41]
        assert (tmp_path / "state" / "sparkplug-bdseq").read_text() == "42"  # the next connect's
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        if proc.stdout is not None:
            proc.stdout.close()
        plant.close()
