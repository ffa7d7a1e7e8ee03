"""Recording the state changes of a camera or a link (through its listener) and the changes its
table refused (through the log), to check a real reconnect against the transition table."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from enum import Enum

import pytest

REFUSED = "is not an allowed transition"


class TransitionLog:
    """A listener: every ``(before, after)`` change, in order."""

    def __init__(self) -> None:
        self.steps: list[tuple[Enum, Enum]] = []
        self._lock = threading.Lock()

    def __call__(self, before: Enum, after: Enum) -> None:
        with self._lock:
            self.steps.append((before, after))

    def path(self) -> list[str]:
        """The states visited, first one included, as their values."""
        with self._lock:
            steps = list(self.steps)
        return [steps[0][0].value, *(after.value for _, after in steps)] if steps else []

    def outside(self, table: Mapping[Enum, frozenset[Enum]]) -> list[tuple[Enum, Enum]]:
        with self._lock:
            return [(a, b) for a, b in self.steps if b not in table[a]]


def refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The transitions a table refused while the test ran (any level; see ``guarded_state``)."""
    return [r.getMessage() for r in caplog.records if REFUSED in r.getMessage()]
