"""linecheck's station: recipes, decision, the acquire → infer → decide → signal loop, the
result log, the HMI, the MES server and the CLI. ``line`` uses ``camera``, ``inference`` and
``plc``; never the reverse.

The public API for a program that embeds a station (docs/embedding.md) is what this module
exports; everything else is internal and may change::

    config = line.load_config(Path("station.yaml"))
    with line.build_station(config) as station:   # started; stopped (bounded) on leaving
        station.subscribe(lambda outcome: ...)    # each decided part, on the deciding thread
        snapshot = station.view()                 # a frozen StationSnapshot

The names are imported on first use, so ``import line`` stays cheap for the CLI.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from line.app.assembly import build_station
    from line.app.assembly import load_station_config as load_config
    from line.app.config import StationConfig
    from line.errors import ConfigError, Problem
    from line.loop.station import Observer, Outcome, Station
    from line.loop.station_report import CameraSnapshot, StationSnapshot
    from line.loop.station_state import IllegalTransition, StationState

__all__ = [
    "CameraSnapshot",
    "ConfigError",
    "IllegalTransition",
    "Observer",
    "Outcome",
    "Problem",
    "Station",
    "StationConfig",
    "StationSnapshot",
    "StationState",
    "build_station",
    "load_config",
]

_WHERE = {
    "load_config": ("line.app.assembly", "load_station_config"),
    "build_station": ("line.app.assembly", "build_station"),
    "StationConfig": ("line.app.config", "StationConfig"),
    "ConfigError": ("line.errors", "ConfigError"),
    "Problem": ("line.errors", "Problem"),
    "Station": ("line.loop.station", "Station"),
    "Outcome": ("line.loop.station", "Outcome"),
    "Observer": ("line.loop.station", "Observer"),
    "StationSnapshot": ("line.loop.station_report", "StationSnapshot"),
    "CameraSnapshot": ("line.loop.station_report", "CameraSnapshot"),
    "StationState": ("line.loop.station_state", "StationState"),
    "IllegalTransition": ("line.loop.station_state", "IllegalTransition"),
}


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'line' has no attribute {name!r}")
    value = getattr(importlib.import_module(where[0]), where[1])
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
