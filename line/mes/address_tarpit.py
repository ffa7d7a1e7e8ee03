"""The MES server's listener, with a tarpit for client addresses the login guard has blocked.

Why: a refused OPC UA login is refused before any password check, but not before the OPC UA
work in front of it (Hello, OpenSecureChannel, CreateSession, ActivateSession: some
milliseconds of Python each). Answered at once, four clients guessing passwords sent about 50
guesses a second and the server's share of the two cores, nice as it is, turned 13 % of a
50 parts/s demo run's parts into fail-safes (1 % without them). The HMI holds such attempts
(``line.hmi.app.ThrottledAddressTarpit``); here a connection from an address that may not try
now is held unread, then closed, before any OPC UA message is parsed: each guesser gets one
attempt per ``hold_s`` at the cost of one idle timer. At most ``max_held`` connections are held;
beyond that they are closed at once.

Lockouts and delays are per address and per user name (``line.login_guard``); only the address
is known when a connection arrives, so a blocked user name from a fresh address still costs one
handshake before its refusal.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import Any

from asyncua import Server
from asyncua.crypto import uacrypto
from asyncua.server.binary_server_asyncio import BinaryServer, OPCUAProtocol

_log = logging.getLogger(__name__)

BlockedFor = Callable[[str], float]  # client address -> seconds it may not try (0: go ahead)


class _HeldConnections:
    """How many connections are held now, shared by every connection of one listener."""

    def __init__(self, max_held: int) -> None:
        self.max_held = max_held
        self.held = 0


class _TarpitProtocol(OPCUAProtocol):
    """asyncua's per-connection protocol; a blocked address is held and closed before it starts."""

    def __init__(self, blocked_for: BlockedFor, hold_s: float, held: _HeldConnections, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._blocked_for = blocked_for
        self._hold_s = hold_s
        self._held = held

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else str(peer)
        wait = self._blocked_for(address)
        if wait <= 0:
            super().connection_made(transport)
            return
        self.peer_name = peer
        if self._held.held >= self._held.max_held or self._hold_s <= 0:
            transport.close()
            return
        self._held.held += 1
        assert isinstance(transport, asyncio.ReadTransport)
        transport.pause_reading()  # nothing the client sends is read, let alone parsed

        def release() -> None:
            self._held.held -= 1
            transport.close()

        asyncio.get_running_loop().call_later(min(wait, self._hold_s), release)


class _TarpitBinaryServer(BinaryServer):
    def __init__(self, *args: Any, blocked_for: BlockedFor, hold_s: float, max_held: int) -> None:
        super().__init__(*args)
        self._blocked_for = blocked_for
        self._hold_s = hold_s
        self._held = _HeldConnections(max_held)

    def _make_protocol(self) -> OPCUAProtocol:
        return _TarpitProtocol(
            self._blocked_for, self._hold_s, self._held, iserver=self.iserver, policies=self._policies,
            clients=self.clients, closing_tasks=self.closing_tasks, limits=self.limits,
        )  # fmt: skip


class TarpitServer(Server):
    """asyncua's ``Server`` whose listener holds and closes connections from blocked addresses.

    ``start`` is asyncua's own (2.x), with the listener above in place of ``BinaryServer``."""

    def __init__(self, *args: Any, blocked_for: BlockedFor, hold_s: float, max_held: int = 64, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._blocked_for = blocked_for
        self._hold_s = hold_s
        self._max_held = max_held

    async def start(self) -> None:
        if self.iserver.certificate is not None:
            uacrypto.check_certificate(self.iserver.certificate, self._application_uri, socket.gethostname())
        await self._setup_server_nodes()
        await self.iserver.start()
        try:
            host, port = self._get_bind_socket_info()
            self.bserver = _TarpitBinaryServer(
                self.iserver, host, port, self.limits,
                blocked_for=self._blocked_for, hold_s=self._hold_s, max_held=self._max_held,
            )  # fmt: skip
            self.bserver.set_policies(self._policies)
            await self.bserver.start()
        except Exception:
            _log.exception("%s error starting server", self)
            await self.iserver.stop()
            raise
