"""A state that changes only along a transition table (the same code as plc/guarded_state.py;
``camera`` and ``plc`` never import each other, so each keeps a copy, and
tests/architecture/test_shared_copies.py keeps the two in step).

Why a refused transition is logged and the state kept, not raised: the states change on
acquisition, supervisor and network threads (a camera's fetch, a PLC link's reconnect loop,
paho's network thread). An exception there would end the thread, and with it the reconnects
or the fail-safe verdicts the station relies on, for a bookkeeping mistake. A state with no
way out (a closed link) refuses quietly: callbacks still in flight when a link closes are
expected to try to leave it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

S = TypeVar("S", bound=Enum)


class GuardedState(Generic[S]):
    """The current state of one thing named ``name``, changed by :meth:`advance` only along
    ``allowed`` (state -> the states it may go to); thread-safe.

    Listeners hear every change as ``(before, after)`` in the order the changes happened
    (they are called under the lock, so they must be quick and must not call back in)."""

    def __init__(self, name: str, initial: S, allowed: Mapping[S, frozenset[S]]) -> None:
        self.name = name
        self._state = initial
        self._allowed = allowed
        self._lock = threading.Lock()
        self._listeners: list[Callable[[S, S], None]] = []

    @property
    def state(self) -> S:
        return self._state

    def add_listener(self, listener: Callable[[S, S], None]) -> None:
        with self._lock:
            self._listeners.append(listener)

    def advance(self, to: S) -> bool:
        """Go to ``to``; True when the state is now ``to`` (staying put is no transition), False
        when the table refuses it (logged; the state stays)."""
        with self._lock:
            before = self._state
            if to is before:
                return True
            exits = self._allowed[before]
            if to not in exits:
                level = logging.ERROR if exits else logging.DEBUG
                log.log(level, "%s: %s -> %s is not an allowed transition; it stays %s",
                        self.name, before.value, to.value, before.value)  # fmt: skip
                return False
            self._state = to
            for listener in self._listeners:
                listener(before, to)
        return True
