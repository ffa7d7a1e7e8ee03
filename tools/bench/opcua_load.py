"""Benchmark hook: MES load on the OPC UA server while the station runs.

``N`` subscriber clients on ``ResultReady`` and ``M`` clients looping ``GetResults`` (newest
``lookback_s`` of the log, paged) for ``duration_s``; each is its own secure session
(Basic256Sha256 SignAndEncrypt + user), as separate MES systems would be. Run it in its own
process (``start_load_process``) so that the load's own CPU use is not charged to the station
process whose p99 is being measured.

    spec = LoadSpec(endpoint=..., station_id=..., cert=..., key=..., user="mes", password="...",
                    subscribers=4, pollers=2, duration_s=30)
    trust_client_certificate(server_trust_dir, spec.cert)   # once
    load = start_load_process(spec); ...run the station benchmark...; counts = load.result()
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import os
import queue
import shutil
import socket
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from asyncua import Client, ua
from asyncua.crypto import cert_gen
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

LOAD_URI = "urn:linecheck:mes-load"
MV_NAMESPACE = "http://opcfoundation.org/UA/MachineVision"
MV_RESULT_READY = 1024  # ResultReadyEventType of OPC 40100-1


@dataclass(frozen=True)
class LoadSpec:
    endpoint: str
    station_id: str
    cert: Path  # client certificate (DER), in the server's trust list
    key: Path
    user: str
    password: str
    subscribers: int = 4
    pollers: int = 2
    duration_s: float = 30.0
    page_size: int = 500
    lookback_s: float = 3600.0
    publishing_interval_ms: float = 50.0
    nice: int = 0  # 19 in benches: the MES clients stand in for other machines on the network
    # asyncua's client probes the server's state every ``watchdog_intervall`` (default 1 s) and
    # gives up on the connection when one probe takes longer. With 50 secure sessions on a
    # loaded 2-core CI machine, a probe took over 1 s, and clients dropped a healthy server
    # ("Future for request id 6 is already done", then "client is disconnected").
    liveness_probe_s: float = 10.0
    # how long a client waits for one answer (asyncua's default is 4 s, this tool's was 10 s):
    # 50 secure handshakes, each with a scrypt password check, on a busy 2-core machine take longer
    request_timeout_s: float = 10.0
    # a subscriber listens until the flood ends, and at least this long after it subscribed: on
    # a loaded 2-core CI machine the 50 secure handshakes took most of a 10 s flood, and the last
    # subscribers subscribed just before its end and counted no event, from a healthy server
    min_listen_s: float = 2.0
    max_first_event_s: float = 0.0  # a subscriber without an event waits this much longer for one
    # subscribe to the OPC 40100 ResultReadyEvent on the Server object (line.mes.machine_vision)
    # instead of urn:linecheck's ResultReady on the station object
    machine_vision: bool = False


@dataclass
class LoadResult:
    subscribers: int
    pollers: int
    duration_s: float
    events: list[int] = field(default_factory=list)  # ResultReady events per subscriber
    subscribed_after_s: list[float] = field(default_factory=list)  # per subscriber, from the start
    get_results_calls: int = 0
    get_results_rows: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def create_client_certificate(directory: Path, name: str = "mes-load") -> tuple[Path, Path]:
    """A self-signed client certificate + key for the load clients (DER cert, PEM key)."""
    directory.mkdir(parents=True, exist_ok=True)
    key = cert_gen.generate_private_key()
    cert = cert_gen.generate_self_signed_app_certificate(
        key,
        name,
        {"organizationName": "linecheck"},
        [x509.UniformResourceIdentifier(LOAD_URI), x509.DNSName(socket.gethostname())],
        [ExtendedKeyUsageOID.CLIENT_AUTH],
        days=30,
    )
    cert_file, key_file = directory / f"{name}_cert.der", directory / f"{name}_key.pem"
    cert_file.write_bytes(cert.public_bytes(Encoding.DER))
    key_file.write_bytes(cert_gen.dump_private_key_as_pem(key))
    key_file.chmod(0o600)
    return cert_file, key_file


def trust_client_certificate(trust_dir: Path, cert: Path) -> None:
    trust_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cert, trust_dir / cert.name)


async def _client(spec: LoadSpec) -> Client:
    client = Client(spec.endpoint, timeout=spec.request_timeout_s, watchdog_intervall=spec.liveness_probe_s)
    client.application_uri = LOAD_URI
    await client.set_security(
        SecurityPolicyBasic256Sha256,
        str(spec.cert),
        str(spec.key),
        mode=ua.MessageSecurityMode.SignAndEncrypt,
    )
    client.set_user(spec.user)
    client.set_password(spec.password)
    return client


class _Count:
    def __init__(self) -> None:
        self.n = 0

    def event_notification(self, event: Any) -> None:
        self.n += 1


async def _station(client: Client, spec: LoadSpec) -> tuple[Any, int]:
    idx = await client.get_namespace_index("urn:linecheck")
    node = await client.nodes.objects.get_child([f"{idx}:Stations", f"{idx}:{spec.station_id}"])
    return node, idx


async def _subscriber(spec: LoadSpec, end: float, out: LoadResult, slot: int) -> None:
    client = await _client(spec)
    async with client:
        if spec.machine_vision:
            mv = await client.get_namespace_index(MV_NAMESPACE)
            node, etype = client.nodes.server, client.get_node(ua.NodeId(MV_RESULT_READY, mv))  # type: ignore[arg-type]
        else:
            node, idx = await _station(client, spec)
            etype = await client.nodes.base_event_type.get_child(f"{idx}:ResultReadyEventType")
        counter = _Count()
        sub = await client.create_subscription(spec.publishing_interval_ms, counter)
        await sub.subscribe_events(node, etype, queuesize=10000)
        now = time.monotonic()
        out.subscribed_after_s[slot] = round(now - (end - spec.duration_s), 2)
        await asyncio.sleep(max(end, now + spec.min_listen_s) - now)
        # and until its first event (event order, not time: on a busy machine the first one can
        # take longer than min_listen_s to come), at most max_first_event_s
        give_up = time.monotonic() + spec.max_first_event_s
        while counter.n == 0 and time.monotonic() < give_up:
            await asyncio.sleep(0.05)
        out.events[slot] = counter.n
        await sub.delete()


async def _poller(spec: LoadSpec, end: float, out: LoadResult) -> None:
    client = await _client(spec)
    async with client:
        node, idx = await _station(client, spec)
        u32 = ua.VariantType.UInt32
        end = max(end, time.monotonic() + spec.min_listen_s)  # connected late: still poll a while
        while time.monotonic() < end:
            now = datetime.now(timezone.utc)
            start, total = 0, 1
            while start < total and time.monotonic() < end:
                rows, total = await node.call_method(
                    f"{idx}:GetResults",
                    now - timedelta(seconds=spec.lookback_s),
                    now,
                    ua.Variant(start, u32),
                    ua.Variant(spec.page_size, u32),
                )
                out.get_results_calls += 1
                out.get_results_rows += len(rows or [])
                if not rows:
                    break
                start += len(rows)


async def _guard(coro: Any, out: LoadResult) -> None:
    try:
        await coro
    except Exception as exc:  # a failing client is a result to report, not a crash
        out.errors.append(f"{type(exc).__name__}: {exc}")


async def run_load(spec: LoadSpec) -> LoadResult:
    out = LoadResult(spec.subscribers, spec.pollers, spec.duration_s, events=[0] * spec.subscribers,
                     subscribed_after_s=[-1.0] * spec.subscribers)  # fmt: skip
    end = time.monotonic() + spec.duration_s
    tasks = [_guard(_subscriber(spec, end, out, i), out) for i in range(spec.subscribers)]
    tasks += [_guard(_poller(spec, end, out), out) for _ in range(spec.pollers)]
    await asyncio.gather(*tasks)
    return out


def _lower_priority(pid: int, nice: int) -> None:
    """``pid``'s calling thread at ``nice`` under ``SCHED_BATCH`` (Linux: both per thread; threads
    it starts later inherit them): the clients' own CPU is not the station's load."""
    with contextlib.suppress(AttributeError, OSError):  # not Linux: nice only, or nothing
        os.sched_setscheduler(pid, os.SCHED_BATCH, os.sched_param(0))
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, pid, nice)


def _load_main(spec: LoadSpec, results: Any) -> None:
    if spec.nice:
        _lower_priority(0, spec.nice)
    results.put(asyncio.run(run_load(spec)).as_dict())


class LoadProcess:
    def __init__(self, spec: LoadSpec) -> None:
        ctx = mp.get_context("spawn")
        self._results: Any = ctx.Queue(maxsize=1)
        self._process: Any = ctx.Process(target=_load_main, args=(spec, self._results), name="opcua-load")
        self._spec = spec
        self._process.start()
        if spec.nice and self._process.pid is not None:  # at once: the child's imports (asyncua, cryptography) are seconds of CPU
            _lower_priority(self._process.pid, spec.nice)

    def result(self, timeout: float | None = None) -> dict[str, Any]:
        """Wait for the counts (blocks up to ``timeout``, default duration + 60 s)."""
        wait = timeout if timeout is not None else self._spec.duration_s + 60.0
        try:
            counts: dict[str, Any] = self._results.get(timeout=wait)
        except queue.Empty:
            self._process.terminate()
            counts = {"errors": ["load process gave no result"]}
        self._process.join(timeout=10.0)
        self._results.close()
        self._results.join_thread()
        return counts


def start_load_process(spec: LoadSpec) -> LoadProcess:
    return LoadProcess(spec)
