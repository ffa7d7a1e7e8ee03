"""Fixtures for the uplink tests: a real mosquitto with TLS, logins and an ACL, and the plant's
collector subscribed to everything."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.uplink.broker import Collector, Mosquitto


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    if shutil.which("mosquitto") is None:
        pytest.skip("Debian mosquitto is not installed (tests/setup/install-system-deps.sh)")
    b = Mosquitto(tmp_path / "broker").start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def collector(broker: Mosquitto) -> Iterator[Collector]:
    c = Collector(broker).start()
    try:
        yield c
    finally:
        c.close()
