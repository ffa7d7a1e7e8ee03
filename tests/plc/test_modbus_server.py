"""ModbusServerSink against real peers: mbpoll (a Modbus master, Debian package ``mbpoll``),
the pymodbus client, and a raw socket sending garbage."""

from __future__ import annotations

import contextlib
import random
import re
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest
from pymodbus.client import ModbusTcpClient

from plc.config import ModbusServerConfig
from plc.modbus_server import ModbusServerSink
from plc.registers import encode_result
from plc.vocabulary import LinkState, StatusBits
from tests.plc.conftest import RecordingRequests, verdict, wait_until

MBPOLL = shutil.which("mbpoll")
needs_mbpoll = pytest.mark.skipif(MBPOLL is None, reason="mbpoll not installed (apt-get install -y mbpoll)")


@pytest.fixture
def server(requests_rec: RecordingRequests) -> Iterator[ModbusServerSink]:
    sink = ModbusServerSink(ModbusServerConfig(port=0, heartbeat_ms=20), requests_rec)
    sink.start()
    try:
        yield sink
    finally:
        sink.close()


def mbpoll(port: int, *args: str, values: tuple[int, ...] = ()) -> subprocess.CompletedProcess[str]:
    assert MBPOLL is not None
    cmd = [MBPOLL, "-m", "tcp", "-a", "1", "-0", "-t", "4", "-o", "2", "-p", str(port), *args, "127.0.0.1"]
    cmd += [str(v) for v in values]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30)


def mbpoll_read(port: int, start: int, count: int) -> dict[int, int]:
    r = mbpoll(port, "-r", str(start), "-c", str(count), "-1")
    assert r.returncode == 0, r.stderr
    return {int(a): int(v) for a, v in re.findall(r"^\[(\d+)\]:\s+(-?\d+)", r.stdout, re.M)}


@needs_mbpoll
def test_mbpoll_reads_last_verdict(server: ModbusServerSink) -> None:
    for i in range(5):
        assert server.publish(verdict(i)).delivered
    last = verdict(5, processing_us=0x0001_0002)
    d = server.publish(last)
    assert d.delivered and d.seq == 6
    server.set_status(StatusBits.READY | StatusBits.RUNNING, 3)
    regs = mbpoll_read(server.port, 0, 10)
    want = encode_result(server._map, last, 6)
    assert {a: regs[a] for a in want} == want
    assert regs[1] == 3 and regs[2] == 3
    assert wait_until(lambda: mbpoll_read(server.port, 0, 1)[0] != regs[0])  # heartbeat runs


@needs_mbpoll
def test_mbpoll_writes_recipe_select_and_command(server: ModbusServerSink, requests_rec: RecordingRequests) -> None:
    assert mbpoll(server.port, "-r", "100", values=(7,)).returncode == 0
    assert mbpoll(server.port, "-r", "101", values=(4242,)).returncode == 0
    assert mbpoll(server.port, "-r", "103", values=(2,)).returncode == 0
    assert requests_rec.wait_for(lambda: requests_rec.recipes and requests_rec.commands)
    assert requests_rec.recipes == [(7, "plc")]
    assert requests_rec.commands == [(2, "plc")]
    assert server.next_part_id() == 4242
    assert mbpoll_read(server.port, 100, 4) == {100: 7, 101: 4242, 102: 0, 103: 0}  # command consumed
    # the same code again is not a change
    assert mbpoll(server.port, "-r", "100", values=(7,)).returncode == 0
    time.sleep(0.1)
    assert requests_rec.recipes == [(7, "plc")]


@needs_mbpoll
@pytest.mark.parametrize("reg", [0, 3, 4, 9, 50, 104])
def test_mbpoll_write_outside_plc_block_is_refused(server: ModbusServerSink, reg: int) -> None:
    server.publish(verdict(1))
    before = mbpoll_read(server.port, 3, 7)
    r = mbpoll(server.port, "-r", str(reg), values=(7,))
    assert r.returncode != 0
    assert "Illegal data address" in r.stderr
    assert mbpoll_read(server.port, 3, 7) == before


def test_pymodbus_master_result_ack_and_exceptions(server: ModbusServerSink) -> None:
    with ModbusTcpClient("127.0.0.1", port=server.port, timeout=2) as c:
        assert wait_until(lambda: server.link_state == LinkState.CONNECTED)
        d1 = server.publish(verdict(1))
        rr = c.read_holding_registers(3, count=7)
        assert rr.registers[0] == d1.seq
        assert not c.write_register(102, rr.registers[0]).isError()  # ack
        server.publish(verdict(2))  # previous acked
        server.publish(verdict(3))  # seq 2 was never acked
        assert server.counters()["missing_acks"] == 1
        rr = c.write_registers(99, [1, 2])  # straddles into the PLC block: refused as a whole
        assert rr.isError() and rr.exception_code == 2
        assert c.read_coils(0, count=1).exception_code == 1  # not a register function
        assert c.read_holding_registers(10, count=1).exception_code == 2  # unmapped
    late = verdict(9, deadline_s=-0.001)
    assert not server.publish(late).delivered
    assert server.counters()["late_dropped"] == 1


