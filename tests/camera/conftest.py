"""Fixtures for the hardware backends: the Viky GenTL producer and a real Aravis fake GigE
Vision camera (``arv-fake-gv-camera-0.8``: GVCP/GVSP on loopback) in its own process.

Skips only when the Debian packages are absent (aravis-tools, gir1.2-aravis-0.8) or the
genicam wheel lacks viky.cti; CI installs them, so these tests really run there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.camera.fake_gige import FakeCamera, aravis_missing, fake_camera_lock


@pytest.fixture(scope="session")
def viky_cti() -> Path:
    try:
        import genicam
        import harvesters.core  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"harvesters/genicam not installed ({exc}); pip install harvesters genicam")
    path = Path(genicam.__file__).parent / "viky.cti"
    if not path.is_file():
        pytest.skip(f"the genicam wheel ships no viky.cti at {path}")
    return path


@pytest.fixture
def fake_camera_factory() -> Iterator[Callable[..., FakeCamera]]:
    """Call it with extra CLI args (e.g. ``"-r", "20"``); every camera started is killed at
    the end. Holds the host-wide fake-camera lock for the whole test (see fake_gige)."""
    missing = aravis_missing()
    if missing:
        pytest.skip(missing)
    started: list[FakeCamera] = []

    def make(*extra: str) -> FakeCamera:
        cam = FakeCamera(*extra)
        started.append(cam)
        cam.start()
        return cam

    with fake_camera_lock():
        try:
            yield make
        finally:
            for cam in started:
                cam.kill()


@pytest.fixture
def fake_camera(fake_camera_factory: Callable[..., FakeCamera]) -> FakeCamera:
    return fake_camera_factory()
