"""Every option and argument of every ``linecheck`` subcommand explains itself in ``--help``."""

from __future__ import annotations

import argparse
import subprocess
import sys

from line.app.cli import build_parser


def _walk(parser: argparse.ArgumentParser, path: str) -> list[str]:
    """Names (``linecheck bench --frames``) of actions without a help text, subcommands included."""
    missing = []
    for action in parser._actions:  # argparse keeps its actions here; there is no public accessor
        if isinstance(action, argparse._SubParsersAction):
            helped = {choice.dest for choice in action._choices_actions if choice.help}
            for name, sub in action.choices.items():
                if name not in helped:
                    missing.append(f"{path} {name}")
                missing += _walk(sub, f"{path} {name}")
        elif not isinstance(action, argparse._HelpAction) and not action.help:
            missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
    return missing


def test_every_option_of_every_subcommand_has_help() -> None:
    parser = build_parser()
    assert _walk(parser, "linecheck") == []


def test_the_walk_finds_a_missing_help() -> None:
    """The check above would see an undocumented option (it cannot pass vacuously)."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    sub.choices["init"].add_argument("--undocumented")
    assert _walk(parser, "linecheck") == ["linecheck init --undocumented"]


def test_every_subcommand_prints_help() -> None:
    for command in ("demo", "run", "init", "validate", "build", "bench", "recipe"):
        proc = subprocess.run([sys.executable, "-m", "line", command, "--help"], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith(f"usage: linecheck {command}")


def test_passwords_help_prints_help_not_a_hash() -> None:
    proc = subprocess.run([sys.executable, "-m", "line.passwords", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: python -m line.passwords")
    assert "PASSWORD" in proc.stdout
    assert "scrypt$" not in proc.stdout


def test_passwords_hashes_a_password_given_after_double_dash() -> None:
    from line.passwords import verify_password

    proc = subprocess.run([sys.executable, "-m", "line.passwords", "--", "-secret"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert verify_password("-secret", proc.stdout.strip())
