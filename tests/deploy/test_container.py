"""The container pieces that can run without a container engine: the entrypoint (against a
recording stand-in for the ``linecheck`` console script), the health check (against a real
HTTP server on 127.0.0.1), and the Containerfile's promises (base image, non-root user, engines
built at start rather than baked into the image)."""

from __future__ import annotations

import http.server
import importlib.util
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from .conftest import DEPLOY, run_script

CONTAINER = DEPLOY / "container"
ENTRYPOINT = CONTAINER / "entrypoint.sh"

FAKE_LINECHECK = """#!/bin/sh
echo "$*" >> "$CALLS"
[ "$1" = validate ] && [ -n "${FAIL_VALIDATE:-}" ] && exit 3
exit 0
"""


def _load_healthcheck() -> ModuleType:
    """deploy/container is not a package (the file is copied into the image): load it by path."""
    spec = importlib.util.spec_from_file_location("linecheck_container_healthcheck", CONTAINER / "healthcheck.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


healthcheck = _load_healthcheck()


@pytest.fixture
def fake_bin(tmp_path: Path) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "linecheck"
    fake.write_text(FAKE_LINECHECK)
    fake.chmod(0o755)
    return bindir


def _entry(tmp_path: Path, fake_bin: Path, args: list[str], **env: str) -> tuple[int, list[str], str]:
    config = tmp_path / "station.yaml"
    calls = tmp_path / "calls"
    environment = {"PATH": f"{fake_bin}:/usr/bin:/bin", "CALLS": str(calls), "LINECHECK_CONFIG": str(config), **env}
    result = run_script(ENTRYPOINT, args, env=environment)
    recorded = calls.read_text().splitlines() if calls.exists() else []
    return result.returncode, recorded, result.stderr


def test_entrypoint_validates_builds_then_runs(tmp_path: Path, fake_bin: Path) -> None:
    (tmp_path / "station.yaml").write_text("{}\n")
    cfg = tmp_path / "station.yaml"
    rc, calls, _ = _entry(tmp_path, fake_bin, [])
    assert rc == 0
    assert calls == [f"validate {cfg}", f"build -c {cfg}", f"run -c {cfg}"]


def test_entrypoint_passes_run_arguments_and_can_skip_build(tmp_path: Path, fake_bin: Path) -> None:
    (tmp_path / "station.yaml").write_text("{}\n")
    cfg = tmp_path / "station.yaml"
    rc, calls, _ = _entry(tmp_path, fake_bin, ["run", "--duration", "5"], LINECHECK_SKIP_BUILD="1")
    assert rc == 0
    assert calls == [f"validate {cfg}", f"run -c {cfg} --duration 5"]


def test_entrypoint_stops_on_invalid_config(tmp_path: Path, fake_bin: Path) -> None:
    (tmp_path / "station.yaml").write_text("{}\n")
    rc, calls, _ = _entry(tmp_path, fake_bin, [], FAIL_VALIDATE="1")
    assert rc == 3
    assert [c.split()[0] for c in calls] == ["validate"]


def test_entrypoint_without_config_says_what_to_mount(tmp_path: Path, fake_bin: Path) -> None:
    rc, calls, stderr = _entry(tmp_path, fake_bin, [])
    assert rc == 64
    assert calls == []
    assert "mount the station's /etc/linecheck" in stderr


def test_entrypoint_execs_other_commands(tmp_path: Path, fake_bin: Path) -> None:
    rc, calls, _ = _entry(tmp_path, fake_bin, ["linecheck", "bench", "-c", "x.yaml"])
    assert rc == 0
    assert calls == ["bench -c x.yaml"]


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = 200 if self.path == "/healthz" else 503
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def hmi() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, name="fake-hmi", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_healthcheck_against_a_real_http_server(hmi: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert healthcheck.check(f"{hmi}/healthz") == (True, "HTTP 200")
    assert healthcheck.check(f"{hmi}/not-ready") == (False, "HTTP 503")
    monkeypatch.setenv("LINECHECK_HEALTH_URL", f"{hmi}/healthz")
    assert healthcheck.main() == 0
    monkeypatch.setenv("LINECHECK_HEALTH_URL", f"{hmi}/broken")
    assert healthcheck.main() == 1


def test_healthcheck_unreachable_is_unhealthy() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    healthy, reason = healthcheck.check(f"http://127.0.0.1:{port}/healthz", timeout_s=1.0)
    assert not healthy and reason.startswith("unreachable")


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n\s*", " ", (CONTAINER / "Containerfile").read_text())
    out = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, rest = line.strip().partition(" ")
            out.append((keyword.upper(), rest))
    return out


def test_containerfile_promises() -> None:
    instructions = _instructions()
    args = {k: v for kw, rest in instructions if kw == "ARG" and "=" in rest for k, v in [rest.split("=", 1)]}
    tag = args["TRT_TAG"]
    assert re.fullmatch(r"2[56]\.\d\d-py3", tag), tag
    assert ("FROM", "nvcr.io/nvidia/tensorrt:${TRT_TAG}") in instructions
    assert set(args["EXTRAS"].split(",")) >= {"gpu", "tensorrt", "genicam", "opcua", "hmi"}
    users = [rest for kw, rest in instructions if kw == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert any(kw == "HEALTHCHECK" and "healthcheck.py" in rest for kw, rest in instructions)
    # engines are GPU-specific: never built at image build time
    assert not any(kw == "RUN" and "linecheck build" in rest for kw, rest in instructions)
    assert ("ENTRYPOINT", '["/usr/local/bin/linecheck-entrypoint"]') in instructions
    assert "linecheck build" in ENTRYPOINT.read_text()
