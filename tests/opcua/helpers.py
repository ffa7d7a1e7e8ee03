"""Shared pieces of the OPC UA tests: configs in tmp dirs, client certificates, clients."""

from __future__ import annotations

import asyncio
import socket
import threading
from pathlib import Path
from typing import Any

from asyncua import Client, ua
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from cryptography.x509.oid import ExtendedKeyUsageOID

from line.mes.config import OpcUaServerConfig, hash_password

PASSWORDS = {"mes": "mes-secret", "op": "op-secret"}
ROLES = {"mes": "reader", "op": "operator"}
# hashing is the slow part of a config (scrypt): do it once per test session
_HASHES = {name: hash_password(pw) for name, pw in PASSWORDS.items()}
CLIENT_URI = "urn:linecheck:test-client"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_config(tmp: Path, **overrides: Any) -> OpcUaServerConfig:
    data: dict[str, Any] = {
        "endpoint": f"opc.tcp://127.0.0.1:{free_port()}/linecheck/",
        "station_id": "st1",
        "users": {n: {"password_hash": _HASHES[n], "role": ROLES[n]} for n in PASSWORDS},
        "state_dir": tmp / "state",
        "history_max_values": 1000,
        "get_results_max": 1000,
        "deadline_alarm": {"threshold": 2, "window_s": 60},
        # these tests ask what the server answers, and must get answers while other work keeps
        # the cores busy (at nice 10 under SCHED_BATCH it then gets a few % of a core and
        # asyncua's requests time out); the shipped yield is tested in test_mes_priority.py
        "nice": 0,
    }
    data.update(overrides)
    return OpcUaServerConfig.model_validate(data)


def make_client_cert(directory: Path, name: str = "client") -> tuple[Path, Path]:
    import asyncio

    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{name}_cert.der", directory / f"{name}_key.pem"
    asyncio.run(
        setup_self_signed_certificate(
            key,
            cert,
            CLIENT_URI,
            socket.gethostname(),
            [ExtendedKeyUsageOID.CLIENT_AUTH],
            {"commonName": name},
        )
    )
    return cert, key


def trust(config: OpcUaServerConfig, cert: Path) -> None:
    config.trusted_dir.mkdir(parents=True, exist_ok=True)
    (config.trusted_dir / cert.name).write_bytes(cert.read_bytes())


async def secure_client(
    config: OpcUaServerConfig, cert: Path, key: Path, user: str | None, password: str | None = None
) -> Client:
    client = Client(config.endpoint, timeout=10)
    client.application_uri = CLIENT_URI
    await client.set_security(
        SecurityPolicyBasic256Sha256, str(cert), str(key), mode=ua.MessageSecurityMode.SignAndEncrypt
    )
    if user is not None:
        client.set_user(user)
        client.set_password(password if password is not None else PASSWORDS[user])
    return client


class RecipeCalls:
    """The station's select_recipe callback, recording calls; refuses ids starting with 'bad'."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()

    def __call__(self, recipe_id: str, source: str, user: str) -> tuple[bool, str]:
        with self._lock:
            self.calls.append((recipe_id, source, user))
        if recipe_id.startswith("bad"):
            return False, f"recipe {recipe_id} refused"
        return True, f"switched to {recipe_id}"


STATION_RECIPES = ["cap-a", "cap-b", "bad-recipe"]  # the package fixture's station (conftest.py)

OTHER_ADDRESS = "127.0.0.2"  # another host on the loopback network


class FromOtherAddress(asyncio.SelectorEventLoop):
    """An event loop whose connections leave from ``OTHER_ADDRESS``: a client from another host
    (asyncua's client has no option for its source address)."""

    async def create_connection(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        kwargs.setdefault("local_addr", (OTHER_ADDRESS, 0))
        return await super().create_connection(*args, **kwargs)


# no waiting between counted failures (the delays are LoginThrottle's, tested on an injected
# clock in tests/hmi/test_login_guard.py): the fourth failure locks the key out
FAST_LOCKOUT = {"free_failures": 2, "base_delay_s": 0.001, "max_delay_s": 0.001, "lockout_after": 4, "lockout_s": 3600}
