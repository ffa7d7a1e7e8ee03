"""Capture on a running station, the review API by role, the measured rates, export and import."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import cv2
import numpy as np

from line.results.reader import ResultLogReader
from tests.flywheel.helpers import FlyRig, fly_rig

DEFECTIVE = tuple(range(3, 100_000, 4))


def _events(rig: FlyRig, kind: str) -> list[tuple[int, str, str, str, str]]:
    reader = ResultLogReader(rig.station.result_log.db_path)
    try:
        return reader.events(kind)
    finally:
        reader.close()


def test_rejects_and_a_pass_sample_are_captured_with_provenance(tmp_path: Path) -> None:
    with fly_rig(tmp_path, hmi=False, pass_share=1.0, defective_parts=DEFECTIVE, max_parts=40) as rig:
        rig.wait(lambda: len(rig.sink.messages) >= 40)
        rig.flywheel.capture.drain()
        caps = rig.flywheel.store.captures(limit=100)
        counts = rig.flywheel.capture.counts
    by_part = {c.part_id: c for c in caps}
    assert len(caps) == counts["written"] == 40 - counts["dropped_busy"] - counts["over_quota"]
    reject = next(c for c in caps if c.verdict == "REJECT")
    assert reject.part_id in DEFECTIVE and reject.reason == "reject"
    assert reject.detections == [{"class": "scratch", "confidence": 0.9, "box": [10.0, 10.0, 30.0, 30.0]}]
    prov = reject.provenance
    import hashlib

    assert prov["model_sha256"] == hashlib.sha256(b"production model").hexdigest()
    assert prov["recipe_id"] == "r1" and len(prov["recipe_version"]) == 12 and prov["engine"] == "scripted"
    assert prov["thresholds"] == {"scratch": 0.5, "dent": 0.5} and prov["camera_id"] == "cam1" and prov["part_id"] == reject.part_id
    assert any(c.reason == "sample" and c.verdict == "PASS" for c in caps)
    png = cv2.imread(str(rig.flywheel.store.images / reject.image), cv2.IMREAD_UNCHANGED)
    assert png.dtype == np.uint8 and png.shape == (48, 64) and (png == 255).all()  # every pixel as acquired
    assert set(by_part) <= set(range(1, 41))


def test_quota_stops_captures(tmp_path: Path) -> None:
    recipes = tmp_path / "recipes"
    with fly_rig(tmp_path, hmi=False, pass_share=1.0, max_parts=30, start=False) as rig:
        text = (recipes / "r1.yaml").read_text().replace("per_minute: 1000", "per_minute: 5")
        (recipes / "r1.yaml").write_text(text)
        rig.station.book.refresh()
        assert rig.station.book.switch("r1", "test").ok
        rig.station.start()
        rig.wait(lambda: len(rig.sink.messages) >= 30)
        rig.flywheel.capture.drain()
        assert rig.flywheel.store.count()["captures"] == 5
        assert rig.flywheel.capture.counts["over_quota"] == 25


def test_every_decided_result_names_its_model(tmp_path: Path) -> None:
    import hashlib

    with fly_rig(tmp_path, hmi=False, defective_parts=DEFECTIVE, max_parts=30) as rig:
        rig.wait(lambda: len(rig.sink.messages) >= 30)
        rig.flywheel.flush()
        decided = {r: sha for r, sha, _ in rig.flywheel.store.decided_by_all()}
        ids = [m.result_id for m in rig.sink.messages]
    assert set(ids) == set(decided)
    assert set(decided.values()) == {hashlib.sha256(b"production model").hexdigest()}


def test_review_queue_by_role_metrics_export_and_import(tmp_path: Path) -> None:
    with fly_rig(tmp_path, pass_share=1.0, defective_parts=DEFECTIVE, max_parts=24) as rig:
        rig.wait(lambda: len(rig.sink.messages) >= 24)
        rig.flywheel.capture.drain()
        viewer, operator, qa = rig.login("viewer"), rig.login("operator"), rig.login("qa")
        queue = qa.get("/api/review/queue", params={"limit": 200}).json()
        assert queue["can_review"] is True and viewer.get("/api/review/queue").json()["can_review"] is False
        items = queue["items"]
        rejects = [c for c in items if c["verdict"] == "REJECT"]
        passes = [c for c in items if c["verdict"] == "PASS"]
        assert len(rejects) >= 4 and len(passes) >= 4
        assert qa.get(f"/api/review/images/{rejects[0]['image']}").headers["content-type"] == "image/png"
        assert qa.get("/api/review/images/..%2Fflywheel.db").status_code in (400, 404)
        for who in (viewer, operator):
            assert who.post(f"/api/review/captures/{rejects[0]['id']}", json={"decision": "confirm"}).status_code == 403
        assert operator.post("/api/shadow/promote", json={"recipe_id": "r1"}).status_code == 403
        ok = [qa.post(f"/api/review/captures/{c['id']}", json={"decision": "confirm"}) for c in rejects[:3]]
        assert all(r.status_code == 200 for r in ok)
        assert qa.post(f"/api/review/captures/{rejects[3]['id']}", json={"decision": "false"}).status_code == 200
        missed = {"decision": "missed", "boxes": [{"class": "dent", "box": [5, 6, 20, 30]}]}
        assert qa.post(f"/api/review/captures/{passes[0]['id']}", json=missed).status_code == 200
        assert qa.post(f"/api/review/captures/{passes[1]['id']}", json={"decision": "good"}).status_code == 200
        bad = qa.post(f"/api/review/captures/{passes[2]['id']}", json={"decision": "missed", "boxes": [{"class": "rust", "box": [1, 1, 2, 2]}]})
        assert bad.status_code == 422 and "rust" in bad.text
        outside = qa.post(f"/api/review/captures/{passes[2]['id']}", json={"decision": "missed", "boxes": [{"class": "dent", "box": [1, 1, 99, 2]}]})
        assert outside.status_code == 422
        summary = qa.get("/api/review/summary").json()
        assert summary["reviewed_rejects"] == 4 and summary["false_rejects"] == 1 and summary["false_reject_rate"] == 0.25
        assert summary["escapes_by_class"] == {"dent": 1} and summary["escape_rate"] == 0.5
        curve = {p["threshold"]: p for p in summary["threshold_curves"]["scratch"]}
        assert curve[0.9]["true_kept"] == 3 and curve[0.9]["false_kept"] == 1 and curve[0.95]["true_kept"] == 0
        # audited: who and when, in the flywheel's history and the station's event log
        history = qa.get(f"/api/review/captures/{rejects[3]['id']}").json()["history"]
        assert history[0]["user"] == "qa" and history[0]["decision"] == "false" and history[0]["t_ns"] > 0
        rig.wait(lambda: len(_events(rig, "capture_review")) >= 6)
        # export: YOLO labels + Label Studio tasks with the model's pre-annotations
        reply = viewer.get("/api/review/export", params={"recipe_id": "r1"})
        assert reply.status_code == 200
        zf = zipfile.ZipFile(io.BytesIO(reply.content))
        names = zf.namelist()
        assert "data.yaml" in names and "label_studio/tasks.json" in names and "label_studio/config.xml" in names
        stem = lambda c: Path(c["image"]).stem  # noqa: E731
        assert zf.read(f"labels/{stem(rejects[0])}.txt").decode().split() == ["0", f"{20 / 64:.6f}", f"{20 / 48:.6f}",
                                                                              f"{20 / 64:.6f}", f"{20 / 48:.6f}"]  # fmt: skip
        assert zf.read(f"labels/{stem(rejects[3])}.txt") == b""  # a false reject: no defect to learn
        assert zf.read(f"labels/{stem(passes[0])}.txt").decode().startswith("1 ")  # the missed dent
        tasks = json.loads(zf.read("label_studio/tasks.json"))
        task = next(t for t in tasks if t["meta"]["capture_id"] == rejects[0]["id"])
        pre = task["predictions"][0]["result"][0]
        assert pre["value"]["rectanglelabels"] == ["scratch"] and pre["score"] == 0.9 and abs(pre["value"]["x"] - 100 * 10 / 64) < 1e-6
        assert len(tasks) == 6 and f"images/{rejects[0]['image']}" in names
        # import: a labeller moved the box and relabelled it as a dent
        task["annotations"] = [{"result": [{**pre, "value": {**pre["value"], "x": 25.0, "rectanglelabels": ["dent"]}}]}]
        assert operator.post("/api/review/import", params={"recipe_id": "r1"}, content=json.dumps([task])).status_code == 403
        wrong = dict(task, meta={**task["meta"], "capture_id": 999_999})
        refused = qa.post("/api/review/import", params={"recipe_id": "r1"}, content=json.dumps([task, wrong]))
        assert refused.status_code == 422 and "999999" in refused.text
        assert qa.post("/api/review/import", params={"recipe_id": "r1"}, content=json.dumps([task])).json()["imported"] == 1
        latest = qa.get(f"/api/review/captures/{rejects[0]['id']}").json()["review"]
        assert latest["source"] == "import" and latest["boxes"][0]["class"] == "dent" and latest["boxes"][0]["box"][0] == 16.0
        again = zipfile.ZipFile(io.BytesIO(viewer.get("/api/review/export", params={"recipe_id": "r1"}).content))
        assert again.read(f"labels/{stem(rejects[0])}.txt").decode().startswith("1 ")
        # YOLO round trip: the exported label files, one corrected, back as a zip
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as out:
            out.writestr(f"labels/{stem(rejects[1])}.txt", "0 0.5 0.5 0.25 0.5\n")
        yolo = {"recipe_id": "r1", "format": "yolo"}
        assert qa.post("/api/review/import", params=yolo, content=buf.getvalue()).json()["imported"] == 1
        fixed = qa.get(f"/api/review/captures/{rejects[1]['id']}").json()["review"]
        assert fixed["source"] == "import" and fixed["boxes"] == [{"class": "scratch", "box": [24.0, 12.0, 40.0, 36.0]}]
        bad_zip = io.BytesIO()
        with zipfile.ZipFile(bad_zip, "w") as out:
            out.writestr(f"labels/{stem(rejects[2])}.txt", "7 0.5 0.5 0.1 0.1\n")
        refused = qa.post("/api/review/import", params=yolo, content=bad_zip.getvalue())
        assert refused.status_code == 422 and "line 1" in refused.text
        assert qa.post("/api/review/import", params=yolo, content=b"not a zip").status_code == 422
