"""OPC UA client role: write each verdict to configured nodes on a PLC's OPC UA server
(``OpcUaClientSink``).

asyncua is asyncio-only, so the client lives on a private event loop in its own thread;
``publish`` (station thread) hands the write over with ``run_coroutine_threadsafe`` and waits
at most ``min(write_timeout_ms, time left to the deadline)``. The coroutine re-checks the
deadline before every Write service call, so a verdict is never sent after its deadline;
a timed-out write is cancelled and counted (late/undelivered), never retried.

Same handshake as Modbus (``plc.registers``): result_seq 1..65535 wrapping to 1; the data
nodes are written first, result_seq in a second Write call once the first is acknowledged
(``seq_write="separate"``; "single" puts seq last in one Write call for servers that apply a
Write atomically). On each connect we continue from the PLC's result_seq when non-zero.

One supervisor task owns the session (asyncua's own auto-reconnect is off so backoff and
``link_state`` are ours): connect with capped exponential backoff (``reconnect_min_ms`` ->
``reconnect_max_ms``, reset on success), then while connected write the heartbeat/status
every ``heartbeat_ms`` and poll the PLC -> vision nodes every ``poll_ms``; with no nodes to
poll, the server state is read every ``keepalive_ms`` as the liveness probe. Any failing
request ends the session and the supervisor reconnects.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from asyncua import Client, Node, ua
from asyncua.crypto import uacrypto

from plc.backoff import CappedBackoff
from plc.config import OPCUA_READ_FIELDS, OPCUA_RESULT_FIELDS, OPCUA_STATE_FIELDS, OpcUaClientConfig
from plc.link_state import LinkStateHolder
from plc.modbus_server import RequestDispatcher
from plc.registers import next_heartbeat, next_seq
from plc.vocabulary import (
    Delivery,
    LinkState,
    PlcRequests,
    ResultSink,
    SinkCounters,
    StatusBits,
    VerdictMessage,
)

__all__ = ["OpcUaClientConfig", "OpcUaClientSink"]

log = logging.getLogger(__name__)

_INT_TYPES = {
    ua.VariantType.SByte, ua.VariantType.Byte, ua.VariantType.Int16, ua.VariantType.UInt16,
    ua.VariantType.Int32, ua.VariantType.UInt32, ua.VariantType.Int64, ua.VariantType.UInt64,
}


def _variant(value: Any, vtype: ua.VariantType) -> ua.DataValue:
    """Convert to the node's own DataType (a PLC refuses a mismatched type)."""
    if vtype in _INT_TYPES:
        value = int(value)
    elif vtype in (ua.VariantType.Float, ua.VariantType.Double):
        value = float(value)
    elif vtype == ua.VariantType.Boolean:
        value = bool(value)
    elif vtype == ua.VariantType.String:
        value = str(value)
    return ua.DataValue(ua.Variant(value, vtype))


async def _certificate_uri(path: str) -> str | None:
    """The URI subject-alternative-name of a certificate (OPC UA application URI)."""
    from cryptography import x509

    cert = await uacrypto.load_certificate(path)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return None
    uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None


