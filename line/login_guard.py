"""What stands between the network and a password check, for every face that takes passwords
(the HMI's login form and HTTP Basic, the MES server's OPC UA user-name logins).

Why: a password check is one scrypt (tens of milliseconds of a core and 16 MiB of memory
bandwidth). Unbounded, a handful of threads guessing passwords at the login page took the
cores the station needs and turned most parts into fail-safes. So each face

- throttles failed logins per client address and per user name (``LoginThrottle``): a few
  free failures, then growing delays, then a lockout that an admin can clear; a throttled
  attempt is refused before any hashing and does not extend the delay;
- bounds the work it accepts from anyone (``PasswordGate``): checks run one at a time on one
  low-priority thread (the station's threads outrank it), a few may wait, the rest are
  refused before hashing;
- audits every failed check (who, from where, when; never the password).

The policy knows nothing of users or protocols: a face passes its own password check
(``Authenticate``) and maps ``LoginRefused`` to its own answer (HTTP 429/503, OPC UA
BadUserAccessDenied).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import Field

from line.config_model import ConfigModel

log = logging.getLogger(__name__)

T = TypeVar("T")
U = TypeVar("U")
Authenticate = Callable[[str, str], U | None]  # (name, password) -> the user, or None
Clock = Callable[[], float]
AuditSink = Callable[[str, dict[str, object]], None]


class ThrottlePolicy(ConfigModel):
    """Failures beyond ``free_failures`` wait ``base_delay_s * 2**k`` (at most ``max_delay_s``)
    before the next attempt counts; ``lockout_after`` failures lock the key for ``lockout_s``.

    A configuration model (``opcua_server.login_throttle`` in a station config): the MES server
    runs in its own process and takes its policy from there."""

    free_failures: int = Field(default=3, ge=0)  # failures without a delay
    base_delay_s: float = Field(default=1.0, gt=0)  # first delay; it doubles with each further failure
    max_delay_s: float = Field(default=60.0, gt=0)  # longest delay before the lockout
    lockout_after: int = Field(default=10, ge=1)  # failures that lock the address or user name out
    lockout_s: float = Field(default=900.0, gt=0)  # how long a lockout lasts unless an admin clears it
    max_tracked: int = Field(default=10_000, ge=1)  # keys kept (oldest forgotten): an attacker cannot grow memory
    hold_s: float = Field(default=2.0, ge=0)  # how long a refused login is held: HMI before its 429, OPC UA before the connection closes


DEFAULT_POLICY = ThrottlePolicy()


@dataclass
class _Record:
    failures: int = 0
    blocked_until: float = 0.0
    refused: int = 0  # attempts refused while blocked (counted, never hashed)


class LoginThrottle:
    """Failure bookkeeping per key (``addr:1.2.3.4`` or ``user:alice``), on an injected clock."""

    def __init__(self, policy: ThrottlePolicy = DEFAULT_POLICY, clock: Clock = time.monotonic) -> None:
        self.policy = policy
        self._clock = clock
        self._lock = threading.Lock()
        self._records: OrderedDict[str, _Record] = OrderedDict()

    def wait_s(self, keys: list[str]) -> float:
        """Seconds until every key may try again (0: go ahead); counts a refusal on blocked keys."""
        now = self._clock()
        wait = 0.0
        with self._lock:
            for key in keys:
                record = self._records.get(key)
                if record is not None and record.blocked_until > now:
                    record.refused += 1
                    wait = max(wait, record.blocked_until - now)
        return wait

    def failed(self, keys: list[str]) -> float:
        """Record one failed check on each key; returns the longest resulting delay."""
        now = self._clock()
        p = self.policy
        longest = 0.0
        with self._lock:
            for key in keys:
                record = self._records.pop(key, None) or _Record()
                self._records[key] = record  # most recent last
                record.failures += 1
                if record.failures >= p.lockout_after:
                    delay = p.lockout_s
                elif record.failures > p.free_failures:
                    delay = min(p.max_delay_s, p.base_delay_s * 2 ** (record.failures - p.free_failures - 1))
                else:
                    delay = 0.0
                record.blocked_until = now + delay
                longest = max(longest, delay)
            while len(self._records) > p.max_tracked:
                self._records.popitem(last=False)
        return longest

    def succeeded(self, keys: list[str]) -> None:
        with self._lock:
            for key in keys:
                self._records.pop(key, None)

    def blocked(self) -> list[dict[str, object]]:
        """Keys that may not try now (for the admin page/API)."""
        now = self._clock()
        with self._lock:
            return [
                {"key": key, "failures": r.failures, "retry_after_s": round(r.blocked_until - now, 1),
                 "locked_out": r.failures >= self.policy.lockout_after, "refused": r.refused}
                for key, r in self._records.items() if r.blocked_until > now
            ]  # fmt: skip

    def clear(self, key: str | None = None) -> list[str]:
        """Forget one key (or all); returns the keys cleared."""
        with self._lock:
            if key is None:
                cleared = list(self._records)
                self._records.clear()
            else:
                cleared = [key] if self._records.pop(key, None) is not None else []
        return cleared


class PasswordGate:
    """Password checks one at a time on one low-priority thread; at most ``max_waiting`` wait,
    and a caller that finds no room waits (asleep, up to ``wait_s``) for one before it is refused.

    Why wait rather than refuse at once: a refused client sends its next guess at once, and
    each answer costs the station's process a request's worth of Python."""

    def __init__(self, max_waiting: int = 2, wait_s: float = 2.0, thread_name: str = "password-check",
                 lower_priority: bool = True) -> None:  # fmt: skip
        """``lower_priority``: the checking thread yields to every other thread of the machine
        (nice 19); off where the whole process already runs below the station's priority."""
        self._slots = threading.BoundedSemaphore(1 + max_waiting)
        self._wait_s = wait_s
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_name,
                                        initializer=_lower_priority if lower_priority else None)  # fmt: skip

    def run(self, check: Callable[[], T]) -> tuple[bool, T | None]:
        """(accepted, result): accepted is False when refused for lack of room (check not run)."""
        if not self._slots.acquire(timeout=self._wait_s):
            return False, None
        try:
            return True, self._pool.submit(check).result()
        finally:
            self._slots.release()

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def _lower_priority() -> None:
    """The hashing thread yields the cores to the station's threads (Linux: nice is per thread)."""
    with contextlib.suppress(AttributeError, OSError):  # not Linux: the gate still bounds the work
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


