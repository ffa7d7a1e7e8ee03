"""The commands the deploy files run must be accepted by the real ``linecheck`` parser, so a
CLI change that would break the units, install.sh or the container fails here, not on a
station at start-up."""

from __future__ import annotations

import shlex
import subprocess
import sys

import pytest

from .conftest import DEPLOY, REPO

cli = pytest.importorskip("line.cli")


def _unit_commands() -> list[list[str]]:
    commands = []
    for unit in ("linecheck.service", "linecheck-build.service"):
        for line in (DEPLOY / "systemd" / unit).read_text().splitlines():
            if line.startswith(("ExecStart=", "ExecStartPre=")):
                argv = shlex.split(line.partition("=")[2])
                assert argv[0] == "/opt/linecheck/bin/linecheck", line
                commands.append(argv[1:])
    return commands


def test_unit_commands_parse() -> None:
    commands = _unit_commands()
    assert [c[0] for c in commands] == ["validate", "run", "validate", "build"]
    parser = cli.build_parser()
    for argv in commands:
        args = parser.parse_args(argv)
        assert args.command == argv[0]
        if argv[0] == "validate":
            assert args.files == ["/etc/linecheck/station.yaml"]
        else:
            assert args.config == "/etc/linecheck/station.yaml"


def test_install_and_entrypoint_commands_parse() -> None:
    parser = cli.build_parser()
    for argv in (["validate", "/etc/linecheck/station.yaml"], ["build", "-c", "/etc/linecheck/station.yaml"],
                 ["run", "-c", "/etc/linecheck/station.yaml", "--duration", "5"]):  # fmt: skip
        parser.parse_args(argv)
    install = (DEPLOY / "install.sh").read_text()
    assert '"$PREFIX/bin/linecheck" validate "$CONFIG_FILE"' in install
    assert '"$PREFIX/bin/linecheck" build -c "$CONFIG_FILE"' in install
    entry = (DEPLOY / "container" / "entrypoint.sh").read_text()
    assert 'linecheck validate "$config"' in entry and 'linecheck build -c "$config"' in entry
    assert 'exec linecheck run -c "$config" "$@"' in entry


def test_real_cli_refuses_the_unedited_example_config() -> None:
    """What ExecStartPre runs, against the example config install.sh ships (a real subprocess):
    its placeholders keep the station from starting until someone edits them."""
    example = DEPLOY / "config" / "station.example.yaml"
    result = subprocess.run(
        [sys.executable, "-m", "line", "validate", str(example)],
        capture_output=True, text=True, timeout=120, check=False, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.strip() == (f"{example}: opcua_server.users.mes.password_hash: password_hash is a placeholder, "
                                     "not a hash; make one with python -m plc.opcua_config hash-password")  # fmt: skip
    assert "Traceback" not in result.stderr
