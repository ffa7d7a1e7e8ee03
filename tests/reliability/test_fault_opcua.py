"""An OPC UA client flood under a running station: 50 MES clients (40 ResultReady subscribers,
10 GetResults pollers, each its own Basic256Sha256 SignAndEncrypt session, from
``tools.bench.opcua_load`` in a process of its own) against the station's MES server process. The
station keeps deciding: every part one verdict, all logged, the verdict rate holds; the flood's
clients get their events and pages."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from line.mes.config import hash_password
from plc.vocabulary import LinkState
from tests.reliability.faults import assert_every_part_logged_once, running_station, verdicts, wait_for
from tests.reliability.station_env import make_env
from tools.bench.opcua_load import (
    LoadSpec,
    create_client_certificate,
    start_load_process,
    trust_client_certificate,
)

CLIENTS = 50
FLOOD_S = 10.0
PASSWORD = "mes-flood-secret"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.timeout(900)  # the start and 50 secure handshakes on a busy machine: minutes
def test_fifty_opcua_clients_do_not_stop_the_station(tmp_path: Path) -> None:
    endpoint = f"opc.tcp://127.0.0.1:{_free_port()}/linecheck/"
    opcua = {
        "endpoint": endpoint,
        "users": {"mes": {"password_hash": hash_password(PASSWORD, n=1024), "role": "reader"}},  # cheap: the flood, not scrypt, is tested
        "state_dir": str(tmp_path / "opcua"),
        # generous waits: on a busy machine the server (nice 10, SCHED_BATCH) gets a small share
        # of the cores for its start and for the 50 secure handshakes
        "start_timeout_s": 300,
        "activation_timeout_s": 300,
    }
    config = make_env(tmp_path, extra={"opcua_server": opcua})
    cert, key = create_client_certificate(tmp_path / "load")
    trust_client_certificate(tmp_path / "opcua" / "pki" / "trusted", cert)
    with running_station(config) as station:
        mes = next(s for s in station.sinks if s.name != "modbus_server")
        wait_for(lambda: mes.link_state is LinkState.CONNECTED, 60, "the MES server process")
        # nice 19: the 50 clients stand in for other machines on the network (as in bench); their
        # own RSA handshakes are not the station's load
        spec = LoadSpec(endpoint=endpoint, station_id="test-1", cert=cert, key=key, user="mes",
                        password=PASSWORD, subscribers=CLIENTS - 10, pollers=10, duration_s=FLOOD_S,
                        page_size=200, lookback_s=600, request_timeout_s=120, max_first_event_s=120,
                        nice=19)  # fmt: skip
        # the same station without the flood, just before it: the reference for the flood window
        # (a busy machine slows both alike; an absolute rate would measure the machine)
        b0_ns, before = time.time_ns(), verdicts(station)
        time.sleep(FLOOD_S / 2)
        baseline, b1_ns = verdicts(station) - before, time.time_ns()
        t0_ns, at = time.time_ns(), verdicts(station)
        counts = start_load_process(spec).result(timeout=FLOOD_S + 600)
        during, t1_ns = verdicts(station) - at, time.time_ns()
        mes_counters = mes.counters()
    rows = assert_every_part_logged_once(station, config)
    assert counts["errors"] == [], counts["errors"][:5]
    assert len(counts["events"]) == CLIENTS - 10 and all(n > 0 for n in counts["events"]), (
        f"events per subscriber {counts['events']}, subscribed after {counts['subscribed_after_s']} s"
    )
    assert counts["get_results_calls"] > 0
    flood_s, baseline_s = (t1_ns - t0_ns) / 1e9, (b1_ns - b0_ns) / 1e9
    assert during > 0 and during / flood_s >= 0.5 * baseline / baseline_s, (
        f"{during} verdicts in {flood_s:.1f} s of flood against {baseline} in {baseline_s:.1f} s before it"
    )
    window = [r for r in rows if t0_ns <= r.t_verdict_ns <= t1_ns]
    ref = [r for r in rows if b0_ns <= r.t_verdict_ns <= b1_ns]
    share = sum(1 for r in window if r.reason) / max(1, len(window))
    ref_share = sum(1 for r in ref if r.reason) / max(1, len(ref))
    assert share <= ref_share + 0.1, f"fail-safe share {share:.2f} during the flood against {ref_share:.2f} before it"
    print(f"flood: {during} verdicts in {flood_s:.1f} s, fail-safe share {share:.2f} (before {ref_share:.2f}), mes {mes_counters}, "
          f"events/subscriber {min(counts['events'])}..{max(counts['events'])}, "
          f"last subscribed after {max(counts['subscribed_after_s'])} s, "
          f"GetResults {counts['get_results_calls']} calls")  # fmt: skip
