"""What GetResultById falls back on for a result the MES was told of before the result log
committed it: the announcements kept by id (bounded) and the re-read of the log until the row
is there. Against the real reader on a real SQLite log; the row is written between two reads."""

from __future__ import annotations

import asyncio
from pathlib import Path

from line.mes.mv_results import AnnouncedResults, logged_soon
from line.results.log import ResultRecord
from line.results.reader import ResultLogReader
from tests.opcua.fake_log import FakeLogWriter


def test_the_row_committed_after_the_first_miss_is_read_on_the_next_look(tmp_path: Path) -> None:
    writer = FakeLogWriter(tmp_path / "results.db")
    reader = ResultLogReader(tmp_path / "results.db")
    msg, defects = writer.make()
    looks: list[ResultRecord | None] = []

    def by_id(result_id: str) -> ResultRecord | None:
        found = reader.by_id(result_id)
        looks.append(found)
        if found is None:
            writer.write(msg, defects)  # the writer thread commits its batch
        return found

    try:
        found = asyncio.run(logged_soon(by_id, msg.result_id, wait_s=3600.0, poll_s=0.0))
    finally:
        reader.close()
        writer.close()
    assert found is not None and found.result_id == msg.result_id
    assert [x is None for x in looks] == [True, False]  # one miss, then the row: no waiting out


def test_a_row_that_does_not_come_is_given_up_on(tmp_path: Path) -> None:
    writer = FakeLogWriter(tmp_path / "results.db")
    reader = ResultLogReader(tmp_path / "results.db")
    try:
        assert asyncio.run(logged_soon(reader.by_id, "never-logged", wait_s=0.0)) is None
    finally:
        reader.close()
        writer.close()


def test_announcements_keep_the_latest_ones() -> None:
    announced = AnnouncedResults(keep=2)
    for rid in ("a", "b", "c"):
        announced.add({"result_id": rid, "verdict": "pass"})
    assert announced.get("a") is None
    assert [announced.get(r) for r in ("b", "c")] == [
        {"result_id": "b", "verdict": "pass"},
        {"result_id": "c", "verdict": "pass"},
    ]
