"""Configuration of the OPC UA server for MES (frozen pydantic models) and the password hashes
its users are stored with.

Why here and not in ``plc/config.py``: the station config keeps ``opcua_server`` as a raw
mapping and this module validates it, so the shared interface file stays untouched.

Production rules are enforced by validation, not by documentation: ``profile: production``
accepts only ``Basic256Sha256_SignAndEncrypt`` and no anonymous access; anonymous access is
refused on any endpoint that is not bound to the loopback interface.

Password hashes: ``scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>`` (stdlib ``hashlib.scrypt``,
16-byte random salt). Create one with::

    .venv/bin/python -m line.mes.config hash-password            # prompts twice
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from pydantic import Field, field_validator, model_validator

from line import passwords
from line.config_model import ConfigModel
from line.login_guard import ThrottlePolicy

SecurityPolicyName = Literal[
    "None",
    "Basic256Sha256_Sign",
    "Basic256Sha256_SignAndEncrypt",
    "Aes128Sha256RsaOaep_SignAndEncrypt",
    "Aes256Sha256RsaPss_SignAndEncrypt",
]
Role = Literal["reader", "operator"]
PRODUCTION_POLICY: SecurityPolicyName = "Basic256Sha256_SignAndEncrypt"
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}

# Passwords printed in configs/*.yaml and the docs. A production server that accepts one of them
# is open to anyone who has read the documentation (issue 21): refused by validation.
DOCUMENTED_PASSWORDS = ("change-me-reader", "change-me-operator", "operator-demo")

_SCRYPT_N = 2**14
_SCRYPT_R = 8
_SCRYPT_P = 1


def hash_password(password: str, *, n: int = _SCRYPT_N, r: int = _SCRYPT_R, p: int = _SCRYPT_P) -> str:
    """Salted scrypt hash (:mod:`line.passwords`, the format the HMI uses too)."""
    return passwords.hash_password(password, n=n, r=r, p=p)


def verify_password(password: str, stored: str) -> bool:
    """Constant-time check; a malformed stored hash never matches (it does not raise)."""
    return passwords.verify_password(password, stored)


class OpcUaUser(ConfigModel):
    password_hash: str = Field(min_length=1)
    role: Role = "reader"

    @field_validator("password_hash")
    @classmethod
    def _format(cls, value: str) -> str:
        if not value.startswith("scrypt$") or value.count("$") != 5:
            raise ValueError("password_hash must come from line.mes.config.hash_password (scrypt$...)")
        try:
            _, _, _, salt, digest = passwords.parse_hash(value)
        except ValueError as exc:
            raise ValueError(f"{exc}; make one with python -m line.mes.config hash-password") from None
        if len(salt) < 8 or len(digest) < 16:  # a placeholder such as scrypt$16384$8$1$REPLACE$REPLACE
            raise ValueError("password_hash is a placeholder, not a hash; make one with python -m line.mes.config hash-password")
        return value


class DeadlineAlarmConfig(ConfigModel):
    """Alarm when more than ``threshold`` deadline misses happen within ``window_s``."""

    threshold: int = Field(default=5, ge=0)
    window_s: float = Field(default=60.0, gt=0)


class OpcUaServerConfig(ConfigModel):
    endpoint: str = "opc.tcp://127.0.0.1:4840/linecheck/"
    station_id: str = Field(default="station-1", min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    application_uri: str = "urn:linecheck:server"
    server_name: str = "linecheck"
    profile: Literal["production", "demo"] = "production"
    security_policies: tuple[SecurityPolicyName, ...] = (PRODUCTION_POLICY,)
    allow_anonymous: bool = False
    users: dict[str, OpcUaUser] = Field(default_factory=dict)
    state_dir: Path = Path("var/opcua")  # server certificate + key, created on first start
    trust_dir: Path | None = None  # trusted client certificates; default state_dir/pki/trusted
    queue_size: int = Field(default=1024, ge=1, le=1_000_000)  # station -> server process
    select_recipe_timeout_s: float = Field(default=30.0, gt=0)
    get_results_max: int = Field(default=1000, ge=1, le=100_000)  # cap on maxResults per call
    history_max_values: int = Field(default=1000, ge=1, le=100_000)  # per HistoryRead response
    deadline_alarm: DeadlineAlarmConfig = DeadlineAlarmConfig()
    certificate_days: int = Field(default=3650, ge=1)
    nice: int = Field(default=10, ge=0, le=19)  # CPU priority of the server process below the station's
    # failed user-name logins: per client address and user name (line.login_guard)
    login_throttle: ThrottlePolicy = ThrottlePolicy()
    # how long the station waits for the server process to listen: its start (about 4 s of CPU)
    # runs before the first part, and on a busy machine it gets only a share of the cores
    start_timeout_s: float = Field(default=60.0, gt=0)
    # a connection that has not activated a session by then is closed (half-open connections
    # hold no slot for long); 50 secure handshakes at the server's low priority on a busy machine
    # take longer than asyncua's 30 s, so a site with many MES clients may raise it
    activation_timeout_s: float = Field(default=30.0, gt=0)

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        url = urlparse(value)
        if url.scheme != "opc.tcp" or not url.hostname or url.port is None:
            raise ValueError("endpoint must look like opc.tcp://host:port/path")
        return value

    @model_validator(mode="after")
    def _security(self) -> OpcUaServerConfig:
        if not self.security_policies:
            raise ValueError("security_policies must not be empty")
        if self.profile == "production":
            if set(self.security_policies) != {PRODUCTION_POLICY}:
                raise ValueError(f"profile production allows only {PRODUCTION_POLICY}")
            if self.allow_anonymous:
                raise ValueError("profile production does not allow anonymous access")
            documented = sorted(name for name, user in self.users.items()
                                if any(verify_password(p, user.password_hash) for p in DOCUMENTED_PASSWORDS))  # fmt: skip
            if documented:
                raise ValueError(f"profile production: user(s) {documented} have a password published in the "
                                 "example configs; set new ones (python -m line.mes.config hash-password)")  # fmt: skip
        if self.allow_anonymous and self.host not in _LOOPBACK:
            raise ValueError("allow_anonymous is only allowed on a loopback endpoint (demo)")
        if not self.users and not self.allow_anonymous:
            raise ValueError("no users and no anonymous access: nobody could connect")
        return self

    @property
    def host(self) -> str:
        return urlparse(self.endpoint).hostname or ""

    @property
    def port(self) -> int:
        return urlparse(self.endpoint).port or 0

    @property
    def trusted_dir(self) -> Path:
        return self.trust_dir if self.trust_dir is not None else self.state_dir / "pki" / "trusted"

    @property
    def rejected_dir(self) -> Path:
        """Certificates of refused clients land here, so an admin can move one to trusted."""
        return self.state_dir / "pki" / "rejected"

    @property
    def clear_lockouts_file(self) -> Path:
        """An admin writes this file (empty: clear every key; else one key a line, ``user:NAME``
        or ``addr:ADDRESS``) to lift OPC UA login lockouts; the server reads and removes it at
        the next login attempt."""
        return self.state_dir / "clear-login-lockouts"


def _main(argv: list[str]) -> int:
    if argv[:1] != ["hash-password"]:
        print("usage: python -m line.mes.config hash-password [PASSWORD]", file=sys.stderr)
        return 2
    return passwords.main(argv[1:])


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
