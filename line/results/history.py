"""The durable result log as seen by the MES server: a small read contract (``ResultHistory``),
the JSON encoding of a result, and an asyncua history backend that answers HistoryRead on
``LastResult`` from the log.

Why a custom backend: asyncua's default history keeps values in memory for a time window; the
MES must be able to read back any verdict the station ever logged (the SQLite result log owned
by ``line.results.log``). Its records are the log's own ``ResultRecord``; the protocol below
lets tests (and the server's in-process use) serve them from a list.

JSON encoding (UTF-8 text, one object per result):

- summary (``LastResult`` value and its history, ``result_json(..., detail=False)``)::

    {"result_id", "camera_id", "part_id", "recipe_id", "recipe_code", "result_code",
     "verdict": "pass|reject|fail_safe_reject|hold", "reason", "reject_mask", "defect_count",
     "defect_classes": {class: count}, "processing_us", "t_verdict_ns",
     "t_verdict": ISO-8601 UTC with microseconds, "image_ref"}

- detail (``GetResults``): the summary plus ``"defects": [{"class", "confidence", "box"}]``
  as logged (box = [x1, y1, x2, y2] in frame pixels).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Protocol

from asyncua import ua
from asyncua.server.history import HistoryStorageInterface

from line.results.log import ResultRecord, verdict_message
from plc.vocabulary import ResultCode, VerdictMessage

if TYPE_CHECKING:
    from asyncua.common.events import Event

_log = logging.getLogger(__name__)

VERDICTS = {int(code): code.name.lower() for code in ResultCode}  # 0 pass, 1 reject, 2 fail_safe_reject, 3 hold
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MAX_NS = 2**63 - 1


class ResultHistory(Protocol):
    """Read side of the result log. Rows are ordered by (t_verdict_ns, rowid); ``from_ns`` and
    ``to_ns`` are both inclusive wall-clock nanoseconds. Called from worker threads."""

    def query(self, from_ns: int, to_ns: int, start_index: int, max_results: int) -> list[ResultRecord]: ...

    def count(self, from_ns: int, to_ns: int) -> int: ...


def ns_to_datetime(ns: int) -> datetime:
    return _EPOCH + timedelta(microseconds=ns // 1000)


def datetime_to_ns(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return ((value - _EPOCH) // timedelta(microseconds=1)) * 1000


def _iso(ns: int) -> str:
    return ns_to_datetime(ns).isoformat(timespec="microseconds").replace("+00:00", "Z")


def summary_dict(v: VerdictMessage, t_verdict_ns: int | None = None) -> dict[str, Any]:
    """The summary encoding (module docstring) of a verdict: the one mapping, for the live
    ``LastResult`` and for every logged row (:func:`record_dict`). ``t_verdict_ns`` overrides
    the message's timestamp (a message without one is stamped on arrival)."""
    ns = v.timestamp_ns if t_verdict_ns is None else t_verdict_ns
    return {
        "result_id": v.result_id,
        "camera_id": v.camera_id,
        "part_id": int(v.part_id),
        "recipe_id": v.recipe_id,
        "recipe_code": int(v.recipe_code),
        "result_code": int(v.result_code),
        "verdict": VERDICTS.get(int(v.result_code), str(int(v.result_code))),
        "reason": str(v.reason),
        "reject_mask": int(v.reject_mask),
        "defect_count": int(v.defect_count),
        "defect_classes": dict(sorted((name, int(count)) for name, count in v.defects)),
        "processing_us": int(v.processing_us),
        "t_verdict_ns": int(ns),
        "t_verdict": _iso(ns),
        "image_ref": v.image_ref,
    }


def parse_defects(defects_json: str) -> list[dict[str, Any]]:
    try:
        value = json.loads(defects_json) if defects_json else []
    except ValueError:
        return []
    return value if isinstance(value, list) else []


def record_dict(record: ResultRecord, *, detail: bool) -> dict[str, Any]:
    defects = parse_defects(record.defects_json)
    classes = Counter(str(d.get("class", "")) for d in defects if isinstance(d, dict))
    out = summary_dict(verdict_message(record, tuple(classes.items())))
    if detail:
        out["defects"] = defects
    return out


