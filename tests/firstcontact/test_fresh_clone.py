"""``make demo`` on a fresh clone: the Makefile's own install (no test extras) runs the demo,
HMI and OPC UA server included."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.firstcontact.clean_install import INSTALL_TIMEOUT_S, REPO, demo_summary, run, with_free_ports

pytestmark = [pytest.mark.slow, pytest.mark.timeout(INSTALL_TIMEOUT_S + 600)]


def _head() -> str | None:
    proc = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else None


@pytest.mark.skipif(_head() is None or shutil.which("make") is None, reason="needs a git checkout and make")
def test_make_demo_on_a_fresh_clone(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", "--no-checkout", str(REPO), str(clone)], cwd=tmp_path)
    run(["git", "checkout", "-q", "--detach", str(_head())], cwd=clone)
    # the HMI, Modbus and OPC UA ports of the shipped demo, moved to free ones (tests never take fixed ports)
    config = with_free_ports(clone / "configs" / "demo.yaml", clone / "configs" / "demo-free-ports.yaml")
    state = tmp_path / "state"
    demo = run(["make", "-s", "demo", f"PYTHON={sys.executable}",
                f"ARGS=-c {config} --duration 8 --json --port 0 --state-dir {state}"], cwd=clone,
               timeout=INSTALL_TIMEOUT_S + 120)  # fmt: skip
    demo_summary(demo.stdout)
    freeze = run([str(clone / ".venv" / "bin" / "pip"), "freeze"], cwd=clone).stdout.lower()
    assert "pytest" not in freeze and "hypothesis" not in freeze  # the base install, not the test extras
    assert "fastapi" in freeze and "asyncua" in freeze
