"""OPC UA password guessing against the real server process (asyncua clients over Basic256Sha256
SignAndEncrypt): the guessed user and the guessing address get locked out, so even the right
password of that user is refused; another user from another address logs in while the flood
goes on; once the guessing address is blocked, its new connections are held, then closed, before
any OPC UA work (line.mes.address_tarpit: the client sees a reset); an admin's clear file lifts
the lockout. The password checks behind it are counted in-process: a locked-out login costs no
scrypt, an unknown user costs as many as a known one."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from asyncua import Client, ua

import line.mes.security as security
from line.mes.config import OpcUaServerConfig
from line.mes.process import OpcUaPublisherSink
from line.mes.wiring import start_mes_server
from tests.opcua.fake_log import FakeLogWriter
from tests.opcua.helpers import (
    FAST_LOCKOUT,
    FromOtherAddress,
    RecipeCalls,
    make_client_cert,
    make_config,
    secure_client,
    trust,
)

HELD = "ConnectionResetError"  # a connection from a blocked address: held unread, then closed


async def _login(client: Client) -> str:
    try:
        async with client:
            idx = await client.get_namespace_index("urn:linecheck")
            await client.nodes.objects.get_child([f"{idx}:Stations"])
    except (ua.UaStatusCodeError, ConnectionResetError) as exc:
        return type(exc).__name__
    return "connected"


class Server:
    def __init__(self, config: OpcUaServerConfig, cert: Path, key: Path) -> None:
        self.config, self.cert, self.key = config, cert, key

    def login(self, user: str, password: str | None = None, other_address: bool = False) -> str:
        async def main() -> str:
            try:  # the client's set-up connects too (for the server's certificate)
                client = await secure_client(self.config, self.cert, self.key, user, password)
            except ConnectionResetError as exc:
                return type(exc).__name__
            return await _login(client)

        if not other_address:
            return asyncio.run(main())
        loop = FromOtherAddress()
        try:
            return loop.run_until_complete(main())
        finally:
            loop.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    cfg = make_config(tmp_path, login_throttle=FAST_LOCKOUT)
    cert, key = make_client_cert(tmp_path / "client", "client")
    trust(cfg, cert)
    log = FakeLogWriter(tmp_path / "results.db")
    sink: OpcUaPublisherSink = start_mes_server(cfg, tmp_path / "results.db", ["cap-a"], RecipeCalls())
    try:
        yield Server(cfg, cert, key)
    finally:
        sink.close()
        log.close()


def test_password_flood_locks_out_and_another_user_still_logs_in(server: Server) -> None:
    outcomes: list[str] = []
    locked = threading.Event()
    stop = threading.Event()

    def flood() -> None:
        n = 0
        while not stop.is_set() and n < 200:
            n += 1
            outcomes.append(server.login("op", f"guess-{n}"))
            if n >= FAST_LOCKOUT["lockout_after"] + 2:
                locked.set()

    guesser = threading.Thread(target=flood, name="opcua-guesser")
    guesser.start()
    try:
        assert locked.wait(120), outcomes
        # during the flood: another user, from another address, with the right password
        during = server.login("mes", other_address=True)
        # the flooded user's right password, from the flooding address and from another one
        same_address = server.login("op")
        other_address = server.login("op", other_address=True)
    finally:
        stop.set()
        guesser.join(120)
    # the free failures are refused by the server; once the address is blocked (delays, then
    # the lockout), its connections are held and closed unread
    free = FAST_LOCKOUT["free_failures"] + 1
    assert outcomes[:free] == ["BadUserAccessDenied"] * free, outcomes
    assert set(outcomes) == {"BadUserAccessDenied", HELD}, outcomes
    assert during == "connected"
    assert same_address == HELD  # locked out, although the password is right
    assert other_address == "BadUserAccessDenied"  # the user name is locked out too

    # the admin lifts the user's lockout only: the flooding address stays locked
    server.config.clear_lockouts_file.write_text("user:op\n")
    assert server.login("op") == HELD
    assert not server.config.clear_lockouts_file.exists()  # read and removed by the server
    assert server.login("op", other_address=True) == "connected"
    server.config.clear_lockouts_file.write_text("")  # empty: every key
    assert server.login("op") == "connected"


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every password check the MES server's user manager makes (one scrypt each)."""
    checked: list[str] = []
    real = security.verify_password

    def counting(password: str, stored: str) -> bool:
        checked.append(stored)
        return real(password, stored)

    monkeypatch.setattr(security, "verify_password", counting)
    return checked


def _get_user(manager: security.ConfigUserManager, user: str, password: str, address: str) -> Any:
    token = security._peer.set(address)  # what PeerAddressSession does around activate_session
    try:
        return manager.get_user(None, user, password)  # type: ignore[arg-type]
    finally:
        security._peer.reset(token)


def test_locked_out_logins_cost_no_password_check(tmp_path: Path, checks: list[str]) -> None:
    manager = security.ConfigUserManager(make_config(tmp_path, login_throttle=FAST_LOCKOUT))
    try:
        for n in range(30):
            assert _get_user(manager, "op", f"guess-{n}", "10.0.0.9") is None
            threading.Event().wait(0.002)  # past the (tiny) growing delay: each attempt may count
        assert len(checks) == FAST_LOCKOUT["lockout_after"]
        assert _get_user(manager, "op", "op-secret", "10.0.0.10") is None  # the user is locked out
        assert _get_user(manager, "mes", "mes-secret", "10.0.0.9") is None  # and so is the address
        assert len(checks) == FAST_LOCKOUT["lockout_after"]
        assert _get_user(manager, "mes", "mes-secret", "10.0.0.10") is not None
        locked = {entry["key"] for entry in manager.guard.throttle.blocked() if entry["locked_out"]}
        assert locked == {"user:op", "addr:10.0.0.9"}
    finally:
        manager.close()


def test_unknown_and_known_users_cost_the_same_checks(tmp_path: Path, checks: list[str]) -> None:
    manager = security.ConfigUserManager(make_config(tmp_path))  # default policy: 3 free failures
    try:
        for n in range(3):
            assert _get_user(manager, "op", f"guess-{n}", f"10.0.1.{n}") is None
        known = len(checks)
        for n in range(3):
            assert _get_user(manager, f"nobody-{n}", "guess", f"10.0.2.{n}") is None
        assert known == 3 and len(checks) == 2 * known
    finally:
        manager.close()