def result_json(record: ResultRecord, *, detail: bool) -> str:
    return json.dumps(record_dict(record, detail=detail), separators=(",", ":"))


def record_datavalue(record: ResultRecord) -> ua.DataValue:
    ts = ns_to_datetime(record.t_verdict_ns)
    return ua.DataValue(
        ua.Variant(result_json(record, detail=False), ua.VariantType.String),
        SourceTimestamp=ts,  # type: ignore[arg-type]
        ServerTimestamp=ts,  # type: ignore[arg-type]
    )


class ResultLogHistoryStorage(HistoryStorageInterface):
    """asyncua history backend: HistoryRead(raw) on the LastResult node reads the result log.

    Paging: asyncua encodes the continuation point as a timestamp (the StartTime of the next
    read, inclusive), and OPC UA DateTime carries microseconds here. A page therefore always
    ends on a microsecond boundary: rows that share the first cut-off microsecond go to the
    next page, so no row is returned twice or skipped. Other nodes have no history."""

    def __init__(self, history: ResultHistory, max_history_data_response_size: int = 1000) -> None:
        super().__init__(max_history_data_response_size)
        self._history = history
        self._nodes: set[ua.NodeId] = set()

    def serve(self, node_id: ua.NodeId) -> None:
        self._nodes.add(node_id)

    async def init(self) -> None:
        return None

    async def new_historized_node(self, node_id: ua.NodeId, period: timedelta | None, count: int = 0) -> None:
        self._nodes.add(node_id)

    async def save_node_value(self, node_id: ua.NodeId, datavalue: ua.DataValue) -> None:
        return None  # the station's result log is the store; nothing to keep here

    async def read_node_history(
        self, node_id: ua.NodeId, start: datetime | None, end: datetime | None, nb_values: int
    ) -> tuple[list[ua.DataValue], datetime | None]:
        if node_id not in self._nodes:
            return [], None
        epoch = ua.get_win_epoch()
        has_start = start is not None and start > epoch
        has_end = end is not None and end > epoch
        start_ns = datetime_to_ns(start) if has_start and start is not None else 0
        end_ns = datetime_to_ns(end) + 999 if has_end and end is not None else MAX_NS
        if has_start and has_end and start_ns > end_ns:  # start after end: read backwards
            lo, hi, backward = end_ns - end_ns % 1000, start_ns + 999, True
        elif not has_start:
            lo, hi, backward = 0, end_ns, True  # newest first, no continuation (see docs)
        else:
            lo, hi, backward = start_ns, end_ns, False
        limit = self.max_history_data_response_size
        if nb_values:
            limit = min(limit, nb_values)
        rows = await asyncio.to_thread(self._fetch, lo, hi, limit + 1, backward)
        if len(rows) <= limit:
            return [record_datavalue(r) for r in rows], None
        cut_us = rows[limit].t_verdict_ns // 1000
        page = [r for r in rows[:limit] if r.t_verdict_ns // 1000 != cut_us]
        if not page:  # more than a page of rows in one microsecond: skip the rest of it
            _log.warning("history page of %d rows within one microsecond; truncating", limit)
            page = rows[:limit]
            cut_us += -1 if backward else 1
        if not has_start:
            return [record_datavalue(r) for r in page], None
        return [record_datavalue(r) for r in page], ns_to_datetime(cut_us * 1000)

    def _fetch(self, lo: int, hi: int, n: int, backward: bool) -> list[ResultRecord]:
        if not backward:
            return self._history.query(lo, hi, 0, n)
        total = self._history.count(lo, hi)
        rows = self._history.query(lo, hi, max(0, total - n), n)
        return list(reversed(rows))

    async def new_historized_event(
        self, source_id: ua.NodeId, evtypes: list[Any], period: timedelta | None, count: int = 0
    ) -> None:
        return None

    async def save_event(self, event: Event) -> None:
        return None

    async def read_event_history(
        self,
        source_id: ua.NodeId,
        start: datetime | None,
        end: datetime | None,
        nb_values: int,
        evfilter: ua.EventFilter,
    ) -> tuple[list[Event], datetime | None]:
        return [], None

    async def stop(self) -> None:
        return None