def _frames(rng: random.Random) -> bytes:
    """One garbage chunk: random bytes, truncated MBAP headers, wrong lengths, unknown FCs."""
    kind = rng.randrange(6)
    tid = rng.randrange(65536)
    if kind == 0:
        return rng.randbytes(rng.randrange(1, 300))
    if kind == 1:
        return struct.pack(">HHHB", tid, 0, 6, 1)[: rng.randrange(1, 7)]
    if kind == 2:  # length field disagrees with the payload
        pdu = bytes([3]) + struct.pack(">HH", 0, 10)
        return struct.pack(">HHHB", tid, 0, rng.choice([0, 1, 2, 200, 65535]), 1) + pdu
    if kind == 3:  # unknown / unusual function codes
        fc = rng.choice([0, 7, 8, 0x11, 0x2B, 0x41, 0x5A, 0x80, 0x90, 0xFF, rng.randrange(256)])
        body = bytes([fc]) + rng.randbytes(rng.randrange(0, 10))
        return struct.pack(">HHHB", tid, 0, len(body) + 1, rng.randrange(256)) + body
    if kind == 4:  # FC16 with a byte count that lies
        body = bytes([16]) + struct.pack(">HHB", 100, 2, rng.choice([0, 1, 3, 250])) + rng.randbytes(4)
        return struct.pack(">HHHB", tid, rng.randrange(65536), len(body) + 1, 1) + body
    body = bytes([3]) + struct.pack(">HH", rng.randrange(65536), rng.randrange(65536))  # huge/odd reads
    return struct.pack(">HHHB", tid, 0, len(body) + 1, 1) + body


def test_garbage_never_crashes_or_hangs(server: ModbusServerSink) -> None:
    rng = random.Random(1234)
    sent = 0
    end = time.monotonic() + 3.0
    while time.monotonic() < end and sent < 5000:
        with socket.create_connection(("127.0.0.1", server.port), timeout=1) as s:
            s.settimeout(0.05)
            for _ in range(rng.randrange(1, 30)):
                try:
                    s.sendall(_frames(rng))
                except OSError:
                    break  # server closed the connection: allowed
                sent += 1
            with contextlib.suppress(OSError):
                s.recv(4096)
    assert sent > 500
    d = server.publish(verdict(77))
    with ModbusTcpClient("127.0.0.1", port=server.port, timeout=2) as c:
        for _ in range(3):
            rr = c.read_holding_registers(3, count=7)
            assert not rr.isError() and rr.registers[0] == d.seq


def test_port_in_use_is_a_fatal_error_and_close_frees_the_port() -> None:
    from plc.errors import PlcFatalError

    first = ModbusServerSink(ModbusServerConfig(port=0))
    first.start()
    try:
        second = ModbusServerSink(ModbusServerConfig(port=first.port))
        with pytest.raises(PlcFatalError):
            second.start()
        second.close()
    finally:
        first.close()
    assert first.link_state == LinkState.CLOSED
    with socket.socket() as s:  # the port is closed: nobody answers, and it can be bound again
        assert s.connect_ex(("127.0.0.1", first.port)) != 0
    again = ModbusServerSink(ModbusServerConfig(port=first.port))
    again.start()
    again.close()


def test_close_waits_until_a_polling_plc_read_the_last_verdict() -> None:
    sink = ModbusServerSink(ModbusServerConfig(port=0, close_linger_ms=2000))
    sink.start()
    seen: list[int] = []
    stop = threading.Event()

    def plc() -> None:  # polls result_seq every 100 ms, as a PLC task would
        client = ModbusTcpClient("127.0.0.1", port=sink.port, timeout=1)
        client.connect()
        try:
            while not stop.is_set():
                try:
                    seen.append(client.read_holding_registers(0, count=10).registers[3])
                except Exception:
                    return  # the port closed
                time.sleep(0.1)
        finally:
            client.close()

    poller = threading.Thread(target=plc)
    poller.start()
    try:
        assert wait_until(lambda: len(seen) >= 2)
        for i in range(3):
            assert sink.publish(verdict(i)).delivered
        sink.close()  # right after the last write: the next poll must still see it
    finally:
        stop.set()
        poller.join(5)
    assert seen[-1] == 3


def test_close_does_not_wait_when_no_plc_polls() -> None:
    sink = ModbusServerSink(ModbusServerConfig(port=0, close_linger_ms=600_000))
    sink.start()
    assert sink.publish(verdict(1)).delivered
    t0 = time.monotonic()
    sink.close()
    assert time.monotonic() - t0 < 300  # far below the 600 s linger it would wait for a polling PLC
