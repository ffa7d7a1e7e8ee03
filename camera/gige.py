"""GigE Vision helpers for the Aravis backend: the GObject loader, a node-map adapter and an
independent GVCP liveness probe.

Why our own probe: Aravis' GVCP timeouts are 0.5 s x 5 retries and its ``control-lost``
signal fires seconds after a camera dies; a READREG of the bootstrap ``Version`` register
(allowed without control privilege) with a short timeout tells within a fraction of that.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import struct
import time
from typing import Any

from camera.nodemap import NodeInfo, NodeKind

GVCP_PORT = 3956


def load_aravis() -> Any:
    import gi

    gi.require_version("Aravis", "0.8")
    from gi.repository import Aravis

    return Aravis


_req_ids = itertools.count(1)


def gvcp_alive(address: str, port: int = GVCP_PORT, timeout_s: float = 0.15, tries: int = 2) -> bool:
    """GVCP READREG of bootstrap register 0x0000 (Version); any acknowledge means alive."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout_s)
        for _ in range(tries):
            req_id = next(_req_ids) % 0xFFFF + 1
            packet = struct.pack(">BBHHHI", 0x42, 0x01, 0x0080, 4, req_id, 0x0000)
            try:
                sock.sendto(packet, (address, port))
                deadline = time.monotonic() + timeout_s
                while time.monotonic() < deadline:
                    data = sock.recv(576)
                    if len(data) >= 8:
                        _status, answer, _length, ack_id = struct.unpack(">HHHH", data[:8])
                        if answer == 0x0081 and ack_id == req_id:
                            return True
            except (TimeoutError, OSError):
                continue
    return False


class AravisNodes:
    """``NodeAccess`` over an ``Aravis.Device`` (GLib errors become exceptions)."""

    def __init__(self, device: Any) -> None:
        self._dev = device
        self._ar = load_aravis()
        self._kind_cache: dict[str, NodeKind] = {}

    def _kind(self, node: Any) -> NodeKind:
        ar = self._ar
        for cls, kind in (
            (ar.GcEnumeration, "enum"),
            (ar.GcCommand, "command"),
            (ar.GcBoolean, "bool"),
            (ar.GcInteger, "int"),
            (ar.GcFloat, "float"),
            (ar.GcString, "string"),
        ):
            if isinstance(node, cls):
                return kind  # type: ignore[return-value]
        return "other"

    def info(self, name: str) -> NodeInfo | None:
        dev = self._dev
        node = dev.get_feature(name)
        if node is None:
            return None
        try:
            if not dev.is_feature_available(name):
                return None
        except Exception:
            return None
        kind = self._kind(node)
        self._kind_cache[name] = kind
        writable = True
        with contextlib.suppress(Exception):
            writable = dev.get_feature_access_mode(name) in (
                self._ar.GcAccessMode.RW,
                self._ar.GcAccessMode.WO,
            )
        if kind == "int":
            lo, hi = dev.get_integer_feature_bounds(name)
            inc = dev.get_integer_feature_increment(name)
            return NodeInfo(name, kind, float(lo), float(hi), float(inc or 1), writable=writable)
        if kind == "float":
            lo, hi = dev.get_float_feature_bounds(name)
            return NodeInfo(name, kind, float(lo), float(hi), None, writable=writable)
        if kind == "enum":
            entries = tuple(dev.dup_available_enumeration_feature_values_as_strings(name) or ())
            return NodeInfo(name, kind, entries=entries, writable=writable)
        return NodeInfo(name, kind, writable=writable)

    def _cached_kind(self, name: str) -> NodeKind:
        kind = self._kind_cache.get(name)
        if kind is None:
            node = self._dev.get_feature(name)
            if node is None:
                raise KeyError(name)
            kind = self._kind_cache[name] = self._kind(node)
        return kind

    def get(self, name: str) -> Any:
        kind = self._cached_kind(name)
        dev = self._dev
        if kind == "int":
            return dev.get_integer_feature_value(name)
        if kind == "float":
            return dev.get_float_feature_value(name)
        if kind == "bool":
            return dev.get_boolean_feature_value(name)
        if kind in ("enum", "string"):
            return dev.get_string_feature_value(name)
        return None

    def set(self, name: str, value: Any) -> None:
        kind = self._cached_kind(name)
        dev = self._dev
        if kind == "int":
            dev.set_integer_feature_value(name, int(value))
        elif kind == "float":
            dev.set_float_feature_value(name, float(value))
        elif kind == "bool":
            dev.set_boolean_feature_value(name, bool(value))
        else:
            dev.set_string_feature_value(name, str(value))

    def execute(self, name: str) -> None:
        self._dev.execute_command(name)