class _Session:
    """Resolved nodes and their variant types for one connection."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.nodes: dict[str, Node] = {}
        self.types: dict[str, ua.VariantType] = {}

    async def resolve(self, node_ids: Mapping[str, str]) -> None:
        for field, nid in node_ids.items():
            node = self.client.get_node(nid)
            self.nodes[field] = node
            if field not in OPCUA_READ_FIELDS:
                self.types[field] = await node.read_data_type_as_variant_type()

    async def write(self, values: Mapping[str, Any]) -> None:
        fields = [f for f in values if f in self.nodes]
        if fields:
            await self.client.write_values(
                [self.nodes[f] for f in fields], [_variant(values[f], self.types[f]) for f in fields]
            )


class OpcUaClientSink(ResultSink):
    """Writes verdicts to a PLC's OPC UA server; see the module docstring."""

    name = "opcua_client"

    def __init__(self, config: OpcUaClientConfig, requests: PlcRequests | None = None) -> None:
        self._cfg = config
        self._worker = RequestDispatcher(requests, self.name)
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._task: concurrent.futures.Future[None] | None = None
        self._stop: asyncio.Event | None = None
        self._session: _Session | None = None
        self.lifecycle = LinkStateHolder(self.name)  # states along plc.link_state.LINK_TRANSITIONS
        self._was_connected = False
        self._c = SinkCounters()
        self._extra = {"heartbeats": 0, "polls": 0, "connect_failures": 0, "write_errors": 0, "link_drops": 0}
        self._seq = 0
        self._heartbeat = 0
        self._status = StatusBits.NONE
        self._recipe = 0
        self._plc: dict[str, int] = {f: 0 for f in OPCUA_READ_FIELDS}
        self._write_lock: asyncio.Lock | None = None

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> None:
        if self._thread is not None:
            return
        self._worker.start()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"{self.name}-loop", daemon=True)
        self._thread.start()
        self._task = asyncio.run_coroutine_threadsafe(self._supervise(), self._loop)

    def wait_connected(self, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end and self.lifecycle.state is not LinkState.CONNECTED:
            time.sleep(0.01)
        return self.lifecycle.state is LinkState.CONNECTED

    def close(self) -> None:
        if self._thread is not None:
            stop = self._stop
            if stop is not None:
                self._loop.call_soon_threadsafe(stop.set)
            if self._task is not None:
                try:
                    self._task.result(timeout=10)
                except Exception:  # already logged by the supervisor; closing anyway
                    self._task.cancel()
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._thread = None
        if not self._loop.is_closed() and not self._loop.is_running():
            self._loop.close()
        self.lifecycle.advance(LinkState.CLOSED)
        self._worker.stop()

    # ---------------------------------------------------------------- ResultSink
    def publish(self, verdict: VerdictMessage) -> Delivery:
        now = time.perf_counter()
        if now >= verdict.deadline:
            return self._late()
        state = self.lifecycle.state
        if state is not LinkState.CONNECTED or self._thread is None:
            self._c.undelivered += 1
            return Delivery(False, self.name, error=f"link {state.value}")
        fut = asyncio.run_coroutine_threadsafe(self._write_result(verdict), self._loop)
        try:
            seq = fut.result(timeout=min(self._cfg.write_timeout_ms / 1000.0, verdict.deadline - now))
        except concurrent.futures.TimeoutError:
            fut.cancel()
            if time.perf_counter() >= verdict.deadline:
                return self._late()
            self._c.undelivered += 1
            return Delivery(False, self.name, error="timeout")
        except Exception as exc:  # the session is dropped by the supervisor
            self._c.undelivered += 1
            self._extra["write_errors"] += 1
            return Delivery(False, self.name, error=f"{type(exc).__name__}: {exc}")
        if seq is None:
            return self._late()
        self._c.delivered += 1
        return Delivery(True, self.name, seq=seq, ack_time=time.perf_counter())

    def _late(self) -> Delivery:
        self._c.late_dropped += 1
        self._c.undelivered += 1
        return Delivery(False, self.name, error="deadline")

    async def _write_result(self, v: VerdictMessage) -> int | None:
        """Data first, result_seq last; ``None`` when the deadline passed before sending seq."""
        session, lock = self._session, self._write_lock
        if session is None or lock is None:
            raise ConnectionError("not connected")
        async with lock:
            seq = next_seq(self._seq)
            data = {
                "part_id": v.part_id, "result_code": int(v.result_code), "reject_mask": v.reject_mask,
                "defect_count": v.defect_count, "processing_us": v.processing_us,
                "result_id": v.result_id, "reason": v.reason,
            }
            data = {k: data[k] for k in OPCUA_RESULT_FIELDS}
            try:
                if self._cfg.seq_write == "single":
                    if time.perf_counter() >= v.deadline:
                        return None
                    self._check_ack()
                    self._seq = seq
                    await session.write({**data, "result_seq": seq})
                    return seq
                if time.perf_counter() >= v.deadline:
                    return None
                await session.write(data)
                if time.perf_counter() >= v.deadline:
                    return None
                self._check_ack()
                self._seq = seq  # consumed once sent
                await session.write({"result_seq": seq})
                return seq
            except (OSError, asyncio.TimeoutError, ua.UaError) as exc:
                self._drop(exc)
                raise

    def _check_ack(self) -> None:
        if self._seq and "result_ack" in self._cfg.nodes and self._plc["result_ack"] != self._seq:
            self._c.missing_acks += 1

    def set_status(self, status: StatusBits, active_recipe_code: int) -> None:
        self._status, self._recipe = status, active_recipe_code

    def next_part_id(self) -> int:
        return self._plc["next_part_id"]

    def plc_registers(self) -> dict[str, int]:
        return dict(self._plc)

    @property
    def link_state(self) -> LinkState:
        return self.lifecycle.state

    def counters(self) -> dict[str, int]:
        return {**self._c.link_counts(), "result_seq": self._seq, **self._extra}

    # ---------------------------------------------------------------- supervisor
    def _drop(self, exc: BaseException) -> None:
        if self.lifecycle.state is LinkState.CONNECTED:
            self._extra["link_drops"] += 1
            log.warning("OPC UA link dropped: %r", exc)
            self.lifecycle.advance(LinkState.RECONNECTING)
        self._session = None

    async def _make_client(self) -> Client:
        cfg = self._cfg
        client = Client(cfg.endpoint, timeout=cfg.connect_timeout_ms / 1000.0,
                        watchdog_intervall=cfg.keepalive_ms / 1000.0)
        if cfg.user:
            client.set_user(cfg.user)
        if cfg.password:
            client.set_password(cfg.password)
        if cfg.security_policy != "None":
            # the application URI must be the one in our certificate, or the server refuses us
            uri = await _certificate_uri(cfg.certificate or "")
            if uri:
                client.application_uri = uri
            parts = [cfg.security_policy, cfg.security_mode, cfg.certificate or "", cfg.private_key or ""]
            if cfg.server_certificate:
                parts.append(cfg.server_certificate)
            await client.set_security_string(",".join(parts))
        return client

    async def _supervise(self) -> None:
        self._stop = asyncio.Event()
        self._write_lock = asyncio.Lock()
        backoff = CappedBackoff(self._cfg.reconnect_min_ms / 1000.0, self._cfg.reconnect_max_ms / 1000.0)
        while not self._stop.is_set():
            self.lifecycle.attempt()
            client: Client | None = None
            try:
                client = await self._make_client()
                await asyncio.wait_for(client.connect(), self._cfg.connect_timeout_ms / 1000.0)
                session = _Session(client)
                await session.resolve(self._cfg.nodes)
                current = await session.nodes["result_seq"].read_value()
                if current:
                    self._seq = int(current)
            except Exception as exc:  # connect failures are expected while the PLC is away
                self._extra["connect_failures"] += 1
                log.debug("OPC UA connect to %s failed: %r", self._cfg.endpoint, exc)
                await self._disconnect(client)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), backoff.next_wait())
                continue
            backoff.reset()
            if self._was_connected:
                self._c.reconnects += 1
            self._was_connected = True
            self._session = session
            self.lifecycle.advance(LinkState.CONNECTED)
            try:
                await self._cyclic(session)
            except Exception as exc:  # any failure ends this session; reconnect
                self._drop(exc)
            finally:
                self._session = None
                await self._disconnect(client)
        self.lifecycle.advance(LinkState.CLOSED)

    async def _disconnect(self, client: Client | None) -> None:
        if client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.disconnect(), 2.0)

    async def _cyclic(self, session: _Session) -> None:
        cfg, stop, lock = self._cfg, self._stop, self._write_lock
        if stop is None or lock is None:  # both are made by _supervise before any session
            return
        reads = [f for f in OPCUA_READ_FIELDS if f in session.nodes]
        state_fields = [f for f in OPCUA_STATE_FIELDS if f in session.nodes]
        poll_s = (cfg.poll_ms if reads else cfg.keepalive_ms) / 1000.0
        hb_s, io_timeout = cfg.heartbeat_ms / 1000.0, max(cfg.connect_timeout_ms / 1000.0, 0.25)
        next_poll = next_hb = time.monotonic()
        while not stop.is_set() and self._session is session:
            now = time.monotonic()
            if now >= next_poll:
                if reads:
                    values = await asyncio.wait_for(
                        session.client.read_values([session.nodes[f] for f in reads]), io_timeout
                    )
                    for f, v in zip(reads, values, strict=True):
                        await self._on_plc_value(session, f, int(v or 0), io_timeout)
                else:  # liveness probe
                    await asyncio.wait_for(session.client.nodes.server_state.read_value(), io_timeout)
                self._extra["polls"] += 1
                next_poll = max(next_poll + poll_s, now)
            if state_fields and now >= next_hb:
                self._heartbeat = next_heartbeat(self._heartbeat)
                state = {"heartbeat": self._heartbeat, "status": int(self._status), "active_recipe": self._recipe}
                async with lock:
                    await asyncio.wait_for(session.write({f: state[f] for f in state_fields}), io_timeout)
                self._extra["heartbeats"] += 1
                next_hb = max(next_hb + hb_s, now)
            due = min(next_poll, next_hb) if state_fields else next_poll
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, due - time.monotonic()))

    async def _on_plc_value(self, session: _Session, field: str, value: int, timeout: float) -> None:
        if field == "recipe_select" and value and value != self._plc[field]:
            self._worker.submit_recipe(value)
        elif field == "command" and value:
            self._worker.submit_command(value)
            node = session.nodes["command"]
            vtype = await node.read_data_type_as_variant_type()
            await asyncio.wait_for(node.write_value(_variant(0, vtype)), timeout)  # consumed
            value = 0
        self._plc[field] = value
