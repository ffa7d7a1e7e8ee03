"""The station's remote halt (line.loop.run_gate, through the control worker): a halted station
keeps acquiring and gives every part the recipe's fail-safe result with the reason ``halted``;
READY and RUNNING leave the status bits; start resumes decided verdicts; no part is left
without a verdict; every request is audited in the result log."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from line.results.reader import ResultLogReader
from plc.vocabulary import ResultCode, StatusBits
from tests.line.test_station import RecordingSink, make_station


def wait_for(test: Callable[[], bool], timeout_s: float = 30.0) -> None:
    end = time.monotonic() + timeout_s
    while not test():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.01)


def test_halt_abort_reset_start(tmp_path: Path) -> None:
    station, _source, sink = make_station(tmp_path, engine_delay=0.02, rate_hz=100.0)
    assert isinstance(sink, RecordingSink)
    station.start()
    try:
        wait_for(lambda: len(sink.messages) >= 5)
        halt = station.request_control("halt", "test", "eng")
        mark_halt = len(sink.messages)
        status_halted = station.published_status
        wait_for(lambda: len(sink.messages) >= mark_halt + 5)
        reset = station.request_control("reset", "test", "eng")
        mark_reset = len(sink.messages)
        status_ready = station.published_status
        wait_for(lambda: len(sink.messages) >= mark_reset + 5)
        start = station.request_control("start", "test", "eng")
        mark_start = len(sink.messages)
        status_running = station.published_status
        wait_for(lambda: any(m.reason == "" for m in sink.messages[mark_start:]))
        abort = station.request_control("abort", "test", "eng")
        mark_abort = len(sink.messages)
        wait_for(lambda: len(sink.messages) >= mark_abort + 5)
        unknown = station.request_control("jump", "test", "eng")
    finally:
        station.stop()

    assert [(r.ok, r.mode) for r in (halt, reset, start, abort)] == [
        (True, "halted"), (True, "ready"), (True, "deciding"), (True, "halted"),
    ]  # fmt: skip
    assert not unknown.ok and unknown.mode == "halted"
    assert status_halted & (StatusBits.READY | StatusBits.RUNNING) == 0
    assert status_ready & (StatusBits.READY | StatusBits.RUNNING) == StatusBits.READY
    assert StatusBits.RUNNING in status_running
    # once a halt or abort returned, no part is decided: all get the fail-safe result, "halted"
    msgs = sink.messages
    for begin, end in ((mark_halt, mark_reset), (mark_reset, mark_start), (mark_abort, len(msgs))):
        assert {m.reason for m in msgs[begin:end]} == {"halted"}
        assert {m.result_code for m in msgs[begin:end]} == {ResultCode.FAIL_SAFE_REJECT}
    assert "" in {m.reason for m in msgs[mark_start:mark_abort]}
    # every part acquired got exactly one verdict
    summary = station.stop_summary()
    assert summary["parts"] == summary["verdicts"] == len(msgs)
    assert len({m.part_id for m in msgs}) == len(msgs)

    reader = ResultLogReader(tmp_path / "state" / "results.db")
    try:
        audit = [json.loads(data) for *_, data in reader.events("station_control")]
    finally:
        reader.close()
    assert [(a["action"], a["from"], a["to"], a["source"], a["user"]) for a in audit] == [
        ("halt", "deciding", "halted", "test", "eng"), ("reset", "halted", "ready", "test", "eng"),
        ("start", "ready", "deciding", "test", "eng"), ("abort", "deciding", "halted", "test", "eng"),
    ]  # fmt: skip
