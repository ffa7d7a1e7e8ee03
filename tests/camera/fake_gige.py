"""Aravis' fake GigE Vision camera (``arv-fake-gv-camera-0.8``) as a child process for tests.

It always listens on GVCP port 3956 of 127.0.0.1 (it needs an interface address, so
127.0.0.2 does not work), so one host runs one at a time. Every test that starts one must
hold :func:`fake_camera_lock` for as long as its camera may run; the lock serializes test
processes that run at the same time (parallel CI jobs, other suites such as
tests/reliability).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

FAKE_CAMERA = "arv-fake-gv-camera-0.8"
LOOPBACK = "127.0.0.1"
LOCK_PATH = Path(tempfile.gettempdir()) / "linecheck-arv-fake-gv-camera.lock"


def aravis_missing() -> str | None:
    """Why the fake camera cannot run here (a pytest.skip reason), or None."""
    if shutil.which(FAKE_CAMERA) is None:
        return f"{FAKE_CAMERA} not found (apt-get install -y aravis-tools)"
    try:
        import gi

        gi.require_version("Aravis", "0.8")
        from gi.repository import Aravis  # noqa: F401
    except (ImportError, ValueError) as exc:
        return (
            f"Aravis GObject bindings unavailable ({exc}); "
            "apt-get install -y gir1.2-aravis-0.8 and pip install 'PyGObject<3.51'"
        )
    return None


def _die_with_parent() -> None:
    """Linux PR_SET_PDEATHSIG: a test process that crashes takes its fake camera along, so
    no orphan keeps answering on port 3956 for the next run."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


@contextlib.contextmanager
def fake_camera_lock() -> Iterator[None]:
    with open(LOCK_PATH, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class FakeCamera:
    """``arv-fake-gv-camera-0.8 -i 127.0.0.1 [extra]``; ``kill()`` and ``start()`` again at will."""

    def __init__(self, *extra: str) -> None:
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None
        self.address = LOOPBACK

    def start(self, ready_timeout_s: float = 10.0) -> None:
        from camera.aravis import gvcp_alive

        if self.proc is not None:
            raise RuntimeError("fake camera already running")
        if gvcp_alive(self.address, timeout_s=0.1, tries=1):
            raise RuntimeError(
                f"another GigE Vision device already answers on {self.address}:3956 "
                f"(a test starting one without holding {LOCK_PATH}?)"
            )
        self.proc = subprocess.Popen(
            [FAKE_CAMERA, "-i", self.address, *self.extra],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + ready_timeout_s
        while not gvcp_alive(self.address, timeout_s=0.1, tries=1):
            if self.proc.poll() is not None:
                raise RuntimeError(f"{FAKE_CAMERA} exited with {self.proc.returncode}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"{FAKE_CAMERA} does not answer GVCP on {self.address}")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
