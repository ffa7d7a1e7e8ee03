"""Fixtures for the deploy scripts: run them as an unprivileged user, in a scratch directory
that such a user *could* write to, so "changes nothing" is a real observation (a buggy dry run
would leave files behind) and not a consequence of permissions."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
NOBODY = 65534  # the conventional "nobody"/"nogroup" ids; no passwd entry is needed


def _traversable_by_others(path: Path) -> bool:
    """True when every directory above ``path`` lets an unrelated user in (o+x)."""
    for parent in [path, *path.parents]:
        if parent.is_dir() and not parent.stat().st_mode & stat.S_IXOTH:
            return False
    return True


@pytest.fixture
def unprivileged() -> dict[str, Any]:
    """subprocess kwargs that run a child as a non-root user (we may be root in CI)."""
    if os.geteuid() != 0:
        return {}
    if not _traversable_by_others(REPO):
        pytest.skip(f"running as root and {REPO} is not readable by other users, so it cannot drop to nobody")
    return {"user": NOBODY, "group": NOBODY, "extra_groups": []}


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A world-writable temporary directory (mode 1777, like /tmp) removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="linecheck-deploy-"))
    path.chmod(0o1777)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def tree(path: Path) -> list[str]:
    """Everything under ``path``, relative and sorted: a before/after snapshot."""
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def run_script(
    script: Path, args: Sequence[str], *, env: dict[str, str] | None = None, timeout: float = 60, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """Run a deploy script with bash (no reliance on the executable bit), capturing output."""
    base_env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "LC_ALL": "C", "HOME": "/nonexistent"}
    if env:
        base_env.update(env)
    bash = shutil.which("bash") or "/bin/bash"
    return subprocess.run(
        [bash, str(script), *args], capture_output=True, text=True, env=base_env, timeout=timeout, check=False, **kwargs
    )
