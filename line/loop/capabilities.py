"""Optional capabilities the station uses when a peer has them, as Protocols checked with
``isinstance`` (not ``getattr`` by name): the contract is written down, type-checked, and a
renamed method fails the check visibly instead of silently switching a feature off."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class StateMirror(Protocol):
    """A sink that mirrors the station's counters and link states (the MES server)."""

    def update_state(self, **fields: Any) -> None: ...


@runtime_checkable
class UplinkFigures(Protocol):
    """A sink that carries the station's data to the plant (the MQTT uplink): its link state,
    outbox depth and oldest undelivered age, mirrored to the MES server."""

    def uplink_figures(self) -> dict[str, object]: ...


@runtime_checkable
class HostBufferRegistrar(Protocol):
    """An engine that page-locks the cameras' buffers up front (a GPU engine)."""

    def register_host_buffers(self, arrays: Iterable[np.ndarray]) -> None: ...
