"""HMI users, roles and sessions.

Users come from the config (``hmi.users``: name -> {password_hash, role}); passwords are
stored as scrypt hashes (:mod:`line.passwords`). A browser logs in once and gets a session
cookie (random token, HttpOnly, SameSite=Strict, server-side expiry); scripts and the
``linecheck recipe`` CLI send HTTP Basic credentials with every request instead. Roles are
ordered: viewer < operator < admin; switching recipes and resetting counters need operator.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

from line.errors import ConfigError, Problem
from line.passwords import dummy_hash, parse_hash, verify_password

Role = Literal["viewer", "qa", "operator", "admin"]
# qa: a viewer who may also review captures and promote models (line/hmi/review.py); it
# ranks with viewer so that it never gains an operator's rights by the ordering
ROLE_RANK: dict[str, int] = {"viewer": 0, "qa": 0, "operator": 1, "admin": 2}
SESSION_COOKIE = "linecheck_session"


@dataclass(frozen=True)
class User:
    name: str
    role: str

    def can(self, role: str) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]


class UserStore:
    def __init__(self, users: Mapping[str, Mapping[str, str] | BaseModel], source: str = "hmi.users") -> None:
        problems = []
        self._hashes: dict[str, str] = {}
        self._roles: dict[str, str] = {}
        for name, given in users.items():
            # the station config's users are validated models (line.app.config.HmiUser) already
            entry: Mapping[str, str] = given.model_dump() if isinstance(given, BaseModel) else given
            role = entry.get("role", "")
            if role not in ROLE_RANK:
                problems.append(Problem(source, f"{name}.role", f"must be one of {list(ROLE_RANK)}, got {role!r}"))
            try:
                parse_hash(entry.get("password_hash", ""))
            except ValueError as exc:
                problems.append(Problem(source, f"{name}.password_hash", str(exc)))
            unknown = set(entry) - {"role", "password_hash"}
            if unknown:
                problems.append(Problem(source, name, f"unknown keys {sorted(unknown)}"))
            self._hashes[name] = entry.get("password_hash", "")
            self._roles[name] = role
        if problems:
            raise ConfigError(problems)
        # checked against when the user is unknown, so that a wrong name costs as long as a wrong password
        self.dummy_hash = dummy_hash(list(self._hashes.values()))

    def authenticate(self, name: str, password: str) -> User | None:
        encoded = self._hashes.get(name)
        ok = verify_password(password, encoded or self.dummy_hash)
        return User(name, self._roles[name]) if ok and encoded else None

    def __len__(self) -> int:
        return len(self._hashes)


class Sessions:
    """Server-side sessions, bounded per user: beyond ``max_per_user`` a user's own oldest
    session is dropped. Why per user: with one global cap, any valid user logging in often
    enough ended everyone else's sessions. Users come from the config, so the total is bounded."""

    def __init__(self, ttl_s: float, max_per_user: int = 16) -> None:
        self.ttl_s = ttl_s
        self.max_per_user = max_per_user
        self._lock = threading.Lock()
        self._sessions: OrderedDict[str, tuple[User, float]] = OrderedDict()

    def create(self, user: User) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            now = time.monotonic()
            for old in [t for t, (_, expiry) in self._sessions.items() if expiry < now]:
                del self._sessions[old]
            mine = [t for t, (u, _) in self._sessions.items() if u.name == user.name]  # oldest first
            for old in mine[: max(0, len(mine) + 1 - self.max_per_user)]:
                del self._sessions[old]
            self._sessions[token] = (user, now + self.ttl_s)
        return token

    def get(self, token: str | None) -> User | None:
        if not token:
            return None
        with self._lock:
            entry = self._sessions.get(token)
            if entry is None:
                return None
            if entry[1] < time.monotonic():
                del self._sessions[token]
                return None
            return entry[0]

    def drop(self, token: str | None) -> None:
        if token:
            with self._lock:
                self._sessions.pop(token, None)
