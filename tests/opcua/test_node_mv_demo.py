"""The 500-part check on a real `linecheck demo` run (the station process with its MES server,
synthetic camera, demo model, Modbus server and HMI): a node-opcua MES (tests/node/
mv_demo_client.mjs, SignAndEncrypt, the demo's operator user) subscribed to the OPC 40100
ResultReadyEvent on the Server object receives exactly one event per part over at least 500
consecutive parts, and GetResultById for each returns the verdict the result log holds. The same
client then halts the running station (Halt), sees parts keep getting verdicts (the fail-safe
one, reason ``halted``), and resumes it (Reset, StartContinuous): decided verdicts again."""

from __future__ import annotations

import json
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.opcua.test_node_mes import NODE, NODE_DIR, NODE_URI, node_client_cert
from tests.opcua.test_node_mes import pytestmark as needs_node

REPO = Path(__file__).resolve().parents[2]
PARTS = 500
HALTED_PARTS = 10
DEMO_OPERATOR = ("operator", "operator-demo")  # line/demo_station/configs/demo.yaml

pytestmark = [
    needs_node,
    pytest.mark.slow,  # the demo's 20 parts/s: 25 s of parts after start-up
    pytest.mark.skipif(not (REPO / "recipes" / "demo" / "demo-parts.onnx").exists(), reason="demo model not present"),
]


def _listening(stream: object, found: queue.Queue[dict[str, object] | None], tail: list[str]) -> None:
    """Drain the demo's stderr; hand over its ``--free-ports`` line."""
    for line in stream:  # type: ignore[attr-defined]
        tail[:] = [*tail[-40:], line]
        if line.startswith('{"listening"'):
            found.put(json.loads(line)["listening"])
    found.put(None)


def test_one_result_ready_event_per_part_over_a_demo_run(tmp_path: Path) -> None:
    state = tmp_path / "state"
    cert, key = node_client_cert(tmp_path / "node")
    trusted = state / "opcua" / "pki" / "trusted"
    trusted.mkdir(parents=True)
    (trusted / "node_cert.pem").write_bytes(cert.read_bytes())  # the plant trusts its MES client
    demo = subprocess.Popen(
        [sys.executable, "-m", "line", "demo", "--json", "--free-ports", "--state-dir", str(state)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    found: queue.Queue[dict[str, object] | None] = queue.Queue()
    tail: list[str] = []
    drain = threading.Thread(target=_listening, args=(demo.stderr, found, tail), daemon=True)
    drain.start()
    result = None
    try:
        ports = found.get(timeout=180)
        assert ports is not None, "".join(tail)
        opts = {
            "endpoint": ports["opcua"], "stationId": "demo-1", "applicationUri": NODE_URI,
            "certFile": str(cert), "keyFile": str(key), "pkiDir": str(tmp_path / "node" / "pki"),
            "serverCertDer": str(state / "opcua" / "pki" / "own" / "server_cert.der"),
            "user": DEMO_OPERATOR[0], "password": DEMO_OPERATOR[1], "parts": PARTS,
            "halt": True, "haltedParts": HALTED_PARTS,
        }  # fmt: skip
        node = subprocess.run(
            [str(NODE), "mv_demo_client.mjs", json.dumps(opts)],
            cwd=NODE_DIR, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert node.returncode == 0, node.stderr[-3000:]
        lines = [ln for ln in node.stdout.splitlines() if ln.startswith("RESULT ")]
        assert lines, node.stdout[-2000:] + node.stderr[-2000:]
        result = json.loads(lines[-1][len("RESULT ") :])
    finally:
        demo.send_signal(signal.SIGINT)  # a clean stop: every part decided and logged
        try:
            out, _ = demo.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            demo.kill()
            out, _ = demo.communicate()
        drain.join(timeout=10)
    assert demo.returncode == 0, "".join(tail)
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["parts"] == summary["verdicts"]

    with sqlite3.connect(state / "results.db") as conn:
        log = {rid: (part, code, reason) for rid, part, code, reason in
               conn.execute("SELECT result_id, part_id, result_code, reason FROM results")}  # fmt: skip
    verdict_of_code = {0: "pass", 1: "reject", 2: "fail_safe_reject", 3: "hold"}
    assert (result["halt"], result["reset"]) == ({"status": "Good", "outputs": [0]},) * 2
    assert result["start"] == {"status": "Good", "outputs": ["demo-1/demo-parts", 0]}
    events = result["events"]
    assert len(events) >= PARTS
    parts = [int(e["partId"]) for e in events]
    # exactly one event per part: the parts from the first one seen on are consecutive, none twice
    assert sorted(parts) == list(range(min(parts), min(parts) + len(parts)))
    assert len({e["resultId"] for e in events}) == len(events)
    for e in events:
        part, code, reason = log[e["resultId"]]  # every event names a logged result
        assert (int(e["partId"]), e["verdict"], e["reason"]) == (part, verdict_of_code[code], reason)
        assert e["state"] == (4 if code == 2 else 1)  # ResultState: Failed for a fail-safe
        by_id = result["byId"][e["resultId"]]
        assert (by_id["status"], by_id["error"], by_id["verdict"]) == ("Good", 0, verdict_of_code[code])
    # halted: every part still got a verdict, the fail-safe one; then decided ones again
    reasons = [e["reason"] for e in sorted(events, key=lambda e: int(e["partId"]))]
    first_halted = reasons.index("halted")
    last_halted = len(reasons) - 1 - reasons[::-1].index("halted")
    assert reasons[first_halted : last_halted + 1].count("halted") >= HALTED_PARTS
    assert "" in reasons[:first_halted] and reasons[last_halted + 1 :].count("") >= HALTED_PARTS
