"""OPC 40100-1 (Machine Vision) end to end with a foreign client: node-opcua
(tests/node/mv_client.mjs) browses to the VisionSystemType instance by browse names, reads the
state machine, subscribes to ResultReadyEvent on the Server object while the station publishes
more than 500 verdicts (fail-safes included), reads each back with GetResultById, and calls
every mandatory method with valid and invalid arguments, as engineer and as MES reader.

Needs ``node`` and ``npm ci --prefix tests/node`` (skipped with that hint otherwise)."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
from pathlib import Path
from typing import Any

from line.mes.wiring import start_mes_server
from line.results.history import record_dict
from line.results.reader import ResultLogReader
from plc.vocabulary import StatusBits
from tests.opcua.fake_log import FakeLogWriter
from tests.opcua.helpers import PASSWORDS, RecipeCalls, make_config
from tests.opcua.test_node_mes import NODE, NODE_DIR, NODE_URI, _reader, node_client_cert, pytestmark  # noqa: F401

PARTS = 520
ERR_UNKNOWN_RECIPE, ERR_REFUSED, ERR_NOT_SUPPORTED, ERR_UNKNOWN_RESULT, ERR_RECIPE_ACTIVE = -1, -2, -4, -5, -6


def _run_client(opts: dict[str, Any], on_subscribed: Any) -> dict[str, Any]:
    proc = subprocess.Popen(
        [str(NODE), "mv_client.mjs", json.dumps(opts)],
        cwd=NODE_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=_reader, args=(proc.stdout, lines), name="node-stdout")
    reader.start()
    result = None
    try:
        noise: list[str] = []
        while (line := lines.get(timeout=60)) != "SUBSCRIBED":
            assert line is not None, f"node client ended: {noise} {proc.stderr.read()}"  # type: ignore[union-attr]
            noise.append(line)
        on_subscribed()
        while (line := lines.get(timeout=300)) is not None:
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
    assert result is not None
    return result


def test_node_opcua_machine_vision_client(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    db = tmp_path / "results.db"
    log = FakeLogWriter(db)
    calls = RecipeCalls()
    sink = start_mes_server(cfg, db, ["cap-a", "cap-b", "bad-recipe"], calls)
    cert, key = node_client_cert(tmp_path / "node")
    (cfg.trusted_dir / "node_cert.pem").write_bytes(cert.read_bytes())
    published = []

    def publish_run() -> None:
        for _ in range(PARTS):
            msg, defects = log.make()
            log.write(msg, defects)  # the station logs before it publishes
            assert sink.publish(msg).delivered
            published.append(msg)

    opts = {
        "endpoint": cfg.endpoint,
        "stationId": cfg.station_id,
        "applicationUri": NODE_URI,
        "certFile": str(cert),
        "keyFile": str(key),
        "pkiDir": str(tmp_path / "node" / "pki"),
        "serverCertDer": str(cfg.state_dir / "pki" / "own" / "server_cert.der"),
        "engineer": "op",
        "engineerPassword": PASSWORDS["op"],
        "reader": "mes",
        "readerPassword": PASSWORDS["mes"],
        "expectedEvents": PARTS,
        "eventTimeoutMs": 120000,
        "recipe": "cap-b",
        "otherRecipe": "cap-a",
        "badRecipe": "bad-recipe",
    }
    try:
        sink.set_status(StatusBits.READY | StatusBits.RUNNING, 3)  # parts flow
        result = _run_client(opts, publish_run)
    finally:
        sink.close()
        log.close()
    history = ResultLogReader(db)
    try:
        rows = {r.result_id: r for r in history.query(0, 2**63 - 1, 0, 100_000)}
    finally:
        history.close()
    assert len(rows) == PARTS

    # the instance, by browse names, and its state machine pointing at the type's states
    assert result["typeDefinition"] == result["visionTypeId"]
    st = result["state"]
    assert (st["vision"], st["visionId"]) == ("Operational", st["operationalTypeId"])
    assert (st["automatic"], st["automaticId"]) == ("ContinuousExecution", st["continuousTypeId"])
    assert st["systemState"] == 1  # PRD

    # exactly one ResultReadyEvent per part, in order, with the standard fields
    events = result["events"]
    assert [e["ResultId"] for e in events] == [m.result_id for m in published]
    fail_safes = 0
    for ev, m in zip(events, published, strict=True):
        failed = int(m.result_code) == 2
        fail_safes += failed
        assert ev["IsPartial"] is False and ev["ResultState"] == (4 if failed else 1)
        assert (ev["PartId"], ev["InternalRecipeId"]) == (str(m.part_id), m.recipe_id)
        assert (
            ev["JobId"] == f"{cfg.station_id}/{m.recipe_id}"
            and ev["InternalConfigurationId"] == cfg.station_id
        )
        assert ev["ProcessingMs"] == m.processing_us / 1000
        content = json.loads(ev["ResultContent"][0])
        assert (content["verdict"], content["reason"], content["reject_mask"]) == (
            {0: "pass", 1: "reject", 2: "fail_safe_reject"}[int(m.result_code)], m.reason, m.reject_mask,
        )  # fmt: skip
        assert content["defect_classes"] == dict(m.defects)
        # GetResultById answers from the log: the same verdict
        by_id = result["byId"][m.result_id]
        assert (by_id["status"], by_id["error"]) == ("Good", 0)
        assert json.loads(by_id["content"]) == record_dict(rows[m.result_id], detail=True)
    assert fail_safes > 0

    m = result["methods"]
    assert m["getRecipeList"]["status"] == "Good" and m["getRecipeList"]["outputs"][3] == [
        "bad-recipe",
        "cap-a",
        "cap-b",
    ]
    assert m["prepare"]["status"] == "Good" and m["prepare"]["outputs"][1:] == [True, 0]
    assert m["prepareUnknown"]["outputs"][2] == ERR_UNKNOWN_RECIPE
    assert m["prepareBadArgs"]["status"] == "BadInvalidArgument"
    assert m["startOk"]["status"] == "Good" and m["startOk"]["outputs"][1] == 0
    assert m["startRefused"]["outputs"][1] == ERR_REFUSED
    assert m["startUnknown"]["outputs"][1] == ERR_UNKNOWN_RECIPE
    assert m["startBadArgs"]["status"] in ("BadInvalidArgument", "BadArgumentsMissing")
    assert m["startReader"]["status"] == "BadUserAccessDenied"
    assert m["unprepareActive"]["outputs"][1] == ERR_RECIPE_ACTIVE  # the refusal left cap-b active
    assert m["unprepareOther"]["outputs"][1] == 0
    assert m["startSingleJob"]["status"] == "BadInvalidState"  # continuous execution runs
    for name in ("stop", "abort", "halt"):  # the station takes no remote stop: refused, nothing changes
        assert (m[name]["status"], m[name]["outputs"]) == ("Good", [ERR_NOT_SUPPORTED]), name
    assert m["haltBadArgs"]["status"] == "BadInvalidArgument"
    assert m["reset"]["status"] == "BadInvalidState"  # Reset only from Halted or Error
    assert m["haltReader"]["status"] == "BadUserAccessDenied"
    first = published[0]
    assert m["components"]["outputs"] == {
        "partId": str(first.part_id),
        "jobId": f"{cfg.station_id}/{first.recipe_id}",
        "error": 0,
    }
    assert m["unknownResult"]["outputs"] == [ERR_UNKNOWN_RESULT]
    assert m["resultBadArgs"]["status"] == "BadInvalidArgument"
    assert m["failedResults"] == [p.result_id for p in published if int(p.result_code) == 2]
    # the station saw the valid switch and the refused one, audited as OPC UA by the engineer
    assert calls.calls == [("cap-b", "opcua", "op"), ("bad-recipe", "opcua", "op")]
