"""deploy/gige/tune-host.sh as an unprivileged subprocess: it reads the live values of this
host and prints "would change X from A to B" for each one, works without ethtool (and says
so), parses ethtool's output when present, and changes nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .conftest import DEPLOY, run_script, tree

TUNE = DEPLOY / "gige" / "tune-host.sh"
RMEM = 33554432
TOOLS = ("ip", "sed", "awk", "head", "tr", "cmp", "basename", "dirname", "mkdir")

FAKE_ETHTOOL = """#!/bin/sh
case "$1" in
-g) printf 'Ring parameters for %s:\\nPre-set maximums:\\nRX:\\t\\t4096\\nRX Mini:\\tn/a\\nTX:\\t\\t4096\\n' "$2"
    printf 'Current hardware settings:\\nRX:\\t\\t512\\nRX Mini:\\tn/a\\nTX:\\t\\t512\\n' ;;
-c) printf 'Coalesce parameters for %s:\\nAdaptive RX: on  TX: on\\nrx-usecs: 3\\nrx-frames: n/a\\n' "$2" ;;
*) echo "fake ethtool: refusing to change anything: $*" >&2; exit 99 ;;
esac
"""


def _iface() -> str:
    names = sorted(os.listdir("/sys/class/net"))
    ethernet = [n for n in names if n != "lo" and Path(f"/sys/class/net/{n}/mtu").exists()]
    return ethernet[0] if ethernet else "lo"


def _read(path: str) -> str:
    return Path(path).read_text().strip()


def _expect(what: str, now: str, want: str) -> str:
    return f"ok: {what} is already {want}" if now == want else f"would change {what} from {now} to {want}"


def _bin_without_ethtool(scratch: Path) -> str:
    """A PATH with only the tools the script needs, so the test holds where ethtool is installed."""
    bindir = scratch / "bin"
    bindir.mkdir()
    for tool in TOOLS:
        found = shutil.which(tool)
        if found is None:
            pytest.skip(f"{tool} is not installed")
        (bindir / tool).symlink_to(found)
    return str(bindir)


def _dry_run(args: list[str], unprivileged: dict[str, Any], path: str | None = None) -> subprocess.CompletedProcess[str]:
    result = run_script(TUNE, ["--dry-run", *args], env={"PATH": path} if path else None, **unprivileged)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_dry_run_reports_current_and_target_values(scratch: Path, unprivileged: dict[str, Any]) -> None:
    iface = _iface()
    sysctl_file = scratch / "sysctl.d" / "90-linecheck-gige.conf"
    before = tree(scratch)
    out = _dry_run(["--iface", iface, "--sysctl-file", str(sysctl_file)], unprivileged).stdout
    for key in ("rmem_max", "rmem_default"):
        now = _read(f"/proc/sys/net/core/{key}")
        assert _expect(f"net.core.{key}", now, str(max(int(now), RMEM))) in out
    assert _expect(f"MTU of {iface}", _read(f"/sys/class/net/{iface}/mtu"), "9000") in out or "supports an MTU of at most" in out
    rp = _read(f"/proc/sys/net/ipv4/conf/{iface}/rp_filter")
    assert _expect(f"net.ipv4.conf.{iface}.rp_filter", rp, "2") in out
    if not list(Path("/sys/devices/system/cpu").glob("cpu[0-9]*/cpufreq/scaling_governor")):
        assert "cpufreq is not exposed here" in out
    else:
        assert "governor of cpu0" in out
    assert f"would write {sysctl_file}:" in out
    assert f"net.ipv4.conf.{iface}.rp_filter = 2" in out
    assert "nothing was changed" in out.splitlines()[-1]
    assert tree(scratch) == before  # the sysctl file (and its directory) were not created


def test_without_ethtool_it_says_so(scratch: Path, unprivileged: dict[str, Any]) -> None:
    out = _dry_run(["--iface", _iface(), "--no-governor"], unprivileged, _bin_without_ethtool(scratch)).stdout
    assert "ethtool is not installed" in out
    assert "--no-governor: skip" in out


def test_ring_buffers_and_coalescing_from_ethtool(scratch: Path, unprivileged: dict[str, Any]) -> None:
    path = _bin_without_ethtool(scratch)
    fake = scratch / "bin" / "ethtool"
    fake.write_text(FAKE_ETHTOOL)
    fake.chmod(0o755)
    iface = _iface()
    out = _dry_run(["--iface", iface], unprivileged, path).stdout
    assert f"would change RX ring of {iface} from 512 to 4096" in out
    assert f"coalescing on {iface}: adaptive-rx=on rx-usecs=3 (not changed)" in out
    assert f"ethtool -C {iface} adaptive-rx off" in out  # a hint, never run (the fake would exit 99)


def test_without_iface_only_host_wide_settings(unprivileged: dict[str, Any]) -> None:
    out = _dry_run(["--rmem", "1024"], unprivileged).stdout
    assert "no --iface given" in out
    # a smaller --rmem never lowers what is configured
    assert _expect("net.core.rmem_max", _read("/proc/sys/net/core/rmem_max"), _read("/proc/sys/net/core/rmem_max")) in out


def test_real_run_refuses_without_root(scratch: Path, unprivileged: dict[str, Any]) -> None:
    result = run_script(TUNE, ["--iface", _iface(), "--sysctl-file", str(scratch / "x.conf")], **unprivileged)
    assert result.returncode != 0
    assert "must run as root" in result.stderr
    assert tree(scratch) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--iface", "no-such-if0"], "no such interface"),
        (["--iface", "../etc"], "not an interface name"),
        (["--mtu", "jumbo"], "--mtu"),
        (["--frobnicate"], "unknown argument"),
    ],
)
def test_bad_arguments(args: list[str], message: str, unprivileged: dict[str, Any]) -> None:
    result = run_script(TUNE, ["--dry-run", *args], **unprivileged)
    assert result.returncode != 0
    assert message in result.stderr
