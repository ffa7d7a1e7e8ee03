"""``linecheck recipe list|switch`` against a running service (the real CLI, as a subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.hmi.helpers import PASSWORDS, running_rig

ROOT = Path(__file__).resolve().parents[2]


def linecheck(*args: str, password: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LINECHECK_PASSWORD", "LINECHECK_USER")}
    if password is not None:
        env["LINECHECK_PASSWORD"] = password
    return subprocess.run([sys.executable, "-m", "line", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)  # fmt: skip


def test_list_switch_refuse_and_roles(tmp_path: Path) -> None:
    with running_rig(tmp_path) as rig:
        listed = linecheck("recipe", "list", "--url", rig.url, "--user", "viewer", password=PASSWORDS["viewer"])
        assert listed.returncode == 0, listed.stderr
        lines = listed.stdout.splitlines()
        assert lines[0].startswith("r1\tcode 1\t(active, warm)") and lines[1].startswith("r2\tcode 2")

        done = linecheck("recipe", "switch", "r2", "--url", rig.url, "--user", "operator", password=PASSWORDS["operator"])
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("switched to r2 in ")
        assert rig.station.book.active.recipe.id == "r2"
        assert rig.station.book.last_audit.source == "cli" and rig.station.book.last_audit.user == "operator"

        refused = linecheck("recipe", "switch", "r3", "--url", rig.url, "--user", "admin", password=PASSWORDS["admin"])
        assert refused.returncode == 1 and "model of r3 cannot be loaded" in refused.stderr
        assert rig.station.book.active.recipe.id == "r2"

        viewer = linecheck("recipe", "switch", "r1", "--url", rig.url, "--user", "viewer", password=PASSWORDS["viewer"])
        assert viewer.returncode == 2 and "HTTP 403" in viewer.stderr
        wrong = linecheck("recipe", "switch", "r1", "--url", rig.url, "--user", "operator", password="nope")
        assert wrong.returncode == 2 and "HTTP 401" in wrong.stderr
        unknown = linecheck("recipe", "switch", "../r1", "--url", rig.url, "--user", "operator", password=PASSWORDS["operator"])
        assert unknown.returncode == 2 and "HTTP 400" in unknown.stderr
        assert rig.station.book.active.recipe.id == "r2"


def test_unreachable_service() -> None:
    result = linecheck("recipe", "list", "--url", "http://127.0.0.1:9", "--user", "viewer", password="x")
    assert result.returncode == 3 and "cannot reach" in result.stderr
