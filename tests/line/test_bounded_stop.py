"""A stop is bounded: with a hung camera, a database locked by another process, or a PLC that
accepts the connection and never answers, ``Station.stop`` returns, says what it left behind,
and loses no verdict. Requests from the PLC and the HMI run on one owned worker."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from line.loop.station import Station
from line.results.journal import journal_files
from line.results.log import ResultLog, connect
from line.results.reader import ResultLogReader
from plc.config import ModbusClientConfig
from plc.modbus_client import ModbusClientSink
from tests.line.fakes import ScriptedSource
from tests.line.test_station import make_station

pytestmark = pytest.mark.timeout(120)


class HangingSource(ScriptedSource):
    """From part ``hang_at`` on, ``fetch`` never returns (a driver call that hangs)."""

    def __init__(self, camera_id: str, options: ScriptedSource.Options, hang_at: int) -> None:
        super().__init__(camera_id, options)
        self.hang_at = hang_at
        self.hanging = threading.Event()
        self.unblock = threading.Event()

    def fetch(self, timeout_s: float):  # noqa: ANN201
        if self._part + 1 >= self.hang_at:
            self.hanging.set()
            self.unblock.wait()
        return super().fetch(timeout_s)


def _stop_in_thread(station: Station) -> threading.Thread:
    """Stop from another thread, so a stop that hangs fails this test instead of hanging it."""
    stopper = threading.Thread(target=station.stop, name="test-stopper", daemon=True)
    stopper.start()
    stopper.join(60)
    return stopper


def test_stop_returns_with_a_hung_camera(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    station, _, sink = make_station(tmp_path)
    source = HangingSource("cam1", ScriptedSource.Options(rate_hz=100), hang_at=30)
    station.lanes[0].source = source
    station.start()
    try:
        assert source.hanging.wait(30)
        with caplog.at_level(logging.WARNING):
            stopper = _stop_in_thread(station)
        assert not stopper.is_alive(), "the stop did not return with the camera hung"
        print(f"hung camera: stop took {station.stop_report['stop_s']} s")
        assert station.stop_report["threads_left"] == ["acq-cam1"]
        assert any("left behind" in r.message and "acq-cam1" in r.message for r in caplog.records)
        parts = station.lanes[0].parts
        assert parts == 29 and [m.part_id for m in sink.messages] == list(range(1, 30))
        assert station.verdicts_since_start == parts
        assert len(ResultLogReader(tmp_path / "state" / "results.db").all()) == parts
    finally:
        source.unblock.set()  # the hung call returns: its frame is released, not decided
    station.lanes[0]._threads[0].join(10)
    assert source.outstanding == set()
    assert [m.part_id for m in sink.messages] == list(range(1, 30))


_LOCKER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], timeout=10, isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("LOCKED", flush=True)
sys.stdin.read()
conn.execute("COMMIT")
"""


def test_stop_returns_with_the_database_locked_and_keeps_the_journal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "state" / "results.db"
    connect(db).close()
    locker = subprocess.Popen([sys.executable, "-c", _LOCKER, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)  # fmt: skip
    try:
        assert locker.stdout is not None and locker.stdout.readline().strip() == "LOCKED"
        station, source, sink = make_station(tmp_path, max_parts=40)
        station.start()
        while len(sink.messages) < 40:
            threading.Event().wait(0.02)
        while station.result_log.storage_fault() is None:
            threading.Event().wait(0.02)
        log_state = station.snapshot()["log"]
        assert isinstance(log_state, dict) and log_state["backlog"] == 40 and "locked" in log_state["storage_fault"]
        with caplog.at_level(logging.WARNING):
            stopper = _stop_in_thread(station)
        assert not stopper.is_alive(), "the stop did not return with the database locked"
        print(f"locked database: stop took {station.stop_report['stop_s']} s")
        messages = [r.getMessage() for r in caplog.records]
        waited = [i for i, m in enumerate(messages) if "waiting for the result log" in m and "database is locked" in m]
        kept = [i for i, m in enumerate(messages) if "40 verdicts are not in" in m and "for the next start" in m]
        assert waited and kept and waited[0] < kept[0], messages  # it said what it waited for, then what it kept
        assert station.stop_report["log_kept_in_journal"] == 40 and station.stop_report["log_lost"] == 0
        assert journal_files(tmp_path / "state" / "journal")
    finally:
        if locker.stdin:
            locker.stdin.close()
        locker.wait(10)
        if locker.stdout:
            locker.stdout.close()
    again = ResultLog(db, None)  # the next start
    again.close()
    assert again.recovered == 40
    rows = ResultLogReader(db).all()
    assert sorted(r.part_id for r in rows) == list(range(1, 41))
    assert {r.result_id for r in rows} == {m.result_id for m in sink.messages}
    assert all(r.delivered == 1 for r in rows)


def test_stop_returns_with_a_plc_that_never_answers(tmp_path: Path) -> None:
    silent = socket.socket()  # accepts connections (the kernel does) and never answers a request
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        config = ModbusClientConfig(port=silent.getsockname()[1], write_timeout_ms=50)
        plc = ModbusClientSink(config)
        station, source, sink = make_station(tmp_path, max_parts=30)
        station.sinks.append(plc)
        station.start()
        while len(sink.messages) < 30:
            threading.Event().wait(0.02)
        stopper = _stop_in_thread(station)
        assert not stopper.is_alive(), "the stop did not return with the PLC silent"
        print(f"silent PLC: stop took {station.stop_report['stop_s']} s")
        assert station.stop_report["threads_left"] == []
        assert station.stats.counts.get("undelivered.modbus_client", 0) == 30
        rows = ResultLogReader(tmp_path / "state" / "results.db").all()
        assert len(rows) == 30 and all(r.delivered == 0 for r in rows)
    finally:
        silent.close()


def test_plc_requests_run_on_one_worker_thread(tmp_path: Path) -> None:
    station, _, _ = make_station(tmp_path)
    station.start()
    try:
        before = {t.name for t in threading.enumerate()}
        for _ in range(5):
            station.select_recipe_code(2, "plc")
            station.select_recipe_code(1, "plc")
        assert station.requests.idle(30)
        assert {t.name for t in threading.enumerate()} - before == set()
        assert station.requests.done >= 1 and station.book.active is not None
    finally:
        station.stop()
    assert not station.requests.running
    assert "station-requests" not in {t.name for t in threading.enumerate()}
