"""The HMI's REST API against a running station: roles, recipe switching, traversal
refusal, health, metrics, live picture, reject gallery."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.hmi.helpers import Rig, running_rig


@pytest.fixture
def rig(tmp_path: Path):  # noqa: ANN201
    with running_rig(tmp_path, defective_parts=tuple(range(3, 10_000, 5))) as r:
        r.wait(lambda: r.station.stats.counts.get("rejected", 0) >= 2)
        yield r


def test_login_session_and_roles(rig: Rig) -> None:
    anon = rig.client()
    assert anon.get("/api/status").status_code == 401
    assert anon.post("/api/login", json={"username": "operator", "password": "wrong"}).status_code == 401
    assert anon.post("/api/login", json={"username": "nobody", "password": "wrong"}).status_code == 401
    viewer = rig.login("viewer")
    assert viewer.get("/api/me").json() == {"user": "viewer", "role": "viewer"}
    assert viewer.get("/api/status").status_code == 200
    refused = viewer.post("/api/recipes/switch", json={"recipe_id": "r2"})
    assert refused.status_code == 403
    assert viewer.post("/api/counters/reset").status_code == 403
    assert rig.station.book.active.recipe.id == "r1"
    viewer.post("/api/logout")
    assert viewer.get("/api/status").status_code == 401
    # HTTP Basic for scripts: same roles
    assert rig.client("viewer").post("/api/recipes/switch", json={"recipe_id": "r2"}).status_code == 403
    assert rig.client("admin").get("/api/me").json()["role"] == "admin"


def test_cookie_writes_from_another_origin_are_refused(rig: Rig) -> None:
    op = rig.login("operator")
    reply = op.post("/api/counters/reset", headers={"Origin": "http://evil.example"})
    assert reply.status_code == 403
    assert op.post("/api/counters/reset", headers={"Origin": rig.url}).status_code == 200


def test_operator_switches_and_the_switch_is_audited(rig: Rig) -> None:
    op = rig.login("operator")
    reply = op.post("/api/recipes/switch", json={"recipe_id": "r2"})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["ok"] and body["recipe_id"] == "r2" and body["warm"] is False and body["switch_s"] >= body["prepare_s"] > 0
    rig.wait(lambda: any(m.recipe_id == "r2" for m in rig.sink.messages))
    back = op.post("/api/recipes/switch", json={"recipe_id": "r1"}).json()
    assert back["ok"] and back["warm"] is True and back["prepare_s"] == 0
    recipes = op.get("/api/recipes").json()
    assert recipes["active"] == "r1"
    assert [s["to"] for s in recipes["recent_switches"]][:2] == ["r1", "r2"]
    assert recipes["recent_switches"][0]["user"] == "operator"
    rig.wait(lambda: len(rig.events("recipe_switch")) >= 2)  # the startup switch came before the station listened
    events = rig.events("recipe_switch")
    data = json.loads(events[-1][4])
    assert data["from"] == "r2" and data["to"] == "r1" and data["source"] == "hmi" and data["user"] == "operator"
    assert data["warm"] is True and data["prepare_s"] == 0 and data["switch_s"] >= 0


def test_a_failed_preparation_keeps_the_active_recipe_and_says_why(rig: Rig) -> None:
    op = rig.login("operator")
    reply = op.post("/api/recipes/switch", json={"recipe_id": "r3"})
    assert reply.status_code == 409
    assert "model of r3 cannot be loaded" in reply.json()["message"]
    assert rig.station.book.active.recipe.id == "r1"
    assert op.post("/api/recipes/switch", json={"recipe_id": "nope"}).status_code == 404
    rig.wait(lambda: bool(rig.events("recipe_switch_refused")))
    assert op.get("/api/recipes").json()["recent_switches"][0]["ok"] is False


@pytest.mark.parametrize("ref", ["../results.db", "..%2Fresults.db", "%2e%2e/results.db", "../../etc/passwd",
                                 "/etc/passwd", "ng/../x.png", ".hidden.png", "a\\..\\b.png", "%00.png"])  # fmt: skip
def test_image_endpoint_refuses_traversal(rig: Rig, ref: str) -> None:
    reply = rig.client("viewer").get(f"/api/images/{ref}")
    assert reply.status_code in (400, 404), (ref, reply.status_code)
    assert b"SQLite" not in reply.content and b"root:" not in reply.content


@pytest.mark.parametrize("rid", ["../r1", "..%2Fr1", "%2e%2e%2fconfigs", "r1/../../etc/passwd", "/etc/passwd", ".r1"])
def test_recipe_endpoints_refuse_traversal(rig: Rig, rid: str) -> None:
    viewer = rig.client("viewer")
    for path in (f"/api/recipes/{rid}", f"/api/recipes/{rid}/yaml"):
        reply = viewer.get(path)
        assert reply.status_code in (400, 404), (path, reply.status_code)
        assert b"root:" not in reply.content
    op = rig.client("operator")
    assert op.post("/api/recipes/switch", json={"recipe_id": rid}).status_code in (400, 404)


def test_recipe_detail_and_yaml(rig: Rig) -> None:
    viewer = rig.client("viewer")
    assert viewer.get("/api/recipes/r2").json()["code"] == 2
    assert "id: r2" in viewer.get("/api/recipes/r2/yaml").text


def test_rejects_gallery_serves_archived_images(rig: Rig) -> None:
    viewer = rig.client("viewer")
    rig.wait(lambda: len(viewer.get("/api/rejects").json()) >= 2)
    item = viewer.get("/api/rejects").json()[0]
    assert item["image"].startswith("/api/images/") and item["recipe_id"] == "r1"
    image = viewer.get(item["image"])
    assert image.status_code == 200 and image.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_live_picture_status_latency(rig: Rig) -> None:
    viewer = rig.client("viewer")
    rig.wait(lambda: viewer.get("/api/live.jpg").status_code == 200)
    jpeg = viewer.get("/api/live.jpg")
    assert jpeg.headers["content-type"] == "image/jpeg" and jpeg.content[:2] == b"\xff\xd8"
    meta = viewer.get("/api/live").json()
    assert meta["cameras"]["cam1"]["recipe_id"] == "r1"
    assert meta["stats"]["hot_path_us"]["n"] > 0
    status = viewer.get("/api/status").json()
    assert status["counters"]["verdicts"] > 0 and status["shift"]["inspected"] >= 0
    assert {(link["kind"], link["name"]) for link in status["links"]} == {("camera", "cam1"), ("plc", "recorder")}
    hist = viewer.get("/api/latency").json()
    assert sum(hist["counts"]) == hist["percentiles_ms"]["n"] > 0


def test_counters_reset_by_operator(rig: Rig) -> None:
    op = rig.login("operator")
    assert op.post("/api/counters/reset").json()["reset_by"] == "operator"
    shift = op.get("/api/status").json()["shift"]
    assert shift["inspected"] < 60  # counted again from the reset on (a few parts at most since)
    rig.wait(lambda: bool(rig.events("command")))


def test_healthz_metrics_openapi(rig: Rig) -> None:
    anon = rig.client()
    health = anon.get("/healthz")
    assert health.status_code == 200 and health.json()["status"] in ("ready", "degraded")
    metrics = anon.get("/metrics").text
    for name in ("linecheck_verdict_latency_seconds_bucket", "linecheck_stage_latency_seconds_bucket",
                 'linecheck_parts_total{camera="cam1",recipe="r1",result="pass"}', "linecheck_rejects_total",
                 'linecheck_link_state{kind="camera",link="cam1",state="acquiring"} 1.0', "linecheck_queue_dropped_total",
                 "linecheck_log_dropped_total", "linecheck_live_tap_hot_path_us"):  # fmt: skip
        assert name in metrics, name
    spec = anon.get("/openapi.json").json()
    assert {"/api/recipes/switch", "/api/status", "/healthz", "/metrics", "/api/images/{ref}"} <= set(spec["paths"])
    assert anon.get("/").status_code == 200 and "linecheck" in anon.get("/").text


def test_healthz_reports_failed_when_the_station_stops(tmp_path: Path) -> None:
    with running_rig(tmp_path) as rig:
        rig.station.stop()
        reply = rig.client().get("/healthz")
        assert reply.status_code == 503
        assert "station is not running" in reply.json()["reasons"]


def test_cold_switch_progress_is_visible_while_it_prepares(tmp_path: Path) -> None:
    import threading

    with running_rig(tmp_path, slow={"r2": 1.0}) as rig:
        op = rig.login("operator")
        replies: list[dict] = []
        worker = threading.Thread(target=lambda: replies.append(op.post("/api/recipes/switch", json={"recipe_id": "r2"}).json()))
        worker.start()
        viewer = rig.client("viewer")
        seen = []
        while worker.is_alive():
            state = viewer.get("/api/recipes").json()
            if state["switching"] and state["preparing"]:
                seen.append((state["preparing"]["recipe_id"], state["preparing"]["stage"], state["active"]))
            time.sleep(0.05)
        worker.join()
        assert ("r2", "engine", "r1") in seen  # still judged by r1 while r2 loads
        assert replies[0]["ok"] and replies[0]["warm"] is False and replies[0]["prepare_s"] >= 1.0
        assert viewer.get("/api/recipes").json()["active"] == "r2"