class LoginRefused(Exception):
    """Refused before any password check: ``status`` 429 (throttled) or 503 (gate full), in
    HTTP's words; a face that is not HTTP maps them to its own."""

    def __init__(self, status: int, retry_after_s: float, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after_s = retry_after_s


class LoginGuard(Generic[U]):
    """Throttle -> gate -> password check -> bookkeeping and audit. Every way in of a face
    (the HMI's login form and HTTP Basic; OPC UA ActivateSession) goes through ``authenticate``."""

    def __init__(self, check: Authenticate[U], throttle: LoginThrottle, gate: PasswordGate, audit: AuditSink) -> None:
        self._check = check
        self.throttle = throttle
        self.gate = gate
        self._audit = audit

    def authenticate(self, name: str, password: str, address: str) -> U | None:
        """The user, or None for a wrong name/password; raises ``LoginRefused`` before hashing."""
        keys = [f"addr:{address}", f"user:{name}"]
        wait = self.throttle.wait_s(keys)
        if wait > 0:
            raise LoginRefused(429, wait, "too many failed logins; try again later")
        def check() -> U | None:
            # again, once through the gate: attempts queued before an earlier one failed are
            # refused now rather than hashed
            wait = self.throttle.wait_s(keys)
            if wait > 0:
                raise LoginRefused(429, wait, "too many failed logins; try again later")
            return self._check(name, password)

        accepted, user = self.gate.run(check)
        if not accepted:
            raise LoginRefused(503, 1.0, "too many logins at once; try again")
        if user is not None:
            self.throttle.succeeded(keys)
            return user
        delay = self.throttle.failed(keys)
        self._audit("login_failed", {"user": name, "address": address, "time": time.time(), "next_delay_s": delay})
        return None

    def close(self) -> None:
        self.gate.close()
