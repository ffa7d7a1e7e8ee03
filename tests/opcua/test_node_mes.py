"""End to end with a foreign client: node-opcua (tests/node/mes_client.mjs) plays the MES over
Basic256Sha256 SignAndEncrypt with its own client certificate and a user, against the real
server process fed by ``OpcUaPublisherSink`` and reading the real SQLite result log. Everything
it received is compared with the log: no verdict missing, none invented.

Needs ``node`` and ``npm ci --prefix tests/node`` (skipped with that hint otherwise)."""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from asyncua.crypto import cert_gen
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from line.mes.wiring import start_mes_server
from line.results.history import VERDICTS, record_dict
from line.results.reader import ResultLogReader
from tests.opcua.fake_log import FakeLogWriter
from tests.opcua.helpers import PASSWORDS, RecipeCalls, make_config

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(
    NODE is None or not (NODE_DIR / "node_modules" / "node-opcua-client").is_dir(),
    reason="needs node and `npm ci --prefix tests/node`",
)
NODE_URI = "urn:linecheck:node-mes"


def node_client_cert(directory: Path) -> tuple[Path, Path]:
    """The node client's own certificate (PEM, as node-opcua wants it)."""
    directory.mkdir(parents=True, exist_ok=True)
    key = cert_gen.generate_private_key()
    cert = cert_gen.generate_self_signed_app_certificate(
        key,
        "node-mes",
        {"organizationName": "linecheck-test"},
        [cert_gen.x509.UniformResourceIdentifier(NODE_URI), cert_gen.x509.DNSName("localhost")],
        [ExtendedKeyUsageOID.CLIENT_AUTH],
        days=30,
    )
    cert_file, key_file = directory / "node_cert.pem", directory / "node_key.pem"
    cert_file.write_bytes(cert.public_bytes(Encoding.PEM))
    key_file.write_bytes(cert_gen.dump_private_key_as_pem(key))
    return cert_file, key_file


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def _reader(stream: object, lines: queue.Queue[str | None]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        lines.put(line.rstrip("\n"))
    lines.put(None)


def test_node_opcua_mes_sees_exactly_the_log(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)  # production profile: Basic256Sha256 SignAndEncrypt only
    db = tmp_path / "results.db"
    log = FakeLogWriter(db)
    now = time.time_ns()
    # older verdicts spread over the last day: history must come from the log, not memory
    log.write_many([log.make(now - 86_400 * 10**9 + i * 287 * 10**9) for i in range(300)])
    calls = RecipeCalls()
    sink = start_mes_server(cfg, db, ["cap-a", "cap-b"], calls)
    cert, key = node_client_cert(tmp_path / "node")
    (cfg.trusted_dir / "node_cert.pem").write_bytes(cert.read_bytes())  # the test trusts the MES client
    new = 40
    opts = {
        "endpoint": cfg.endpoint,
        "stationId": cfg.station_id,
        "applicationUri": NODE_URI,
        "certFile": str(cert),
        "keyFile": str(key),
        "pkiDir": str(tmp_path / "node" / "pki"),
        "serverCertDer": str(cfg.state_dir / "pki" / "own" / "server_cert.der"),
        "operator": "op",
        "operatorPassword": PASSWORDS["op"],
        "reader": "mes",
        "readerPassword": PASSWORDS["mes"],
        "expectedEvents": new,
        "eventTimeoutMs": 30000,
        "fromIso": _iso(now - 2 * 86_400 * 10**9),
        "toIso": _iso(now + 3600 * 10**9),
        "pageSize": 64,
        "recipe": "cap-b",
    }
    proc = subprocess.Popen(
        [str(NODE), "mes_client.mjs", json.dumps(opts)],
        cwd=NODE_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=_reader, args=(proc.stdout, lines), name="node-stdout")
    reader.start()
    published = []
    result = None
    try:
        noise: list[str] = []  # node-opcua writes its own warnings to stdout
        while (line := lines.get(timeout=60)) != "SUBSCRIBED":
            assert line is not None, f"node client ended: {noise} {proc.stderr.read()}"  # type: ignore[union-attr]
            noise.append(line)
        sink.update_state(camera_link="disconnected")  # an alarm in the middle of the verdicts
        for i in range(new):
            msg, defects = log.make()
            log.write(msg, defects)  # the station logs before it publishes
            assert sink.publish(msg).delivered
            published.append(msg)
            if i == new // 2:
                sink.update_state(camera_link="connected")
        while (line := lines.get(timeout=120)) is not None:
            if line.startswith("RESULT "):
                result = json.loads(line[len("RESULT ") :])
        assert proc.wait(timeout=30) == 0, proc.stderr.read()  # type: ignore[union-attr]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=10)
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
        sink.close()
        log.close()
    assert result is not None
    history = ResultLogReader(db)
    try:
        rows = history.query(0, 2**63 - 1, 0, 100_000)
    finally:
        history.close()
    assert len(rows) == 340

    # ResultReady: exactly the published verdicts, in order, with their fields
    assert [e["ResultId"] for e in result["events"]] == [m.result_id for m in published]
    for ev, m in zip(result["events"], published, strict=True):
        assert (ev["PartId"], ev["RecipeId"], ev["ResultCode"], ev["Verdict"]) == (
            m.part_id,
            m.recipe_id,
            int(m.result_code),
            VERDICTS[int(m.result_code)],
        )
        assert (ev["RejectMask"], ev["DefectCount"], ev["ProcessingUs"], ev["ImageRef"]) == (
            m.reject_mask,
            m.defect_count,
            m.processing_us,
            m.image_ref,
        )
        assert dict(zip(ev["DefectClasses"] or [], ev["DefectCounts"] or [], strict=True)) == dict(m.defects)
        assert ev["VerdictTime"] == _iso(m.timestamp_ns // 10**6 * 10**6)[:23] + "Z"
    assert [(a["AlarmName"], a["Active"]) for a in result["alarms"]] == [
        ("camera_lost", True),
        ("camera_lost", False),
    ]
    # HistoryRead(LastResult) and GetResults: every logged verdict once, in time order, as logged
    assert [json.loads(v) for v in result["history"]] == [record_dict(r, detail=False) for r in rows]
    assert result["historyPages"] == 1  # 340 < history_max_values; paging is tested in test_server
    assert result["total"] == 340
    assert [json.loads(v) for v in result["getResults"]] == [record_dict(r, detail=True) for r in rows]
    assert result["getResultsPages"] == 6  # 64 per page
    assert result["counters"]["Inspected"] == new
    assert result["counters"]["CameraLinkState"] == "connected"
    # methods and refusals
    assert result["selectOk"] == {"status": "Good", "outputs": ["switched to cap-b"]}
    assert result["selectUnknown"]["status"] == "BadInvalidArgument"
    assert result["readerSelect"]["status"] == "BadUserAccessDenied"
    assert "BadUserAccessDenied" in result["wrongPassword"] or "BadIdentityToken" in result["wrongPassword"]
    assert calls.calls == [("cap-b", "opcua", "op")]
    assert "Stations" not in result["browse"] and {"LastResult", "GetResults", "SelectRecipe"} <= set(
        result["browse"]
    )
