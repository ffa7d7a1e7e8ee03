"""systemd readiness and watchdog notifications (Type=notify, WatchdogSec) without a
dependency: one datagram to $NOTIFY_SOCKET. The CLI reads the variable once at start."""

from __future__ import annotations

import contextlib
import os
import socket


class SystemdNotifier:
    def __init__(self, address: str | None) -> None:
        self._address = address
        self._sock: socket.socket | None = None
        if address:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            if address.startswith("@"):
                self._address = "\0" + address[1:]

    @classmethod
    def from_environment(cls) -> SystemdNotifier:
        return cls(os.environ.get("NOTIFY_SOCKET"))

    def notify(self, state: str) -> None:
        if self._sock is not None and self._address:
            with contextlib.suppress(OSError):
                self._sock.sendto(state.encode(), self._address)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
