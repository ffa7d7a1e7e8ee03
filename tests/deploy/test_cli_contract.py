"""The commands the deploy files run must be accepted by the real ``linecheck`` parser, so a
CLI change that would break the units, install.sh or the container fails here, not on a
station at start-up."""

from __future__ import annotations

import shlex
import subprocess
import sys

import pytest

from .conftest import DEPLOY, REPO

cli = pytest.importorskip("line.app.cli")


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
                                     "not a hash; make one with python -m line.mes.config hash-password")  # fmt: skip
    assert "Traceback" not in result.stderr


def test_exec_start_pre_refuses_what_run_refuses(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The unit's ExecStartPre, pointed at broken configs of the corpus (in-process for speed;
    tests/line/test_config_corpus.py runs ``run`` on every one): non-zero, so systemd never
    reaches ExecStart; and zero for the corpus' good station."""
    import shutil

    import numpy as np

    from tests.inference.onnx_models import constant_model

    root = tmp_path_factory.mktemp("unit")
    shutil.copytree(REPO / "tests" / "config_corpus", root, dirs_exist_ok=True)
    constant_model(root / "recipes" / "model.onnx", np.zeros((1, 7, 4), np.float32))
    pre = next(c for c in _unit_commands() if c[0] == "validate")
    for name, status in (("good", 0), ("active-missing", 1), ("camera-typo", 1), ("opcua-production-example-users", 1)):
        argv = [root / "station" / f"{name}.yaml" if a == "/etc/linecheck/station.yaml" else a for a in pre]
        assert cli.main([str(a) for a in argv]) == status, name
