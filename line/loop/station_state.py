"""The station's lifecycle as explicit states with the transitions allowed between them, so a
second ``start`` or a start after a stop is an error that says so instead of threads started
twice over the same lanes."""

from __future__ import annotations

import threading
from enum import Enum


class StationState(Enum):
    BUILT = "built"  # constructed: recipe loaded, cameras open, nothing running
    STARTING = "starting"  # threads and ports coming up
    RUNNING = "running"
    STOPPING = "stopping"  # deciding what was acquired, flushing, closing
    STOPPED = "stopped"  # final: a station is not restarted (build a new one)


ALLOWED: dict[StationState, frozenset[StationState]] = {
    StationState.BUILT: frozenset({StationState.STARTING}),
    # a start that failed half-way ends here: nothing to stop (as before the states existed)
    StationState.STARTING: frozenset({StationState.RUNNING, StationState.STOPPED}),
    StationState.RUNNING: frozenset({StationState.STOPPING}),
    StationState.STOPPING: frozenset({StationState.STOPPED}),
    StationState.STOPPED: frozenset(),
}


class IllegalTransition(RuntimeError):
    """A lifecycle call that the station's state does not allow (e.g. ``start`` twice)."""


class StationLifecycle:
    """The current state, changed only along :data:`ALLOWED`; thread-safe (the HMI reads it
    while the CLI's thread starts and stops the station)."""

    def __init__(self) -> None:
        self._state = StationState.BUILT
        self._lock = threading.Lock()

    @property
    def state(self) -> StationState:
        return self._state

    def advance(self, to: StationState) -> None:
        with self._lock:
            if to not in ALLOWED[self._state]:
                raise IllegalTransition(f"station cannot go from {self._state.value} to {to.value}")
            self._state = to
