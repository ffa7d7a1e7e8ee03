"""Wires the station's result log into the OPC UA server for MES (``line.mes``).

``plc`` may not import ``line``, so the server reads the log through its own
``ResultHistory`` protocol; this module adapts ``line.results.log.ResultLogReader`` to it and
builds the server process. The reader is opened inside the server process (the factory below
is picklable for the spawn context), so SQLite reads for HistoryRead / GetResults never run in
the station process.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from line.mes.config import OpcUaServerConfig
from line.mes.mv_results import ResultFilter
from line.mes.process import HistoryFactory, OpcUaPublisherSink, SelectRecipeCallback
from line.results.history import ResultHistory, ResultRecord

_RECORD_FIELDS = tuple(f.name for f in dataclasses.fields(ResultRecord))


class ResultLogHistory:
    """``ResultHistory`` over the station's result log.

    Counting goes through ``line.results.log.ResultLogReader``. Pages are read here, ordered by
    (t_verdict_ns, rowid): the reader's ``query`` orders by rowid, and journal recovery inserts
    old verdicts with new rowids, while HistoryRead continuation points are timestamps and
    need time order to neither skip nor repeat a row."""

    def __init__(self, path: Path) -> None:
        from line.results.log import ResultLogReader, connect  # the lead's module

        self._reader = ResultLogReader(path)
        self._conn = connect(path, readonly=True)
        self._select = (
            f"SELECT {', '.join(_RECORD_FIELDS)} FROM results WHERE t_verdict_ns >= ? AND t_verdict_ns <= ?"
            " ORDER BY t_verdict_ns, rowid LIMIT ? OFFSET ?"
        )

    def query(self, from_ns: int, to_ns: int, start_index: int, max_results: int) -> list[ResultRecord]:
        cur = self._conn.execute(self._select, (from_ns, to_ns, max_results, start_index))
        return [ResultRecord(*row) for row in cur.fetchall()]

    def count(self, from_ns: int, to_ns: int) -> int:
        return int(self._reader.count(from_ns, to_ns))

    def by_id(self, result_id: str) -> ResultRecord | None:
        """OPC 40100 GetResultById (``result_id`` is unique and indexed in the log)."""
        row = self._conn.execute(
            f"SELECT {', '.join(_RECORD_FIELDS)} FROM results WHERE result_id = ?", (result_id,)
        ).fetchone()
        return ResultRecord(*row) if row is not None else None

    def filtered(self, flt: ResultFilter, start_index: int, max_results: int) -> tuple[list[ResultRecord], int]:
        """OPC 40100 GetResultListFiltered: one page in time order and the number of matches."""
        where, params = ["1 = 1"], []  # type: list[str], list[Any]
        if flt.part_id is not None:
            where.append("part_id = ?")
            params.append(flt.part_id)
        if flt.recipe_id is not None:
            where.append("recipe_id = ?")
            params.append(flt.recipe_id)
        if flt.result_codes is not None:
            where.append(f"result_code IN ({', '.join('?' * len(flt.result_codes))})")
            params.extend(flt.result_codes)
        cond = " AND ".join(where)
        total = int(self._conn.execute(f"SELECT COUNT(*) FROM results WHERE {cond}", params).fetchone()[0])  # noqa: S608 - fixed column names
        if start_index >= total:
            return [], total
        cur = self._conn.execute(
            f"SELECT {', '.join(_RECORD_FIELDS)} FROM results WHERE {cond}"  # noqa: S608
            " ORDER BY t_verdict_ns, rowid LIMIT ? OFFSET ?",
            [*params, max_results, start_index],
        )
        return [ResultRecord(*r) for r in cur.fetchall()], total

    def close(self) -> None:
        self._reader.close()
        self._conn.close()


def open_result_history(path: Path) -> ResultHistory:
    """Runs in the server process."""
    return ResultLogHistory(path)


def start_mes_server(
    config: OpcUaServerConfig | Mapping[str, Any],
    result_log_path: Path | str,
    recipes: Sequence[str],
    select_recipe_cb: SelectRecipeCallback,
    *,
    history_factory: HistoryFactory | None = None,
) -> OpcUaPublisherSink:
    """Start the MES server process and return its handle, which is the station's
    ``ResultSink`` (``publish``, ``set_status``, ``update_state``, ``set_recipes``, ``close``).

    ``config`` may be the raw ``opcua_server`` mapping of the station config.
    ``select_recipe_cb(recipe_id, source, user) -> (ok, message)`` is called on a station
    thread for each MES ``SelectRecipe``; ``history_factory`` replaces the result-log reader
    (tests)."""
    cfg = config if isinstance(config, OpcUaServerConfig) else OpcUaServerConfig.model_validate(dict(config))
    factory = history_factory or functools.partial(open_result_history, Path(result_log_path))
    sink = OpcUaPublisherSink(cfg, factory, recipes, select_recipe_cb)
    sink.start()
    return sink
