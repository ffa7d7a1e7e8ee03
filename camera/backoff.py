"""Capped exponential backoff for reconnect loops: the wait doubles after each failed attempt
up to a cap, and starts over after a success.

Why a copy of plc/backoff.py: ``camera``, ``inference`` and ``plc`` never import each
other (the layers contract in pyproject.toml), and a library for eight lines of arithmetic
would cost more than it saves; keep the two identical.
"""

from __future__ import annotations


class CappedBackoff:
    """The next wait of a reconnect loop: ``first_s``, doubling to ``max_s``; ``reset`` on success."""

    def __init__(self, first_s: float, max_s: float) -> None:
        self.first_s = first_s
        self.max_s = max_s
        self._next_s = first_s

    def next_wait(self) -> float:
        """The wait before the next attempt (the one after it is twice as long, up to the cap)."""
        wait = self._next_s
        self._next_s = min(wait * 2, self.max_s)
        return wait

    def reset(self) -> None:
        self._next_s = self.first_s
