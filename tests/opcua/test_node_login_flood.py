"""A foreign client guessing passwords: node-opcua (tests/node/login_flood.mjs) opens one secure
channel and tries session after session with wrong passwords for the operator, against the real
server process. Every guess is refused with BadUserAccessDenied, and once the user is locked out
the right password is refused too.

Needs ``node`` and ``npm ci --prefix tests/node`` (skipped with that hint otherwise)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from line.mes.wiring import start_mes_server
from tests.opcua.fake_log import FakeLogWriter
from tests.opcua.helpers import FAST_LOCKOUT, PASSWORDS, RecipeCalls, make_config
from tests.opcua.test_node_mes import NODE, NODE_DIR, NODE_URI, node_client_cert
from tests.opcua.test_node_mes import pytestmark as needs_node

pytestmark = needs_node  # node and `npm ci --prefix tests/node`, as for the MES client


def test_node_opcua_guesser_is_locked_out(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, login_throttle=FAST_LOCKOUT)
    log = FakeLogWriter(tmp_path / "results.db")
    sink = start_mes_server(cfg, tmp_path / "results.db", ["cap-a"], RecipeCalls())
    try:
        cert, key = node_client_cert(tmp_path / "node")
        (cfg.trusted_dir / "node_cert.pem").write_bytes(cert.read_bytes())
        opts = {
            "endpoint": cfg.endpoint, "applicationUri": NODE_URI, "certFile": str(cert), "keyFile": str(key),
            "pkiDir": str(tmp_path / "node" / "pki"),
            "serverCertDer": str(cfg.state_dir / "pki" / "own" / "server_cert.der"),
            "user": "op", "password": PASSWORDS["op"], "guesses": 12,
        }  # fmt: skip
        proc = subprocess.run([str(NODE), "login_flood.mjs", json.dumps(opts)], cwd=NODE_DIR,
                              capture_output=True, text=True, timeout=180)  # fmt: skip
    finally:
        sink.close()
        log.close()
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-2000:]
    result = json.loads(lines[-1][len("RESULT "):])
    assert len(result["guesses"]) == 12
    assert all("BadUserAccessDenied" in outcome for outcome in result["guesses"]), result
    assert "BadUserAccessDenied" in result["right"], result  # locked out: the right password too
