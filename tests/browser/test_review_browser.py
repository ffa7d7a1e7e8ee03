"""The QA review page in a real browser (Debian chromium driven by playwright-core from
review.mjs) against a running station with the flywheel: qa reviews the queue with the buttons,
draws a missed defect, promotes the shadowed candidate and rolls back; viewer and operator get
no controls and the API refuses them. Screenshots: artifacts/browser/review-*.png."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.flywheel.helpers import PASSWORDS, fly_rig

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists() or not (HERE / "node_modules" / "playwright-core").is_dir() or shutil.which("node") is None,
    reason="needs /usr/bin/chromium (apt-get install chromium) and `npm install` in tests/browser",
)


def test_qa_walks_the_review_queue_viewer_and_operator_cannot(tmp_path: Path) -> None:
    artifacts = ROOT / "artifacts" / "browser"
    artifacts.mkdir(parents=True, exist_ok=True)
    defective = tuple(range(2, 100_000, 3))
    with fly_rig(tmp_path, pass_share=1.0, defective_parts=defective, rate_hz=20.0, width=320, height=240) as rig:
        rig.wait(lambda: rig.flywheel.store.count()["captures"] >= 12)
        rig.flywheel.register_candidate("r1", rig.folder / "candidate.onnx", {"default": 0.95}, "qa")
        rig.wait(lambda: rig.flywheel.shadows["r1"].judged - rig.flywheel.shadows["r1"].agreed >= 2)
        env = {**os.environ, "HMI_URL": rig.url, "OUT_DIR": str(artifacts), "RECIPE": "r1", "CHROMIUM": str(CHROMIUM),
               "QA_PASSWORD": PASSWORDS["qa"], "VIEWER_PASSWORD": PASSWORDS["viewer"], "OPERATOR_PASSWORD": PASSWORDS["operator"]}
        run = subprocess.run(["node", str(HERE / "review.mjs")], cwd=HERE, env=env, capture_output=True, text=True, timeout=240)
        assert run.returncode == 0, run.stderr[-3000:] + run.stdout[-2000:]
        seen = json.loads(run.stdout.strip().splitlines()[-1])
        reviews = [c.review for c in rig.flywheel.store.captures(reviewed=True, limit=100)]
        promotions = rig.flywheel.store.promotions("r1")
    assert len(seen["reviewed"]) == 6 and "missed" in seen["reviewed"]
    assert sorted(r["decision"] for r in reviews if r) == sorted(seen["reviewed"])
    assert all(r["user"] == "qa" for r in reviews if r)
    missed = next(r for r in reviews if r and r["decision"] == "missed")
    x1, y1, x2, y2 = missed["boxes"][0]["box"]
    assert missed["boxes"][0]["class"] == "dent" and abs(x1 - 64) < 4 and abs(y1 - 48) < 4 and abs(x2 - 160) < 4 and abs(y2 - 144) < 4
    assert "false-reject rate" in seen["summary"] and "agreement" in seen["shadow"]
    assert [p["action"] for p in promotions][:2] == ["rollback", "promote"] and promotions[0]["user"] == "qa"
    for role in ("viewer", "operator"):
        assert seen[role] == {"controls_hidden": True, "hint": True, "review": 403, "promote": 403, "rollback": 403}, role
