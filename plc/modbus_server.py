"""Modbus TCP server role: the PLC polls us (``ModbusServerSink``).

The pymodbus server runs in its own thread with its own event loop, so nothing the PLC does
(slow reads, garbage frames, many connections) can stall the station thread that calls
``publish``. The register image lives in this object, guarded by a lock; pymodbus's device
``action`` hook (called on every request before it touches the datastore) copies the
vision -> PLC registers into the served block on reads and validates/dispatches PLC writes.
That gives two properties the handshake needs:

* one PLC read sees one consistent result: ``publish`` swaps all result registers under the
  lock and a read copies them under the same lock, so a read of 3..9 never mixes two verdicts
  (the PLC must read the result block in *one* request; reading seq and data separately can
  mix, as with any Modbus device);
* the PLC can write only the PLC -> vision registers: vision -> PLC registers are declared
  read-only and every other address invalid, so pymodbus answers ILLEGAL_DATA_ADDRESS
  (exception 2) itself; non-register function codes get ILLEGAL_FUNCTION.

PLC requests (recipe select on change, commands) are handed to a worker thread through a
bounded queue, so a slow station callback never blocks the Modbus loop; drops are counted.
A written command is consumed: the command register reads back 0 once accepted.
recipe_select is acted on when it changes to a non-zero code (0 means "no request").
The server answers every unit id (Modbus TCP unit ids only matter behind gateways).
``missing_acks`` counts results replaced by the next one before the PLC echoed their seq
into result_ack (the PLC may have missed that result).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, cast

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from plc.config import ModbusServerConfig
from plc.errors import PlcFatalError
from plc.registers import encode_result, encode_state, next_heartbeat, next_seq
from plc.vocabulary import (
    Delivery,
    LinkState,
    PlcRequests,
    ResultSink,
    SinkCounters,
    StatusBits,
    VerdictMessage,
)

log = logging.getLogger(__name__)

_READ_FCS = frozenset({3, 4})
_WRITE_FCS = frozenset({6, 16, 22, 23})


class RequestDispatcher:
    """Runs PlcRequests callbacks off the protocol thread, through a bounded queue."""

    def __init__(self, requests: PlcRequests | None, name: str, maxsize: int = 64) -> None:
        self._requests = requests
        self._q: queue.Queue[Callable[[], None] | None] = queue.Queue(maxsize=maxsize)
        self._thread = threading.Thread(target=self._run, name=f"{name}-requests", daemon=True)
        self.dropped = 0
        self.failed = 0

    def start(self) -> None:
        self._thread.start()

    def submit_recipe(self, code: int) -> None:
        if self._requests is not None:
            req = self._requests
            self._put(lambda: req.select_recipe_code(code, "plc"))

    def submit_command(self, command: int) -> None:
        if self._requests is not None:
            req = self._requests
            self._put(lambda: req.command(command, "plc"))

    def _put(self, fn: Callable[[], None]) -> None:
        try:
            self._q.put_nowait(fn)
        except queue.Full:
            self.dropped += 1
            log.warning("PLC request dropped: request queue full")

    def _run(self) -> None:
        while (fn := self._q.get()) is not None:
            try:
                fn()
            except Exception:  # a failing callback must not end the worker
                self.failed += 1
                log.exception("PLC request callback failed")

    def stop(self) -> None:
        if self._thread.is_alive():
            while True:
                try:
                    self._q.put(None, timeout=0.1)
                    break
                except queue.Full:
                    with contextlib.suppress(queue.Empty):
                        self._q.get_nowait()
            self._thread.join(timeout=5)


class ModbusServerSink(ResultSink):
    """Serves the register map of docs/plc.md as holding registers; the PLC polls it."""

    name = "modbus_server"

    def __init__(self, config: ModbusServerConfig, requests: PlcRequests | None = None) -> None:
        self._cfg = config
        self._map = config.map
        self._lock = threading.Lock()
        self._regs: dict[int, int] = {a: 0 for a in self._map.vision_to_plc().values()}
        self._plc_regs: dict[int, int] = {a: 0 for a in self._map.plc_to_vision().values()}
        self._seq = 0
        self._read_seq: int | None = None  # the result_seq a PLC read last (None: nobody polled)
        self._heartbeat = 0
        self._status = StatusBits.NONE
        self._recipe = 0
        self._counters = SinkCounters()
        self._worker = RequestDispatcher(requests, self.name)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: ModbusTcpServer | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._closed = False
        self.port: int = config.port

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Bind and serve; returns once listening (``.port`` holds the bound port)."""
        if self._thread is not None:
            return
        self._worker.start()
        self._thread = threading.Thread(target=self._run, name=f"{self.name}-loop", daemon=True)
        self._thread.start()
        self._ready.wait(timeout=10)
        if self._start_error is not None or not self._ready.is_set():
            err = self._start_error
            self.close()
            raise PlcFatalError(f"Modbus server could not listen on {self._cfg.host}:{self._cfg.port}: {err}")

    def close(self) -> None:
        """Stop serving, close the port and join the threads; idempotent. A PLC that has been
        polling gets to read the last verdict first (``close_linger_ms`` at most)."""
        if not self._closed:
            self._closed = True  # publish refuses from here: the last verdict stays the last
            self._linger()
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self._worker.stop()

    def _linger(self) -> None:
        end = time.monotonic() + self._cfg.close_linger_ms / 1000.0
        while self._thread is not None:
            with self._lock:
                if self._read_seq is None or self._read_seq == self._seq:
                    return
            if time.monotonic() >= end:
                log.warning("Modbus server closing before the PLC read result_seq %d", self._seq)
                return
            time.sleep(0.002)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to start(); the thread must end cleanly
            self._start_error = exc
            self._ready.set()
        finally:
            with contextlib.suppress(Exception):
                pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
                for t in pending:
                    t.cancel()
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        device = SimDevice(id=0, simdata=self._simdata(), action=self._action)
        server = ModbusTcpServer(device, address=(self._cfg.host, self._cfg.port))
        self._server = server
        await server.serve_forever(background=True)
        listener: Any = server.transport  # an asyncio.Server for a listener
        self.port = listener.sockets[0].getsockname()[1] if listener is not None else self._cfg.port
        hb = asyncio.create_task(self._heartbeat_loop())
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            hb.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await hb
            await server.shutdown()
            if listener is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(listener.wait_closed(), 2)

    def _simdata(self) -> list[SimData]:
        data = [SimData(a, values=0, datatype=DataType.REGISTERS, readonly=True) for a in self._regs]
        data += [SimData(a, values=0, datatype=DataType.REGISTERS) for a in self._plc_regs]
        return data

    async def _heartbeat_loop(self) -> None:
        period = self._cfg.heartbeat_ms / 1000.0
        nxt = time.monotonic()
        while True:
            nxt += period
            await asyncio.sleep(max(0.0, nxt - time.monotonic()))
            with self._lock:
                self._heartbeat = next_heartbeat(self._heartbeat)
                self._regs[self._map.heartbeat] = self._heartbeat

    # ---------------------------------------------------------------- Modbus hook
    async def _action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """pymodbus device hook; runs on the server loop before the datastore is touched."""
        if function_code not in _READ_FCS and function_code not in _WRITE_FCS:
            return ExcCodes.ILLEGAL_FUNCTION
        if set_values is None:
            with self._lock:
                for a, v in self._regs.items():
                    registers[a - start_address] = v
                if address <= self._map.result_seq < address + count:
                    self._read_seq = self._seq
            return None
        # pymodbus already refused read-only (vision -> PLC) and undefined addresses
        values = cast(list[int], set_values)
        for i, raw in enumerate(values):
            addr, value = address + i, int(raw) & 0xFFFF
            if addr not in self._plc_regs:
                return ExcCodes.ILLEGAL_ADDRESS
            if addr == self._map.command:
                if value:
                    self._worker.submit_command(value)
                values[i] = 0  # consumed: reads back 0 once accepted
                value = 0
            elif addr == self._map.recipe_select and value and value != self._plc_regs[addr]:
                self._worker.submit_recipe(value)
            with self._lock:
                self._plc_regs[addr] = value
        return None

    # ---------------------------------------------------------------- ResultSink
    def publish(self, verdict: VerdictMessage) -> Delivery:
        if self._closed:
            self._counters.undelivered += 1
            return Delivery(False, self.name, error="closed")
        if time.perf_counter() > verdict.deadline:
            self._counters.late_dropped += 1
            self._counters.undelivered += 1
            return Delivery(False, self.name, error="deadline")
        with self._lock:
            if self._seq and self._plc_regs[self._map.result_ack] != self._seq:
                self._counters.missing_acks += 1
            self._seq = next_seq(self._seq)
            self._regs.update(encode_result(self._map, verdict, self._seq))
            seq = self._seq
        self._counters.delivered += 1
        return Delivery(True, self.name, seq=seq, ack_time=time.perf_counter())

    def set_status(self, status: StatusBits, active_recipe_code: int) -> None:
        with self._lock:
            self._status, self._recipe = status, active_recipe_code
            self._regs.update(encode_state(self._map, self._heartbeat, status, active_recipe_code))

    def next_part_id(self) -> int:
        """The part id the PLC announced for the next trigger (register next_part_id)."""
        with self._lock:
            return self._plc_regs[self._map.next_part_id]

    def plc_registers(self) -> dict[str, int]:
        """Current PLC -> vision registers by name (diagnostics, HMI)."""
        with self._lock:
            return {n: self._plc_regs[a] for n, a in self._map.plc_to_vision().items()}

    @property
    def link_state(self) -> LinkState:
        if self._closed:
            return LinkState.CLOSED
        server = self._server
        if server is None or not self._ready.is_set():
            return LinkState.CONNECTING
        return LinkState.CONNECTED if server.active_connections else LinkState.DISCONNECTED

    def counters(self) -> dict[str, int]:
        c = self._counters
        server = self._server
        return {
            "delivered": c.delivered,
            "undelivered": c.undelivered,
            "late_dropped": c.late_dropped,
            "missing_acks": c.missing_acks,
            "requests_dropped": self._worker.dropped,
            "requests_failed": self._worker.failed,
            "connections": len(server.active_connections) if server is not None else 0,
            "result_seq": self._seq,
            "heartbeat": self._heartbeat,
        }
