"""OpcUaClientSink against a PLC's OPC UA server (tests/plc/opcua_plc.py, a separate process)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from plc.config import OpcUaClientConfig
from plc.link_state import LINK_TRANSITIONS
from plc.opcua_client import OpcUaClientSink
from plc.vocabulary import LinkState
from tests.plc.conftest import RecordingRequests, verdict, wait_until
from tests.plc.opcua_plc import node_ids
from tests.transition_log import TransitionLog, refusals
from tools.bench.plc_latency import stop_process


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_plc(port: int, *extra: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-m", "tests.plc.opcua_plc", "--port", str(port), *extra],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY"):
        stop_process(proc)
        pytest.fail(f"OPC UA PLC did not start: {line!r}")
    return proc


def records(path: Path, event: str = "verdict") -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [r for r in map(json.loads, path.read_text().splitlines()) if r["event"] == event]


@pytest.fixture
def made() -> Iterator[list[OpcUaClientSink]]:
    sinks: list[OpcUaClientSink] = []
    yield sinks
    for s in sinks:
        s.close()


def cfg(port: int, **kw: object) -> OpcUaClientConfig:
    base: dict[str, object] = dict(endpoint=f"opc.tcp://127.0.0.1:{port}/plc", nodes=node_ids(),
                                   write_timeout_ms=2000, heartbeat_ms=50, poll_ms=20,
                                   reconnect_min_ms=50, reconnect_max_ms=300)
    base.update(kw)
    return OpcUaClientConfig(**base)  # type: ignore[arg-type]


def test_config_refuses_unknown_fields_and_half_security() -> None:
    with pytest.raises(ValueError):
        OpcUaClientConfig(nodes={"result_seq": "ns=2;i=1", "bogus": "ns=2;i=2"})
    with pytest.raises(ValueError):
        OpcUaClientConfig(nodes={"result_seq": "ns=2;i=1"}, security_policy="Basic256Sha256")


def test_verdicts_requests_and_reconnect(tmp_path: Path, made: list[OpcUaClientSink],
                                         requests_rec: RecordingRequests, caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    rec = tmp_path / "ua.jsonl"
    proc = start_plc(port, "--record", str(rec), "--recipe-select", "4")
    proc2 = None
    try:
        sink = OpcUaClientSink(cfg(port), requests_rec)
        made.append(sink)
        walked = TransitionLog()
        sink.lifecycle.add_listener(walked)
        sink.start()
        assert sink.wait_connected(15)
        assert requests_rec.wait_for(lambda: requests_rec.recipes)
        assert requests_rec.recipes == [(4, "plc")]
        sent = [verdict(i, deadline_s=3.0) for i in range(20)]
        ds = [sink.publish(v) for v in sent]
        assert [d.seq for d in ds] == list(range(1, 21)), [d.error for d in ds]
        assert wait_until(lambda: len(records(rec)) == 20, timeout=10)
        got = records(rec)
        assert [r["seq"] for r in got] == list(range(1, 21))
        assert [r["PartId"] for r in got] == [v.part_id for v in sent]
        assert [r["ProcessingUs"] for r in got] == [v.processing_us for v in sent]
        assert wait_until(lambda: sink.plc_registers()["result_ack"] == 20)  # echoed by the PLC
        assert wait_until(lambda: len(records(rec, "heartbeat")) >= 3)
        assert not sink.publish(verdict(99, deadline_s=-0.01)).delivered
        assert sink.counters()["late_dropped"] == 1

        proc.kill()
        proc.wait(5)
        assert wait_until(lambda: sink.link_state != LinkState.CONNECTED, timeout=10)
        v = verdict(50, deadline_s=0.05)
        d = sink.publish(v)
        # it returned at all: the PLC only comes back below, so it did not wait for the link
        assert not d.delivered and time.perf_counter() - v.deadline < 60
        proc2 = start_plc(port, "--record", str(rec))
        assert sink.wait_connected(15)
        d = sink.publish(verdict(51, deadline_s=3.0))
        assert d.delivered and d.seq == 21  # seq continues, PLC restarted at 0
        assert sink.counters()["reconnects"] >= 1
        sink.close()
        assert walked.path() == ["disconnected", "connecting", "connected", "reconnecting", "connected", "closed"]
        assert walked.outside(LINK_TRANSITIONS) == [] and refusals(caplog) == []
    finally:
        stop_process(proc)
        if proc2 is not None:
            stop_process(proc2)


def _client_certificate(d: Path) -> tuple[Path, Path]:
    import asyncio

    from asyncua.crypto.cert_gen import setup_self_signed_certificate
    from cryptography.x509.oid import ExtendedKeyUsageOID

    key, cert = d / "vision-key.pem", d / "vision-cert.der"
    asyncio.run(setup_self_signed_certificate(key, cert, "urn:linecheck:vision", "127.0.0.1",
                                              [ExtendedKeyUsageOID.CLIENT_AUTH], {"commonName": "linecheck"}))
    return cert, key


def test_basic256sha256_with_user(tmp_path: Path, made: list[OpcUaClientSink]) -> None:
    port = free_port()
    rec = tmp_path / "ua.jsonl"
    proc = start_plc(port, "--record", str(rec), "--secure", str(tmp_path), "--user", "vision:s3cret")
    try:
        cert, key = _client_certificate(tmp_path)
        secure = dict(security_policy="Basic256Sha256", security_mode="SignAndEncrypt",
                      certificate=str(cert), private_key=str(key), user="vision")
        wrong = OpcUaClientSink(cfg(port, **secure, password="wrong", reconnect_min_ms=200))
        made.append(wrong)
        wrong.start()
        assert not wrong.wait_connected(2)  # bad password: never connected, keeps retrying
        assert wrong.counters()["connect_failures"] >= 1
        wrong.close()
        plain = OpcUaClientSink(cfg(port))  # no security: the PLC offers no such endpoint
        made.append(plain)
        plain.start()
        assert not plain.wait_connected(2)
        plain.close()
        sink = OpcUaClientSink(cfg(port, **secure, password="s3cret"))
        made.append(sink)
        sink.start()
        assert sink.wait_connected(20)
        d = sink.publish(verdict(1, deadline_s=3.0))
        assert d.delivered and d.seq == 1
        assert wait_until(lambda: [r["seq"] for r in records(rec)] == [1], timeout=10)
    finally:
        stop_process(proc)
