"""Helpers for the clean-install tests: a virtualenv with nothing but what pip resolves from the
package's own dependencies, and a demo run on free ports whose JSON summary is returned."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
INSTALL_TIMEOUT_S = 900  # a cold pip cache downloads onnxruntime, opencv, asyncua, ...


def clean_env() -> dict[str, str]:
    """The caller's environment without anything that would put the checkout or the test venv
    on the child's import path, nor the outer ``make``'s variables: a ``make demo`` started
    here is a user's top-level make, not a sub-make printing "Entering directory" lines (the
    suite itself runs under ``make test``, and ``make test-busy`` nests one make deeper)."""
    dropped = ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "MAKELEVEL", "MAKEFLAGS", "MFLAGS", "MAKEOVERRIDES")
    return {k: v for k, v in os.environ.items() if k not in dropped}


def run(cmd: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} -> {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def make_venv(path: Path) -> Path:
    """A fresh virtualenv (no system site-packages); returns its bin folder."""
    run([sys.executable, "-m", "venv", str(path)], cwd=path.parent)
    return path / "bin"


def copy_worktree(dest: Path) -> Path:
    """Tracked and new, not ignored, files of the checkout (links kept as links), as a clone
    would have them plus uncommitted edits: builds never write into the checkout."""
    names = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=REPO, check=True,
                           capture_output=True).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, names):
        src = REPO / name
        if not src.exists() and not src.is_symlink():
            continue  # deleted in the worktree, not yet committed
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            target.symlink_to(os.readlink(src))
        else:
            shutil.copy2(src, target)
    return dest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def with_free_ports(config: Path, dest: Path) -> Path:
    """The demo config with its HMI, Modbus and OPC UA ports moved to free ones, written to
    ``dest`` in the same folder (its relative paths keep their meaning)."""
    data = yaml.safe_load(config.read_text())
    data["hmi"]["port"] = free_port()
    data["plc"]["modbus_server"]["port"] = free_port()
    data["opcua_server"]["endpoint"] = f"opc.tcp://127.0.0.1:{free_port()}/linecheck/"
    dest.write_text(yaml.safe_dump(data))
    return dest


def demo_summary(stdout: str) -> dict[str, object]:
    """The demo's last line (``--json``), checked: every part got a verdict, and there were parts."""
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["parts"] == summary["verdicts"], summary
    assert int(summary["verdicts"]) > 0, summary
    assert summary["log_written"] == summary["verdicts"], summary
    return dict(summary)
