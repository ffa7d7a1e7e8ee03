"""Suite-wide fixtures. ``no_leaks`` (autouse) fails any test that leaves threads or child
processes behind, like pymodbus' ``system_health_check``."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator

import pytest

try:
    import psutil
except ImportError:  # pragma: no cover - dev extra
    psutil = None

# Tests that run a real station, browser or client flood for many seconds: marked ``slow`` here
# so the inner loop can run ``pytest -m "not slow"`` (docs/testing.md); ``make test`` runs all.
SLOW_PATHS = ("tests/reliability/", "tests/browser/", "tests/line/test_demo_end_to_end.py",
              "tests/opcua/test_load.py", "tests/opcua/test_node_mes.py", "tests/deploy/test_container.py",
              "tests/deploy/test_install.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = item.nodeid.replace("\\", "/")
        if path.startswith(SLOW_PATHS) or f"tests/{path}".startswith(SLOW_PATHS):
            item.add_marker(pytest.mark.slow)


_IGNORED_THREAD_PREFIXES = ("asyncio_", "ThreadPoolExecutor", "pydevd", "QueueFeederThread", "Dummy-")


def _threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.is_alive() and not t.name.startswith(_IGNORED_THREAD_PREFIXES)}


def _children() -> set[int]:
    if psutil is None:
        return set()
    pids = set()
    for proc in psutil.Process(os.getpid()).children(recursive=True):
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            # multiprocessing's shared helpers live for the whole session by design
            if any(k in " ".join(proc.cmdline()) for k in ("resource_tracker", "forkserver")):
                continue
        except psutil.Error:
            continue
        pids.add(proc.pid)
    return pids


@pytest.fixture(autouse=True)
def no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    threads_before = _threads()
    children_before = _children()
    yield
    if request.node.get_closest_marker("allow_leaks"):
        return
    deadline = time.monotonic() + 5.0
    while True:
        leaked_threads = _threads() - threads_before
        leaked_children = _children() - children_before
        if not leaked_threads and not leaked_children:
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    for pid in leaked_children:  # do not let one leak poison the next tests
        with contextlib.suppress(Exception):
            psutil.Process(pid).kill()
    pytest.fail(
        f"test left behind threads {sorted(t.name for t in leaked_threads)} and child processes {sorted(leaked_children)}"
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "allow_leaks: the test manages its own background resources (module-scoped)")
