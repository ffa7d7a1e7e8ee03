"""Fuzzing the Modbus TCP server role with raw frames: hypothesis-generated MBAP headers and
PDUs (valid function codes with wrong lengths, unknown function codes, truncated and
concatenated frames, garbage) sent to a real ``ModbusServerSink`` on a free port. The server
must survive every one of them, and a valid request must still be answered correctly after
each; PLC requests reach the station only with values a register can hold."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plc.config import ModbusServerConfig
from plc.modbus_server import ModbusServerSink
from plc.vocabulary import LinkState, ResultCode, VerdictMessage

HOST = "127.0.0.1"


class Requests:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self.lock = threading.Lock()

    def select_recipe_code(self, code: int, source: str) -> None:
        with self.lock:
            self.calls.append(("recipe", code))

    def command(self, command: int, source: str) -> None:
        with self.lock:
            self.calls.append(("command", command))


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[ModbusServerSink, Requests]]:
    requests = Requests()
    sink = ModbusServerSink(ModbusServerConfig(port=0, heartbeat_ms=50), requests=requests)
    sink.start()
    # a result in the registers, so the check below reads known values
    sink.publish(VerdictMessage(result_id="r1", camera_id="c", part_id=4242, recipe_id="x", recipe_code=7,
                                result_code=ResultCode.REJECT, reject_mask=2, defect_count=3,
                                processing_us=70_000, deadline=time.perf_counter() + 60))  # fmt: skip
    try:
        yield sink, requests
    finally:
        sink.close()


def _mbap(tid: int, pdu: bytes, unit: int = 1, proto: int = 0, length: int | None = None) -> bytes:
    return struct.pack(">HHHB", tid, proto, len(pdu) + 1 if length is None else length, unit) + pdu


def _exchange(port: int, payload: bytes, wait_s: float = 0.03, expect: int | None = None) -> bytes:
    """Send, then read until ``expect`` bytes, the peer closes, or ``wait_s`` of silence."""
    with socket.create_connection((HOST, port), timeout=2) as sock:
        sock.sendall(payload)
        sock.settimeout(wait_s)
        out = b""
        try:
            while (expect is None or len(out) < expect) and (chunk := sock.recv(4096)):
                out += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        return out


def _assert_still_answers(port: int) -> None:
    """FC3 read of the result block (registers 0..9) on a fresh connection."""
    reply = _exchange(port, _mbap(0x4242, struct.pack(">BHH", 3, 0, 10)), wait_s=2.0, expect=29)
    assert len(reply) == 7 + 2 + 20, f"no valid answer after the fuzz frame: {reply!r}"
    tid, proto, length, unit, fc, nbytes = struct.unpack(">HHHBBB", reply[:9])
    assert (tid, proto, length, fc, nbytes) == (0x4242, 0, 23, 3, 20)
    regs = struct.unpack(">10H", reply[9:])
    assert regs[4] == 4242 and regs[5] == int(ResultCode.REJECT) and regs[6] == 2 and regs[7] == 3


pdus = st.one_of(
    st.binary(max_size=12),  # anything
    st.tuples(st.sampled_from([1, 2, 3, 4, 5, 6, 15, 16, 22, 23, 43, 8, 0, 0x7F, 0x80, 0xFF]),
              st.binary(max_size=260)).map(lambda t: bytes([t[0]]) + t[1]),  # known codes, random bodies
    st.tuples(st.sampled_from([3, 4]), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF))
      .map(lambda t: struct.pack(">BHH", *t)),  # reads anywhere, any count
    st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF))
      .map(lambda t: struct.pack(">BHH", 6, *t)),  # single writes anywhere (100..103 reach the station)
    st.tuples(st.integers(0, 0xFFFF), st.lists(st.integers(0, 0xFFFF), max_size=10), st.integers(0, 255))
      .map(lambda t: struct.pack(f">BHHB{len(t[1])}H", 16, t[0], len(t[1]), t[2], *t[1])),  # FC16, byte count fuzzed
)  # fmt: skip
frames = st.one_of(
    st.builds(_mbap, st.integers(0, 0xFFFF), pdus, st.integers(0, 255), st.just(0)),  # well-framed
    st.builds(_mbap, st.integers(0, 0xFFFF), pdus, st.integers(0, 255), st.integers(0, 0xFFFF),
              st.integers(0, 0xFFFF)),  # lying protocol id / length
    st.binary(min_size=1, max_size=300),  # not Modbus at all
)  # fmt: skip


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    database=None,
)
@given(stream=st.lists(frames, min_size=1, max_size=4), cut=st.integers(0, 8))
def test_raw_frames_never_break_the_server(
    server: tuple[ModbusServerSink, Requests], stream: list[bytes], cut: int
) -> None:
    sink, requests = server
    payload = b"".join(stream)
    if cut and len(payload) > cut:  # a connection that dies mid-frame
        payload = payload[:-cut]
    _exchange(sink.port, payload)
    _assert_still_answers(sink.port)
    assert sink.link_state in (LinkState.CONNECTED, LinkState.DISCONNECTED)
    with requests.lock:
        assert all(0 < value <= 0xFFFF for _, value in requests.calls)
