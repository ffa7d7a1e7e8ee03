"""deploy/install.sh as an unprivileged subprocess: the dry run prints the whole plan, in order,
and changes nothing; a real run refuses without root; reruns detect what is already done."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from .conftest import DEPLOY, REPO, run_script, tree

INSTALL = DEPLOY / "install.sh"
SYSTEM_PATHS = [Path("/etc/linecheck"), Path("/var/lib/linecheck"), Path("/opt/linecheck")]


def _layout(scratch: Path) -> tuple[Path, Path, Path, list[str]]:
    prefix, etc, units = scratch / "opt", scratch / "etc", scratch / "units"
    return prefix, etc, units, ["--prefix", str(prefix), "--etc-dir", str(etc), "--unit-dir", str(units)]


def _dry_run(args: list[str], unprivileged: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    system_before = {p: p.exists() for p in SYSTEM_PATHS}
    result = run_script(INSTALL, ["--dry-run", *args], **unprivileged)
    assert result.returncode == 0, result.stdout + result.stderr
    assert {p: p.exists() for p in SYSTEM_PATHS} == system_before
    return result


def _index(lines: list[str], needle: str) -> int:
    hits = [i for i, line in enumerate(lines) if needle in line]
    assert hits, f"{needle!r} not in output:\n" + "\n".join(lines)
    return hits[0]


def test_dry_run_fresh_host_prints_plan_and_stops_at_example_config(scratch: Path, unprivileged: dict[str, Any]) -> None:
    prefix, etc, units, args = _layout(scratch)
    result = _dry_run(args, unprivileged)
    out = result.stdout
    assert "DRY RUN" in out
    assert "would run: useradd --system" in out or "user linecheck exists: skip" in out
    assert f"would run: python3 -m venv {prefix}" in out
    assert f"{prefix}/bin/python -m pip install" in out
    assert f"'{REPO}[gpu,tensorrt,genicam,opcua,hmi]'" in out
    assert f"{etc}/station.example.yaml" in out
    assert f"would write: {units}/linecheck.service" in out
    assert f"would write: {units}/linecheck-build.service" in out
    # the example's placeholders must not reach a PLC: no validate/build/enable on a fresh config
    assert "Installed the EXAMPLE config" in out
    assert "bin/linecheck validate" not in out and "systemctl enable" not in out
    assert tree(scratch) == []


def test_dry_run_with_config_validates_builds_then_enables_in_order(scratch: Path, unprivileged: dict[str, Any]) -> None:
    prefix, etc, units, args = _layout(scratch)
    config = scratch / "station.yaml"
    config.write_text((DEPLOY / "config" / "station.example.yaml").read_text())
    config.chmod(0o644)
    before = tree(scratch)
    lines = _dry_run([*args, "--config", str(config)], unprivileged).stdout.splitlines()
    assert tree(scratch) == before
    install_config = _index(lines, f"{config} {etc}/station.yaml")
    validate = _index(lines, f"runuser -u linecheck -- {prefix}/bin/linecheck validate {etc}/station.yaml")
    build = _index(lines, f"{prefix}/bin/linecheck build -c {etc}/station.yaml")
    restart_build = _index(lines, "would run: systemctl restart linecheck-build.service")
    enable = _index(lines, "would run: systemctl enable linecheck.service")
    start = _index(lines, "systemctl start linecheck.service")
    assert install_config < validate < build <= restart_build < enable < start
    assert lines[-1] == "dry run finished: nothing was changed"


def test_dry_run_options_extras_source_no_build_no_start(scratch: Path, unprivileged: dict[str, Any]) -> None:
    _, etc, _, args = _layout(scratch)
    etc.mkdir(mode=0o755)
    (etc / "station.yaml").write_text("station: {id: s}\n")
    out = _dry_run(
        [*args, "--extras", "opcua,hmi", "--source", "linecheck==0.1.0", "--no-build", "--no-start"], unprivileged
    ).stdout
    assert "'linecheck[opcua,hmi]==0.1.0'" in out
    assert f"{etc}/station.yaml exists: keep it" in out
    assert "--no-build: skip" in out and "systemctl restart linecheck-build" not in out
    assert "would run: systemctl enable linecheck.service" in out
    assert "--no-start: enabled, not started" in out and "would run: systemctl start" not in out


def test_dry_run_rerun_skips_what_is_done(scratch: Path, unprivileged: dict[str, Any]) -> None:
    """Idempotence as the script sees it: an existing venv, config and identical units are kept."""
    prefix, etc, units, args = _layout(scratch)
    (prefix / "bin").mkdir(parents=True)
    python = prefix / "bin" / "python"
    python.write_text("#!/bin/sh\n")
    python.chmod(0o755)
    etc.mkdir()
    (etc / "station.yaml").write_text("station: {id: s}\n")
    units.mkdir()
    for unit in ("linecheck.service", "linecheck-build.service"):
        text = (DEPLOY / "systemd" / unit).read_text()
        text = text.replace("/opt/linecheck", str(prefix)).replace("/etc/linecheck/station.yaml", f"{etc}/station.yaml")
        (units / unit).write_text(text)
    before = tree(scratch)
    out = _dry_run(args, unprivileged).stdout
    assert f"virtualenv {prefix} exists: skip creation" in out
    assert f"{units}/linecheck.service is up to date: skip" in out
    assert f"{units}/linecheck-build.service is up to date: skip" in out
    assert "daemon-reload" not in out
    assert tree(scratch) == before


def test_real_run_refuses_without_root(scratch: Path, unprivileged: dict[str, Any]) -> None:
    _, _, _, args = _layout(scratch)
    result = run_script(INSTALL, args, **unprivileged)
    assert result.returncode != 0
    assert "must run as root" in result.stderr
    assert tree(scratch) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--prefix", "relative/dir"], "not an absolute path"),
        (["--extras", "gpu;rm -rf /"], "--extras"),
        (["--bogus"], "unknown argument"),
        (["--config", "/nonexistent/station.yaml"], "no such file"),
    ],
)
def test_bad_arguments_fail_before_any_action(args: list[str], message: str, unprivileged: dict[str, Any]) -> None:
    result = run_script(INSTALL, ["--dry-run", *args], **unprivileged)
    assert result.returncode != 0
    assert message in result.stderr
    assert "would run" not in result.stdout
