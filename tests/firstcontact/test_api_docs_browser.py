"""``/docs`` renders in a real browser that cannot reach anything but the station."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.hmi.helpers import running_rig

HERE = Path(__file__).resolve().parent
BROWSER = HERE.parent / "browser"
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists() or not (BROWSER / "node_modules" / "playwright-core").is_dir() or shutil.which("node") is None,
    reason="needs /usr/bin/chromium and `npm ci` in tests/browser (playwright-core)",
)


def test_docs_render_with_the_internet_cut_off(tmp_path: Path) -> None:
    with running_rig(tmp_path) as rig:
        env = {**os.environ, "DOCS_URL": f"{rig.url}/docs", "PLAYWRIGHT_FROM": str(BROWSER / "package.json"),
               "CHROMIUM": str(CHROMIUM)}  # fmt: skip
        proc = subprocess.run(["node", str(HERE / "docs_offline.mjs")], env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["offsite"] == []  # not one request tried to leave the station
    assert seen["failed"] == [] and seen["errors"] == []
    assert seen["title"].startswith("linecheck HMI")
    assert seen["operations"] >= 5  # the API's routes are listed: the OpenAPI 3.1 document was understood
    assert seen["render_errors"] == 0
