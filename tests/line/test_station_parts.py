"""The station's states and its parts' contracts: explicit transitions, Protocols instead of
capability look-ups by name, bounded closes of the engine threads."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from line.loop.batcher import Batcher
from line.loop.capabilities import HostBufferRegistrar, StateMirror
from line.loop.finisher import Finisher
from line.loop.station_state import IllegalTransition, StationLifecycle, StationState
from tests.line.test_station import make_station

pytestmark = pytest.mark.timeout(120)


def test_lifecycle_allows_only_the_listed_transitions() -> None:
    life = StationLifecycle()
    with pytest.raises(IllegalTransition):
        life.advance(StationState.RUNNING)  # built -> running skips starting
    for state in (StationState.STARTING, StationState.RUNNING, StationState.STOPPING, StationState.STOPPED):
        life.advance(state)
    assert life.state is StationState.STOPPED
    with pytest.raises(IllegalTransition, match="stopped to starting"):
        life.advance(StationState.STARTING)


def test_station_states_through_a_run_and_no_second_start(tmp_path: Path) -> None:
    station, _, _ = make_station(tmp_path)
    assert station.state is StationState.BUILT and station.phase == "starting"
    with station:
        assert station.state is StationState.RUNNING and station.phase == "running"
        with pytest.raises(IllegalTransition):
            station.start()
    assert station.state is StationState.STOPPED and station.phase == "stopped"
    station.stop()  # a second stop is harmless
    with pytest.raises(IllegalTransition):
        station.start()
    view = station.view()
    assert view.state == "stopped" and view.active_recipe == station.final_recipe is not None


class Mirror:
    def __init__(self) -> None:
        self.fields: dict[str, Any] = {}

    def update_state(self, **fields: Any) -> None:
        self.fields = fields


class Registrar:
    def register_host_buffers(self, arrays: Any) -> None:
        pass


def test_capabilities_are_protocols() -> None:
    assert isinstance(Mirror(), StateMirror) and not isinstance(object(), StateMirror)
    assert isinstance(Registrar(), HostBufferRegistrar) and not isinstance(Mirror(), HostBufferRegistrar)


class HungEngine:
    """``detect`` blocks until released: an engine that hangs."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def detect(self, images: list[Any]) -> list[Any]:
        self.entered.set()
        self.release.wait()
        return [None] * len(images)


def test_batcher_close_is_bounded_with_a_hung_engine() -> None:
    batcher = Batcher(2, None, 0.0, expected=lambda: 1)
    engine = HungEngine()
    from inference.engine import ImageInput

    batcher.submit(engine, ImageInput(np.zeros((4, 4), np.uint8), "Mono8"))  # type: ignore[arg-type]
    assert engine.entered.wait(30)
    assert batcher.close(0.05) is False  # left behind, not waited for
    engine.release.set()


def test_finisher_close_is_bounded_with_a_hung_lane() -> None:
    finisher = Finisher()
    entered, release = threading.Event(), threading.Event()

    class HungLane:
        def finish(self, ticket: Any, item: Any, pending: Any) -> None:
            entered.set()
            release.wait()

    class Ready:
        def ready(self) -> bool:
            return True

    finisher.put(HungLane(), None, None, Ready())
    finisher.wake()
    assert entered.wait(30)
    assert finisher.close(0.05) is False
    release.set()
