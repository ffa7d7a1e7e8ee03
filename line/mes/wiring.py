"""Wires the station's result log into the OPC UA server for MES (``line.mes``).

The server reads the log through the ``ResultHistory`` protocol, which
``line.results.reader.ResultLogReader`` serves as it is; this module builds the server process.
The reader is opened inside the server process (the factory below is picklable for the spawn
context), so SQLite reads for HistoryRead / GetResults never run in the station process.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from line.mes.config import OpcUaServerConfig
from line.mes.process import ControlCallback, HistoryFactory, OpcUaPublisherSink, SelectRecipeCallback
from line.results.history import ResultHistory
from line.results.reader import ResultLogReader


def open_result_history(path: Path) -> ResultHistory:
    """Runs in the server process: the log's own reader serves the ``ResultHistory`` protocol."""
    return ResultLogReader(path)


def start_mes_server(
    config: OpcUaServerConfig | Mapping[str, Any],
    result_log_path: Path | str,
    recipes: Sequence[str],
    select_recipe_cb: SelectRecipeCallback,
    *,
    history_factory: HistoryFactory | None = None,
    control_cb: ControlCallback | None = None,
) -> OpcUaPublisherSink:
    """Start the MES server process and return its handle, which is the station's
    ``ResultSink`` (``publish``, ``set_status``, ``update_state``, ``set_recipes``, ``close``).

    ``config`` may be the raw ``opcua_server`` mapping of the station config.
    ``select_recipe_cb(recipe_id, source, user) -> (ok, message)`` is called on a station
    thread for each MES ``SelectRecipe``; ``control_cb(action, source, user) -> (ok, message)``
    for each OPC 40100 Halt/Stop/Abort/Reset/StartContinuous (None: the server answers them
    ERR_NOT_SUPPORTED); ``history_factory`` replaces the result-log reader (tests)."""
    cfg = config if isinstance(config, OpcUaServerConfig) else OpcUaServerConfig.model_validate(dict(config))
    factory = history_factory or functools.partial(open_result_history, Path(result_log_path))
    sink = OpcUaPublisherSink(cfg, factory, recipes, select_recipe_cb, control=control_cb)
    sink.start()
    return sink
