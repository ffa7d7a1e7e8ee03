"""A weaker candidate in shadow on a running station: disagreements, estimated rates against
the reviewed set, the PLC untouched; promotion and rollback by QA only, between two frames."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np

from plc.vocabulary import ResultCode
from tests.flywheel.helpers import FlyRig, fly_rig

DEFECTIVE = tuple(range(3, 100_000, 4))
PROD_SHA = hashlib.sha256(b"production model").hexdigest()
CAND_SHA = hashlib.sha256(b"candidate model").hexdigest()


def _verdicts(rig: FlyRig) -> list[tuple[int, int]]:
    with rig.sink.lock:
        return [(m.part_id, int(m.result_code)) for m in rig.sink.messages]


def _judged(rig: FlyRig) -> dict[int, int]:
    """Part -> verdict for the parts the model judged (a fail-safe says the host was late)."""
    with rig.sink.lock:
        return {m.part_id: int(m.result_code) for m in rig.sink.messages if not m.reason}


def test_shadow_disagrees_promotion_switches_and_rollback_restores(tmp_path: Path) -> None:
    with fly_rig(tmp_path, pass_share=1.0, defective_parts=DEFECTIVE, rate_hz=50.0) as rig:
        rig.wait(lambda: rig.flywheel.store.count()["captures"] >= 8)
        qa, operator, viewer = rig.login("qa"), rig.login("operator"), rig.login("viewer")
        for c in qa.get("/api/review/queue", params={"limit": 8}).json()["items"]:
            qa.post(f"/api/review/captures/{c['id']}", json={"decision": "confirm" if c["verdict"] == "REJECT" else "good"})
        golden = tmp_path / "golden"
        for sub in ("images", "labels"):
            (golden / sub).mkdir(parents=True)
        for i, value in enumerate((255, 255, 255, 10, 10)):  # 3 defective, 2 good parts
            cv2.imwrite(str(golden / "images" / f"g{i}.png"), np.full((48, 64), value, np.uint8))
            (golden / "labels" / f"g{i}.txt").write_text("0 0.3 0.3 0.2 0.2\n" if value == 255 else "")
        body = {"recipe_id": "r1", "onnx": str(rig.folder / "candidate.onnx"), "thresholds": {"default": 0.95},
                "golden": str(golden)}
        assert operator.post("/api/shadow/candidate", json=body).status_code == 403
        missing = qa.post("/api/shadow/candidate", json={**body, "onnx": str(rig.folder / "nope.onnx")})
        assert missing.status_code == 422 and "not found" in missing.text
        assert qa.post("/api/shadow/candidate", json={**body, "thresholds": {"rust": 0.9}}).status_code == 422
        assert qa.post("/api/shadow/candidate", json={**body, "golden": str(tmp_path)}).status_code == 422
        assert qa.post("/api/shadow/candidate", json=body).json()["candidate_sha256"] == CAND_SHA
        rig.wait(lambda: rig.flywheel.shadows["r1"].by_kind["REJECT->PASS"] >= 3)
        viewer.get("/api/shadow/r1")  # starts the estimate over the reviewed set (its own thread)
        rig.wait(lambda: viewer.get("/api/shadow/r1").json()["estimate_current"])
        report = viewer.get("/api/shadow/r1").json()
        assert report["parts_judged"] >= 3 and report["agreement"] < 1.0 and report["disagreements_by_class"]["scratch"] >= 3
        assert report["disagreement_images"][0]["production"] == "REJECT" and report["disagreement_images"][0]["image"]
        est = report["estimated_vs_reviewed"]
        assert est["production"]["escape_rate"] == 0.0 and est["candidate"]["escape_rate"] == 1.0  # the weaker model misses them
        gold = report["estimated_vs_golden"]
        assert gold["images"] == 5 and gold["production"]["escapes"] == 0 and gold["candidate"]["escapes"] == 3
        assert gold["production"]["false_rejects"] == gold["candidate"]["false_rejects"] == 0
        assert report["latency_ms"]["p99"] is not None and report["within_budget"] is True
        # nothing the candidate said reached the PLC: every REJECT on a defective part stays
        assert all(code == int(ResultCode.REJECT) for part, code in _verdicts(rig) if part in DEFECTIVE)
        # promotion: QA only, then the candidate decides
        assert operator.post("/api/shadow/promote", json={"recipe_id": "r1"}).status_code == 403
        assert viewer.post("/api/shadow/rollback", json={"recipe_id": "r1"}).status_code == 403
        assert qa.post("/api/shadow/rollback", json={"recipe_id": "r1"}).status_code == 409  # nothing promoted yet
        promoted = qa.post("/api/shadow/promote", json={"recipe_id": "r1"})
        assert promoted.status_code == 200, promoted.text
        n_switch = len(rig.sink.messages)
        rig.wait(lambda: len(rig.sink.messages) >= n_switch + 30)
        assert "r1" not in rig.flywheel.shadows
        assert qa.post("/api/shadow/rollback", json={"recipe_id": "r1"}).json()["ok"] is True
        n_back = len(rig.sink.messages)
        rig.wait(lambda: len(rig.sink.messages) >= n_back + 30)
        with rig.sink.lock:
            messages = list(rig.sink.messages)
        rig.wait(lambda: {m.result_id for m in messages} <= {r for r, _, _ in rig.flywheel.store.decided_by_all()})
        decided = {r: sha for r, sha, _ in rig.flywheel.store.decided_by_all()}
        promotions = qa.get("/api/shadow").json()
        history = rig.flywheel.store.promotions("r1")
    # zero parts without a verdict: part ids run without a gap, each decided once
    parts = [m.part_id for m in messages]
    assert parts == list(range(1, len(parts) + 1))
    assert [(m.part_id, m.reason) for m in messages if m.reason] == []  # no fail-safe around either switch
    # which model decided: production, then the candidate, then production again, never mixed
    shas = [decided[m.result_id] for m in messages]
    runs = [shas[0]] + [b for a, b in zip(shas, shas[1:], strict=False) if a != b]
    assert runs == [PROD_SHA, CAND_SHA, PROD_SHA]
    cand = [m for m in messages if decided[m.result_id] == CAND_SHA]
    assert any(m.part_id in DEFECTIVE for m in cand) and all(int(m.result_code) == int(ResultCode.PASS) for m in cand)
    assert promotions["rollback"]["r1"] is False
    assert [h["action"] for h in history][:3] == ["rollback", "promote", "rollback_refused"]
    assert history[1]["user"] == "qa" and history[1]["from"] == PROD_SHA and history[1]["to"] == CAND_SHA


def _replay(tmp: Path, shadow: bool) -> dict[int, int]:
    # the shipped priority (19): what production sees of a shadow is the question here
    with fly_rig(tmp, hmi=False, defective_parts=DEFECTIVE, max_parts=200, rate_hz=100.0, start=False,
                 shadow_nice=19) as rig:  # fmt: skip
        if shadow:
            rig.flywheel.register_candidate("r1", rig.folder / "candidate.onnx", {"default": 0.95}, "qa")
        rig.station.start()
        rig.wait(lambda: len(rig.sink.messages) >= 200)
        verdicts = _judged(rig)
        if shadow:
            assert rig.flywheel.shadows["r1"].judged > 0
    return verdicts


def test_production_verdicts_are_identical_with_and_without_a_shadow(tmp_path: Path) -> None:
    """The same 200 frames (the scripted camera replays them), a candidate that would pass every
    defective part in shadow: production's verdicts do not change. Parts fail-safed by a loaded
    host in either run are left out of the comparison (most parts must be judged in both)."""
    without, with_shadow = _replay(tmp_path / "a", False), _replay(tmp_path / "b", True)
    both = without.keys() & with_shadow.keys()
    assert len(both) >= 150  # three quarters: a busy host fail-safes some parts in either run
    assert {p: without[p] for p in both} == {p: with_shadow[p] for p in both}
    assert sum(without[p] == int(ResultCode.REJECT) for p in both) >= 40  # the defective parts are in the comparison
