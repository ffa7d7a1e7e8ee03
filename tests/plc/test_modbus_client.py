"""ModbusClientSink against the PLC simulator (``python -m tools.plc_simulator``) as a separate
process: order and seq continuity, PLC requests, deadlines, and a killed/restarted PLC."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pymodbus.client import ModbusTcpClient

from plc.config import ModbusClientConfig
from plc.link_state import LINK_TRANSITIONS
from plc.modbus_client import ModbusClientSink
from plc.vocabulary import LinkState, ResultCode
from tests.plc.conftest import RecordingRequests, verdict, wait_until
from tests.transition_log import TransitionLog, refusals
from tools.bench.plc_latency import start_simulator, stop_process


def records(path: Path, event: str = "verdict") -> list[dict[str, int]]:
    if not path.exists():
        return []
    return [r for r in map(json.loads, path.read_text().splitlines()) if r["event"] == event]


@pytest.fixture
def sink_factory() -> Iterator[list[ModbusClientSink]]:
    made: list[ModbusClientSink] = []
    yield made
    for s in made:
        s.close()


def make(made: list[ModbusClientSink], port: int, requests: RecordingRequests | None = None,
         **kw: object) -> ModbusClientSink:
    s = ModbusClientSink(ModbusClientConfig(port=port, **kw), requests)  # type: ignore[arg-type]
    made.append(s)
    s.start()
    assert s.wait_connected(10)
    return s


def test_verdicts_arrive_in_order_without_gaps(tmp_path: Path, sink_factory: list[ModbusClientSink]) -> None:
    rec = tmp_path / "plc.jsonl"
    proc, port = start_simulator("--record", str(rec))
    try:
        sink = make(sink_factory, port, write_timeout_ms=500)
        sent = [verdict(i) for i in range(300)]
        deliveries = [sink.publish(v) for v in sent]
        assert all(d.delivered for d in deliveries)
        assert [d.seq for d in deliveries] == list(range(1, 301))
        assert wait_until(lambda: len(records(rec)) == 300)
    finally:
        stop_process(proc)
    got = records(rec)
    assert [r["seq"] for r in got] == list(range(1, 301))
    assert [r["part_id"] for r in got] == [v.part_id for v in sent]
    assert [r["result_code"] for r in got] == [int(v.result_code) for v in sent]
    assert [r["processing_us"] for r in got] == [v.processing_us for v in sent]
    t = [r["t_ns"] for r in got]
    assert t == sorted(t) and t[0] > 0
    assert sink.counters()["undelivered"] == 0


def test_single_request_mode_and_seq_continues_after_vision_restart(
    tmp_path: Path, sink_factory: list[ModbusClientSink]
) -> None:
    rec = tmp_path / "plc.jsonl"
    proc, port = start_simulator("--record", str(rec))
    try:
        a = make(sink_factory, port, write_timeout_ms=500, seq_write="single")
        assert [a.publish(verdict(i)).seq for i in range(3)] == [1, 2, 3]
        a.close()
        b = make(sink_factory, port, write_timeout_ms=500)  # a restarted vision system
        assert b.publish(verdict(3)).seq == 4  # continues the PLC's seq, never repeats 3
        assert wait_until(lambda: len(records(rec)) == 4)
    finally:
        stop_process(proc)
    assert [r["seq"] for r in records(rec)] == [1, 2, 3, 4]


def test_plc_requests_and_ack(tmp_path: Path, sink_factory: list[ModbusClientSink],
                              requests_rec: RecordingRequests) -> None:
    proc, port = start_simulator("--recipe-select", "5", "--recipe-select-at", "1.0:6")
    try:
        sink = make(sink_factory, port, requests_rec, write_timeout_ms=500, reject_pulse_ms=20)
        assert requests_rec.wait_for(lambda: requests_rec.recipes)
        assert requests_rec.recipes == [(5, "plc")]
        with ModbusTcpClient("127.0.0.1", port=port, timeout=2) as plc:
            plc.write_registers(101, [777])
            plc.write_register(103, 1)
            assert requests_rec.wait_for(lambda: requests_rec.commands)
            assert requests_rec.commands == [(1, "plc")]
            assert wait_until(lambda: plc.read_holding_registers(103, count=1).registers == [0])  # consumed
            assert wait_until(lambda: sink.next_part_id() == 777)
            d = sink.publish(verdict(0, result_code=ResultCode.REJECT))
            assert d.delivered
            assert wait_until(lambda: plc.read_holding_registers(102, count=1).registers == [d.seq])  # echoed
            assert wait_until(lambda: sink.plc_registers()["result_ack"] == d.seq)
            assert wait_until(lambda: plc.read_coils(0, count=1).bits[0] is False)  # pulse ended
        assert requests_rec.wait_for(lambda: len(requests_rec.recipes) == 2)  # the PLC switched later
        assert requests_rec.recipes == [(5, "plc"), (6, "plc")]
        assert sink.counters()["coil_pulses"] == 1
        assert sink.counters()["missing_acks"] == 0
    finally:
        stop_process(proc)


def test_slow_plc_never_blocks_past_deadline(sink_factory: list[ModbusClientSink]) -> None:
    proc, port = start_simulator("--delay-ms", "150")
    try:
        sink = make(sink_factory, port, write_timeout_ms=20, poll_ms=1000, heartbeat_ms=5000)
        v = verdict(1, deadline_s=0.04)
        d = sink.publish(v)
        returned = time.perf_counter()
        assert not d.delivered
        assert returned - v.deadline < 0.05  # bounded by the write timeout, never waits for the PLC
        assert sink.counters()["undelivered"] == 1
        late = verdict(2, deadline_s=-0.01)
        assert sink.publish(late).error == "deadline"
        assert sink.counters()["late_dropped"] >= 1
    finally:
        stop_process(proc)


def test_a_plc_restart_walks_the_link_table(sink_factory: list[ModbusClientSink],
                                           caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    proc, port = start_simulator()
    proc2 = None
    try:
        sink = ModbusClientSink(ModbusClientConfig(port=port, heartbeat_ms=20, reconnect_min_ms=20,
                                                   reconnect_max_ms=100))  # fmt: skip
        sink_factory.append(sink)
        walked = TransitionLog()
        sink.lifecycle.add_listener(walked)
        sink.start()
        assert sink.wait_connected(10)
        proc.kill()
        proc.wait(5)
        assert wait_until(lambda: sink.link_state is LinkState.RECONNECTING, timeout=30)  # heartbeat failed
        proc2, _ = start_simulator("--port", str(port))
        assert sink.wait_connected(30)
        sink.close()
        path = walked.path()
        # on a busy machine a 20 ms heartbeat can also miss once more after the restart: any
        # number of reconnect rounds, but only along the table, and up, down, up, closed
        assert path[:3] == ["disconnected", "connecting", "connected"] and path[-2:] == ["connected", "closed"], path
        assert "reconnecting" in path[3:-2], path
        assert walked.outside(LINK_TRANSITIONS) == [] and refusals(caplog) == []
        assert sink.counters()["reconnects"] >= 1
    finally:
        stop_process(proc)
        if proc2 is not None:
            stop_process(proc2)


def test_plc_killed_and_restarted(tmp_path: Path, sink_factory: list[ModbusClientSink]) -> None:
    rec1, rec2 = tmp_path / "run1.jsonl", tmp_path / "run2.jsonl"
    proc, port = start_simulator("--record", str(rec1))
    proc2 = None
    try:
        sink = make(sink_factory, port, write_timeout_ms=20, heartbeat_ms=50,
                    reconnect_min_ms=20, reconnect_max_ms=300)
        overruns: list[float] = []
        outcomes: list[bool] = []
        restarted_at: float | None = None
        up_after: float | None = None
        t_restart = float("inf")
        t_kill = time.monotonic() + 1.0
        end = t_kill + 5.0
        killed = False
        while time.monotonic() < end:
            t0 = time.perf_counter()
            v = verdict(len(outcomes), deadline_s=0.04)
            d = sink.publish(v)
            overruns.append(time.perf_counter() - v.deadline)
            outcomes.append(d.delivered)
            if not killed and time.monotonic() >= t_kill:
                proc.kill()
                proc.wait(5)
                killed = True
                t_restart = time.monotonic() + 3.0
            if killed and proc2 is None and time.monotonic() >= t_restart:
                proc2, port2 = start_simulator("--record", str(rec2), "--record-heartbeat", "--port", str(port))
                restarted_at = time.monotonic()
                assert port2 == port
            if restarted_at is not None and sink.link_state == LinkState.CONNECTED  and up_after is None:
                up_after = time.monotonic() - restarted_at
            time.sleep(max(0.0, 0.02 - (time.perf_counter() - t0)))  # 50 verdicts/s
        assert max(overruns) < 0.05  # no publish waited past its deadline (+ scheduling slack)
        assert restarted_at is not None
        assert up_after is not None and up_after < 1.0
        c = sink.counters()
        assert c["undelivered"] == outcomes.count(False) and c["undelivered"] >= 100  # ~3 s at 50/s
        assert c["reconnects"] >= 1
        assert wait_until(lambda: len(records(rec2, "heartbeat")) >= 3)  # heartbeat resumed
        delivered_after = records(rec2)
        assert len(delivered_after) > 20
        seqs = [r["seq"] for r in records(rec1)] + [r["seq"] for r in delivered_after]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)  # never a repeated seq
    finally:
        stop_process(proc)
        if proc2 is not None:
            stop_process(proc2)
