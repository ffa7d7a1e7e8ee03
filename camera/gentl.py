"""GenTL helpers for the harvesters backend: producer discovery, a GenApi node-map adapter
and the process-wide harvester shared by every camera on the same producers."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from camera.nodemap import NodeInfo, NodeKind


def producers_from_env(env: dict[str, str] | os._Environ[str]) -> list[Path]:
    """Every ``.cti`` in the directories of ``GENICAM_GENTL64_PATH`` (the GenTL convention)."""
    found: list[Path] = []
    for entry in env.get("GENICAM_GENTL64_PATH", "").split(os.pathsep):
        if not entry:
            continue
        path = Path(entry)
        if path.is_file() and path.suffix == ".cti":
            found.append(path)
        elif path.is_dir():
            found.extend(sorted(path.glob("*.cti")))
    return found


class HarvestersNodes:
    """``NodeAccess`` over a GenApi node map (``genicam.genapi.NodeMap``)."""

    def __init__(self, node_map: Any) -> None:
        from genicam import genapi

        self._nm = node_map
        self._genapi = genapi
        self._kinds: list[tuple[type, NodeKind]] = [
            (genapi.IInteger, "int"),
            (genapi.IFloat, "float"),
            (genapi.IEnumeration, "enum"),
            (genapi.IBoolean, "bool"),
            (genapi.ICommand, "command"),
            (genapi.IString, "string"),
        ]

    def _node(self, name: str) -> Any:
        try:
            return self._nm.get_node(name)
        except Exception:
            return None

    def info(self, name: str) -> NodeInfo | None:
        node = self._node(name)
        ga = self._genapi
        if node is None or not ga.is_implemented(node) or not ga.is_available(node):
            return None
        kind: NodeKind = next((k for t, k in self._kinds if isinstance(node, t)), "other")
        writable = bool(ga.is_writable(node))
        if kind in ("int", "float"):
            inc = None
            try:
                inc = float(node.inc) if kind == "int" or node.has_inc() else None
            except Exception:
                inc = None
            return NodeInfo(name, kind, float(node.min), float(node.max), inc, writable=writable)
        if kind == "enum":
            return NodeInfo(name, kind, entries=tuple(node.symbolics), writable=writable)
        return NodeInfo(name, kind, writable=writable)

    def get(self, name: str) -> Any:
        node = self._node(name)
        if node is None or isinstance(node, self._genapi.ICommand):
            return None
        return node.value

    def set(self, name: str, value: Any) -> None:
        self._nm.get_node(name).value = value

    def execute(self, name: str) -> None:
        self._nm.get_node(name).execute()


def safe(fn: Any) -> Any:
    try:
        return fn()
    except Exception:
        return None


class SharedHarvester:
    """One ``Harvester`` per set of producers, shared by every source in the process.

    Why: GenTL's ``GCInitLib``/``GCCloseLib`` are process-wide, and ``Harvester.update()``
    closes the producers and every acquirer opened from that harvester. Several cameras on
    one producer must therefore share one harvester, and ``update()`` may only run while none
    of them holds an open device.
    """

    _lock = threading.Lock()
    _instances: dict[tuple[str, ...], SharedHarvester] = {}

    def __init__(self, key: tuple[str, ...]) -> None:
        from harvesters.core import Harvester

        self.key = key
        self.harvester = Harvester()
        for cti in key:
            self.harvester.add_file(cti, check_existence=True)
        self.users = 0
        self.open_devices = 0
        self.updated = False
        self.lock = threading.RLock()

    @classmethod
    def acquire(cls, producers: list[Path]) -> SharedHarvester:
        key = tuple(str(Path(p).resolve()) for p in producers)
        with cls._lock:
            shared = cls._instances.get(key)
            if shared is None:
                shared = cls._instances[key] = SharedHarvester(key)
            shared.users += 1
            return shared

    def release(self) -> None:
        with SharedHarvester._lock:
            self.users -= 1
            if self.users == 0:
                SharedHarvester._instances.pop(self.key, None)
                self.harvester.reset()

    def device_infos(self, refresh: bool) -> list[Any]:
        """Current device list; re-enumerates only when no device of this harvester is open."""
        with self.lock:
            if (refresh or not self.updated) and self.open_devices == 0:
                self.harvester.update()
                self.updated = True
            return list(self.harvester.device_info_list)


def device_info(info: Any, key: str) -> Any:
    return info.property_dict.get(key)


def describe_device(info: Any) -> str:
    return (
        f"{device_info(info, 'vendor')} {device_info(info, 'model')} serial={device_info(info, 'serial_number')!r} "
        f"user_name={device_info(info, 'user_defined_name')!r} id={device_info(info, 'id_')!r}"
    )
