"""The HistoryRead backend on its own: paging by timestamp continuation points never skips or
repeats a row, also when many verdicts share one microsecond; backward reads; encoding."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any

import pytest
from asyncua import ua

from line.results.history import (
    ResultLogHistoryStorage,
    datetime_to_ns,
    ns_to_datetime,
    record_dict,
)
from line.results.log import ResultRecord

NODE = ua.NodeId.from_string("ns=2;i=1")
BASE = 1_763_700_000_000_000_000


class ListHistory:
    """In-memory ResultHistory, ordered by (t_verdict_ns, rowid) like the real one."""

    def __init__(self, times: list[int]) -> None:
        self.rows = sorted(
            (_rec(i + 1, t) for i, t in enumerate(times)), key=lambda r: (r.t_verdict_ns, r.rowid)
        )

    def _range(self, lo: int, hi: int) -> list[ResultRecord]:
        return [r for r in self.rows if lo <= r.t_verdict_ns <= hi]

    def query(self, from_ns: int, to_ns: int, start_index: int, max_results: int) -> list[ResultRecord]:
        return self._range(from_ns, to_ns)[start_index : start_index + max_results]

    def count(self, from_ns: int, to_ns: int) -> int:
        return len(self._range(from_ns, to_ns))


def _json(dv: ua.DataValue) -> Any:
    assert dv.Value is not None
    return json.loads(dv.Value.Value)


def _rec(rowid: int, t: int) -> ResultRecord:
    defects = [{"class": "dent", "confidence": 0.9, "box": [1, 2, 3, 4]}] * (rowid % 3)
    return ResultRecord(
        f"r{rowid}", "cam0", rowid, rowid, "cap-a", 3, 1 if defects else 0, "", 0, len(defects),
        json.dumps(defects), 1234, t, "", rowid=rowid,
    )  # fmt: skip


def _read_all(storage: ResultLogHistoryStorage, start: datetime, end: datetime) -> tuple[list[str], int]:
    """Follow continuation points the way asyncua's HistoryManager hands them back."""
    ids: list[str] = []
    pages = 0
    while True:
        values, cont = asyncio.run(storage.read_node_history(NODE, start, end, 0))
        pages += 1
        ids += [_json(v)["result_id"] for v in values]
        if cont is None:
            return ids, pages
        start = cont


@pytest.mark.parametrize(
    "times",
    [
        [BASE + i * 1_000_000 for i in range(95)],  # one per ms
        [BASE + (i // 7) * 1000 + i % 7 for i in range(95)],  # groups of 7 in one microsecond
        [BASE + (i // 3) * 1500 for i in range(95)],  # groups of 3, sub-µs offsets
    ],
)
def test_forward_paging_returns_every_row_once(times: list[int]) -> None:
    history = ListHistory(times)
    storage = ResultLogHistoryStorage(history, max_history_data_response_size=10)
    storage.serve(NODE)
    ids, pages = _read_all(storage, ns_to_datetime(BASE - 10**9), ns_to_datetime(BASE + 10**12))
    assert ids == [r.result_id for r in history.rows]
    assert pages >= 10


def test_sub_range_inclusive_and_limit() -> None:
    history = ListHistory([BASE + i * 10**6 for i in range(50)])
    storage = ResultLogHistoryStorage(history, 1000)
    storage.serve(NODE)
    start, end = ns_to_datetime(BASE + 10 * 10**6), ns_to_datetime(BASE + 19 * 10**6)
    values, cont = asyncio.run(storage.read_node_history(NODE, start, end, 0))
    assert [_json(v)["part_id"] for v in values] == list(range(11, 21))
    assert cont is None
    values, cont = asyncio.run(storage.read_node_history(NODE, start, end, 4))
    assert len(values) == 4 and cont == ns_to_datetime(BASE + 14 * 10**6)
    assert values[0].SourceTimestamp == ns_to_datetime(BASE + 10 * 10**6)


def test_backward_read_newest_first() -> None:
    history = ListHistory([BASE + i * 10**6 for i in range(30)])
    storage = ResultLogHistoryStorage(history, 8)
    storage.serve(NODE)
    ids, _ = _read_all(storage, ns_to_datetime(BASE + 10**9), ns_to_datetime(BASE))  # start > end
    assert ids == [r.result_id for r in reversed(history.rows)]
    # no start time: the newest values before end, without continuation
    values, cont = asyncio.run(storage.read_node_history(NODE, None, ns_to_datetime(BASE + 10**9), 5))
    assert [_json(v)["part_id"] for v in values] == [30, 29, 28, 27, 26]
    assert cont is None


def test_other_nodes_have_no_history() -> None:
    storage = ResultLogHistoryStorage(ListHistory([BASE]), 8)
    values, cont = asyncio.run(storage.read_node_history(ua.NodeId.from_string("ns=2;i=9"), None, None, 0))
    assert values == [] and cont is None


def test_encoding() -> None:
    rec = _rec(2, BASE + 123_456_789)
    summary = record_dict(rec, detail=False)
    assert summary["defect_classes"] == {"dent": 2}
    assert summary["verdict"] == "reject"
    assert summary["t_verdict"] == ns_to_datetime(BASE + 123_456_000).isoformat().replace("+00:00", "Z")
    assert "defects" not in summary
    detail = record_dict(rec, detail=True)
    assert detail["defects"] == json.loads(rec.defects_json)
    assert datetime_to_ns(ns_to_datetime(BASE + 999)) == BASE
