"""Modbus TCP client role: the PLC is the server and we write each verdict into it
(``ModbusClientSink``).

Design choices (measured with ``tools.bench.plc_latency``, see the module docstring there):

* One persistent connection, TCP_NODELAY, a *synchronous* pymodbus client guarded by one
  lock. ``publish`` runs on the station thread and talks to the socket directly: no thread
  hop, no event-loop wakeup on the hot path (an asyncio loop thread with
  ``run_coroutine_threadsafe`` adds two cross-thread wakeups per write).
* Every request has a bounded timeout: ``min(write_timeout_ms, time left to the deadline)``;
  a verdict is never sent after ``verdict.deadline`` (``Delivery(delivered=False,
  error="deadline")``, counted as late/undelivered, never retried later).
* A timed-out request or a broken socket drops the connection: after a timeout the byte
  stream's state is unknown (a late or half-read response would be taken for the next
  one), so a fresh connection is the only safe continuation. ``publish`` fails fast while
  the link is down.
* One supervisor thread owns the link: connect with capped exponential backoff
  (``reconnect_min_ms`` doubling to ``reconnect_max_ms``, reset on success), then cyclic
  work while connected: poll the PLC -> vision registers every ``poll_ms`` (that read is
  also the active liveness probe: a failing poll drops the link), heartbeat every
  ``heartbeat_ms``, and the off edge of the optional reject coil pulse.
* result_seq: see ``plc.registers`` (1..65535, wraps to 1; data first, seq last unless
  ``seq_write="single"``). A seq is consumed when the request carrying it was sent, so the
  PLC never sees one seq with two different results; a verdict dropped before sending
  consumes none. On each connect we continue from the PLC's current result_seq when it is
  non-zero (a restarted vision system does not repeat the seq the PLC saw last).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ModbusException

from plc.backoff import CappedBackoff
from plc.config import ModbusClientConfig
from plc.errors import PlcFatalError, PlcRetryableError
from plc.link_state import LinkStateHolder
from plc.modbus_server import RequestDispatcher
from plc.registers import (
    contiguous_runs,
    encode_result,
    encode_state,
    next_heartbeat,
    next_seq,
    plan_result_writes,
)
from plc.vocabulary import (
    Delivery,
    LinkState,
    PlcRequests,
    ResultCode,
    ResultSink,
    SinkCounters,
    StatusBits,
    VerdictMessage,
)

log = logging.getLogger(__name__)

_POLL_TIMEOUT_FLOOR_S = 0.25  # cyclic reads may wait longer than a verdict write


def _writer(start: int, values: list[int]) -> Callable[[ModbusTcpClient], Any]:
    return lambda c: c.write_registers(start, values)


def _reader(start: int, count: int) -> Callable[[ModbusTcpClient], Any]:
    return lambda c: c.read_holding_registers(start, count=count)


class ModbusClientSink(ResultSink):
    """Writes verdicts into a PLC's holding registers (docs/plc.md map)."""

    name = "modbus_client"

    def __init__(self, config: ModbusClientConfig, requests: PlcRequests | None = None) -> None:
        self._cfg = config
        self._map = config.map
        self._client = ModbusTcpClient(
            config.host, port=config.port, timeout=config.connect_timeout_ms / 1000.0, retries=0
        )
        self._io = threading.Lock()  # one request at a time on the one connection
        self._wake = threading.Event()
        self._stopping = False
        self.lifecycle = LinkStateHolder(self.name)  # states along plc.link_state.LINK_TRANSITIONS
        self._was_connected = False
        self._thread: threading.Thread | None = None
        self._worker = RequestDispatcher(requests, self.name)
        self._c = SinkCounters()
        self._extra: dict[str, int] = {
            "heartbeats": 0,
            "polls": 0,
            "timeouts": 0,
            "peer_exceptions": 0,
            "link_drops": 0,
            "connect_failures": 0,
            "coil_pulses": 0,
        }
        self._seq = 0
        self._seq_sent_at = 0.0
        self._heartbeat = 0
        self._status: StatusBits = StatusBits.NONE
        self._recipe = 0
        self._plc: dict[int, int] = {a: 0 for a in self._map.plc_to_vision().values()}
        self._coil_off_at: float | None = None
        self._io_timeout = max(config.write_timeout_ms / 1000.0, _POLL_TIMEOUT_FLOOR_S)

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Start the supervisor (which connects in the background) and the request worker."""
        if self._thread is not None:
            return
        self._worker.start()
        self._thread = threading.Thread(target=self._supervise, name=f"{self.name}-supervisor", daemon=True)
        self._thread.start()

    def wait_connected(self, timeout: float) -> bool:
        """Block until the link is up (start-up, tests); True when connected."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.lifecycle.state is LinkState.CONNECTED:
                return True
            time.sleep(0.005)
        return self.lifecycle.state is LinkState.CONNECTED

    def close(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        with self._io:
            self._client.close()
        self.lifecycle.advance(LinkState.CLOSED)
        self._worker.stop()

    # ---------------------------------------------------------------- transactions
    def _call(self, fn: Callable[[ModbusTcpClient], Any], timeout_s: float) -> Any:
        """One request on the connection; the caller holds ``self._io``.

        Raises PlcRetryableError (link dropped) or PlcFatalError (the PLC answered with a
        Modbus exception: wrong address/unit, a configuration error)."""
        client = self._client
        if not client.connected:
            raise PlcRetryableError("not connected")
        client.comm_params.timeout_connect = max(timeout_s, 0.0005)
        try:
            rr = fn(client)
        except (ModbusException, OSError, ValueError) as exc:
            if "No response" in str(exc):
                self._extra["timeouts"] += 1
            self._drop(f"{type(exc).__name__}: {exc}")
            raise PlcRetryableError(str(exc)) from exc
        if rr is None or rr.isError():
            self._extra["peer_exceptions"] += 1
            raise PlcFatalError(f"PLC answered with exception {getattr(rr, 'exception_code', None)}")
        return rr

    def _drop(self, why: str) -> None:
        """Close the socket and let the supervisor reconnect (caller holds ``self._io``)."""
        self._client.close()
        if self.lifecycle.state is LinkState.CONNECTED:
            self._extra["link_drops"] += 1
            log.warning("PLC link dropped: %s", why)
        if not self._stopping:
            self.lifecycle.advance(LinkState.RECONNECTING)
        self._wake.set()

    # ---------------------------------------------------------------- ResultSink
    def publish(self, verdict: VerdictMessage) -> Delivery:
        clock = time.perf_counter
        if clock() >= verdict.deadline:
            return self._late()
        state = self.lifecycle.state
        if state is not LinkState.CONNECTED:
            self._c.undelivered += 1
            return Delivery(False, self.name, error=f"link {state.value}")
        if not self._io.acquire(timeout=max(verdict.deadline - clock(), 0.0)):
            return self._late()
        try:
            seq = next_seq(self._seq)
            regs = encode_result(self._map, verdict, seq)
            for start, values in plan_result_writes(self._map, regs, self._cfg.seq_write):
                left = verdict.deadline - clock()
                if left <= 0:
                    return self._late()
                if self._map.result_seq in range(start, start + len(values)):
                    self._check_ack(clock())
                    self._seq, self._seq_sent_at = seq, clock()  # consumed once sent, acked or not
                timeout = min(self._cfg.write_timeout_ms / 1000.0, left)
                self._call(_writer(start, values), timeout)
            ack = clock()
            if self._cfg.reject_pulse_ms and verdict.result_code in (
                ResultCode.REJECT,
                ResultCode.FAIL_SAFE_REJECT,
            ):
                self._pulse_on(verdict.deadline)
        except PlcRetryableError as exc:
            self._c.undelivered += 1
            late = clock() >= verdict.deadline
            if late:
                self._c.late_dropped += 1
            return Delivery(False, self.name, seq=None, error="deadline" if late else f"link: {exc}")
        except PlcFatalError as exc:
            self._c.undelivered += 1
            return Delivery(False, self.name, error=str(exc))
        finally:
            self._io.release()
        self._c.delivered += 1
        return Delivery(True, self.name, seq=seq, ack_time=ack)

    def _check_ack(self, now: float) -> None:
        """Count the previous result as unacknowledged if the PLC has not echoed it although
        our polls had time to see the echo (3 poll periods); sooner we cannot know."""
        grace = 3 * self._cfg.poll_ms / 1000.0
        if self._seq and self._plc[self._map.result_ack] != self._seq and now - self._seq_sent_at > grace:
            self._c.missing_acks += 1

    def _late(self) -> Delivery:
        self._c.late_dropped += 1
        self._c.undelivered += 1
        return Delivery(False, self.name, error="deadline")

    def _pulse_on(self, deadline: float) -> None:
        """Direct reject output: coil on now (if time is left), off after reject_pulse_ms."""
        left = deadline - time.perf_counter()
        if left <= 0:
            return
        try:
            self._call(
                lambda c: c.write_coil(self._map.reject_coil, True),
                min(self._cfg.write_timeout_ms / 1000.0, left),
            )
            self._extra["coil_pulses"] += 1
            self._coil_off_at = time.monotonic() + (self._cfg.reject_pulse_ms or 0) / 1000.0
            self._wake.set()
        except PlcFatalError as exc:
            log.warning("reject coil write refused: %s", exc)

    def set_status(self, status: StatusBits, active_recipe_code: int) -> None:
        """Stored now, written with the next heartbeat (the PLC alarms on heartbeat, not status)."""
        self._status, self._recipe = status, active_recipe_code
        self._wake.set()

    def next_part_id(self) -> int:
        return self._plc[self._map.next_part_id]

    def plc_registers(self) -> dict[str, int]:
        return {n: self._plc[a] for n, a in self._map.plc_to_vision().items()}

    @property
    def link_state(self) -> LinkState:
        return self.lifecycle.state

    def counters(self) -> dict[str, int]:
        return {
            **self._c.link_counts(),
            "requests_dropped": self._worker.dropped,
            "result_seq": self._seq,
            **self._extra,
        }

    # ---------------------------------------------------------------- supervisor
    def _supervise(self) -> None:
        backoff = CappedBackoff(self._cfg.reconnect_min_ms / 1000.0, self._cfg.reconnect_max_ms / 1000.0)
        while not self._stopping:
            if self.lifecycle.state is not LinkState.CONNECTED:
                if self._connect():
                    backoff.reset()
                else:
                    self._wake.wait(backoff.next_wait())
                    self._wake.clear()
                continue
            try:
                self._cyclic()
            except Exception:  # the supervisor must survive anything; the link is re-made
                log.exception("PLC supervisor cycle failed")
                with self._io:
                    self._drop("supervisor error")

    def _connect(self) -> bool:
        self.lifecycle.attempt()
        with self._io:
            if self._stopping:
                return False
            client = self._client
            client.close()
            client.comm_params.timeout_connect = self._cfg.connect_timeout_ms / 1000.0
            if not client.connect() or client.socket is None:
                self._extra["connect_failures"] += 1
                return False
            client.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._was_connected:  # counted before the state says so: whoever sees CONNECTED sees the count
                self._c.reconnects += 1
            self._was_connected = True
            self.lifecycle.advance(LinkState.CONNECTED)
            try:  # continue the PLC's seq; publish our state at once
                rr = self._call(
                    lambda c: c.read_holding_registers(self._map.result_seq, count=1), self._io_timeout
                )
                if rr.registers and rr.registers[0]:
                    self._seq = rr.registers[0]
                self._write_state()
            except PlcRetryableError as exc:
                self._extra["connect_failures"] += 1
                self._drop(f"link check after connect failed: {exc}")
                return False
            except PlcFatalError as exc:  # the link works; the map does not fit this PLC
                log.error("PLC refused the register map: %s", exc)
        log.info("PLC link up %s:%s", self._cfg.host, self._cfg.port)
        return True

    def _write_state(self) -> None:
        regs = encode_state(self._map, self._heartbeat, self._status, self._recipe)
        for start, values in contiguous_runs(regs):
            self._call(_writer(start, values), self._io_timeout)

    def _cyclic(self) -> None:
        """Poll, heartbeat and coil-off while connected; returns when the link drops."""
        poll_s, hb_s = self._cfg.poll_ms / 1000.0, self._cfg.heartbeat_ms / 1000.0
        next_poll = next_hb = time.monotonic()
        runs = contiguous_runs(self._plc)
        while not self._stopping and self.lifecycle.state is LinkState.CONNECTED:
            now = time.monotonic()
            try:
                if now >= next_poll:
                    with self._io:
                        self._poll(runs)
                    next_poll = max(next_poll + poll_s, now)
                if now >= next_hb:
                    with self._io:
                        self._heartbeat = next_heartbeat(self._heartbeat)
                        self._write_state()
                        self._extra["heartbeats"] += 1
                    next_hb = max(next_hb + hb_s, now)
                if self._coil_off_at is not None and now >= self._coil_off_at:
                    with self._io:
                        self._coil_off_at = None
                        self._call(lambda c: c.write_coil(self._map.reject_coil, False), self._io_timeout)
            except PlcRetryableError:
                return
            except PlcFatalError as exc:
                log.error("PLC refused a cyclic request (check the register map): %s", exc)
                next_poll, next_hb = now + 1.0, now + 1.0  # do not spin on a misconfiguration
            due = min(next_poll, next_hb, self._coil_off_at or next_poll)
            self._wake.wait(max(0.0, due - time.monotonic()))
            self._wake.clear()

    def _poll(self, runs: list[tuple[int, list[int]]]) -> None:
        for start, values in runs:
            rr = self._call(_reader(start, len(values)), self._io_timeout)
            for i, v in enumerate(rr.registers):
                self._on_plc_value(start + i, int(v))
        self._extra["polls"] += 1

    def _on_plc_value(self, addr: int, value: int) -> None:
        m = self._map
        if addr == m.recipe_select and value and value != self._plc[addr]:
            self._worker.submit_recipe(value)
        elif addr == m.command and value:
            self._worker.submit_command(value)
            self._call(lambda c: c.write_register(m.command, 0), self._io_timeout)  # consumed
            value = 0
        self._plc[addr] = value
