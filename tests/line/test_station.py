"""The station loop with scripted camera and engine: every part gets exactly one verdict,
failures become fail-safe verdicts with their reason, and the log holds every verdict."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from inference.config import EngineOptions
from line.loop.station import Station
from line.recipes.book import RecipeBook
from line.results.archive import ImageArchive
from line.results.log import ResultLog
from line.results.reader import ResultLogReader
from plc.vocabulary import Delivery, ResultCode, ResultSink, VerdictMessage
from tests.line.fakes import ScriptedEngine, ScriptedSource, scripted_book, write_recipes


class RecordingSink(ResultSink):
    name = "recorder"

    def __init__(self, delay_s: float = 0.0) -> None:
        self.messages: list[VerdictMessage] = []
        self.delay_s = delay_s
        self.lock = threading.Lock()

    def publish(self, verdict: VerdictMessage) -> Delivery:
        if self.delay_s:
            time.sleep(self.delay_s)
        with self.lock:
            self.messages.append(verdict)
            return Delivery(True, self.name, seq=len(self.messages), ack_time=time.perf_counter())


def make_station(tmp_path: Path, engine_delay: float = 0.0, budget_ms: float = 2000.0, queue_size: int = 4,
                 sink: ResultSink | None = None, **source_options: object) -> tuple[Station, ScriptedSource, RecordingSink]:  # fmt: skip
    recipes = write_recipes(tmp_path / "recipes", budget_ms=budget_ms)

    def factory(recipe):  # noqa: ANN001, ANN202
        engine = ScriptedEngine(recipe.detector_spec(), EngineOptions())
        engine.delay_s = engine_delay
        return engine

    book = RecipeBook(recipes, factory, check_models=False)
    assert book.switch("r1", "test").ok
    source = ScriptedSource("cam1", ScriptedSource.Options(**source_options))  # type: ignore[arg-type]
    log = ResultLog(tmp_path / "state" / "results.db", ImageArchive(tmp_path / "state" / "ng", 50))
    sink = sink or RecordingSink()
    station = Station("s1", book, [source], [sink], log, queue_size=queue_size, fetch_timeout_s=0.2)
    return station, source, sink  # type: ignore[return-value]


def run_parts(station: Station, source: ScriptedSource, n: int, timeout_s: float = 20.0) -> None:
    station.start()
    deadline = time.monotonic() + timeout_s
    while source._part < n and time.monotonic() < deadline:
        time.sleep(0.01)
    station.stop()


def test_every_part_one_verdict_in_order_and_logged(tmp_path: Path) -> None:
    station, source, sink = make_station(tmp_path, max_parts=60, defective_parts=tuple(range(5, 60, 7)))
    run_parts(station, source, 60)
    parts = [m.part_id for m in sink.messages]
    assert parts == list(range(1, 61))
    rejects = {m.part_id for m in sink.messages if m.result_code is ResultCode.REJECT}
    assert rejects == set(range(5, 60, 7))
    assert all(m.reject_mask == 1 for m in sink.messages if m.part_id in rejects)
    rows = ResultLogReader(tmp_path / "state" / "results.db").all()
    assert [r.part_id for r in rows] == parts
    assert {r.result_id for r in rows} == {m.result_id for m in sink.messages}
    assert all(r.delivered == 1 and r.recipe_id == "r1" for r in rows)
    assert source.outstanding == set() and source.released == 60  # every buffer went back
    ng = sorted((tmp_path / "state" / "ng").glob("*.png"))
    assert len(ng) == len(rejects)


def test_camera_errors_and_incomplete_frames_become_fail_safe(tmp_path: Path) -> None:
    station, source, sink = make_station(tmp_path, max_parts=30, fail_parts=(4, 5), incomplete_parts=(10,))
    run_parts(station, source, 30)
    by_part = {m.part_id: m for m in sink.messages}
    assert sorted(by_part) == list(range(1, 31))
    assert by_part[4].result_code is ResultCode.FAIL_SAFE_REJECT and by_part[4].reason == "camera_error"
    assert by_part[5].reason == "camera_error"
    assert by_part[10].reason == "incomplete_frame"
    assert {p: (m.result_code, m.reason) for p, m in by_part.items() if p not in (4, 5, 10) and m.result_code is not ResultCode.PASS} == {}
    events = ResultLogReader(tmp_path / "state" / "results.db").events("camera_lost")
    assert events, "camera loss must be alarmed in the log"


def test_slow_engine_gets_fail_safe_at_the_deadline_not_late(tmp_path: Path) -> None:
    # the engine takes 80 ms against a 30 ms budget: every part is decided fail-safe by the watchdog
    station, source, sink = make_station(tmp_path, engine_delay=0.08, budget_ms=30, rate_hz=20, max_parts=10)
    run_parts(station, source, 10)
    assert sorted(m.part_id for m in sink.messages) == list(range(1, 11))
    assert {m.reason for m in sink.messages} <= {"timeout", "dropped"}
    rows = ResultLogReader(tmp_path / "state" / "results.db").all()
    timeouts = [r for r in rows if r.reason == "timeout"]
    assert timeouts
    # decided at the deadline (+ scheduling), not when the slow engine finished
    assert max(r.processing_us for r in timeouts) < 60_000
    assert station.stats.counts["late_discarded"] >= 1


def test_overflow_drops_are_counted_and_still_decided(tmp_path: Path) -> None:
    station, source, sink = make_station(tmp_path, engine_delay=0.03, budget_ms=2000, queue_size=1,
                                         rate_hz=200, max_parts=40)  # fmt: skip
    run_parts(station, source, 40)
    parts = sorted(m.part_id for m in sink.messages)
    assert parts == list(range(1, 41))
    dropped = [m for m in sink.messages if m.reason == "dropped"]
    assert dropped and len(dropped) == station.lanes[0].queue.dropped
    assert source.outstanding == set()


def test_engine_failure_is_fail_safe_and_loop_continues(tmp_path: Path) -> None:
    station, source, sink = make_station(tmp_path, max_parts=10, choking_parts=(3,))
    run_parts(station, source, 10)
    by_part = {m.part_id: m for m in sink.messages}
    assert sorted(by_part) == list(range(1, 11))
    assert by_part[3].reason == "inference_error"
    assert by_part[4].result_code is ResultCode.PASS


def test_failing_sink_never_stops_the_line(tmp_path: Path) -> None:
    class Broken(ResultSink):
        name = "broken"

        def publish(self, verdict: VerdictMessage) -> Delivery:
            raise ConnectionError("peer gone")

    station, source, _ = make_station(tmp_path, max_parts=10, sink=Broken())
    run_parts(station, source, 10)
    rows = ResultLogReader(tmp_path / "state" / "results.db").all()
    assert [r.part_id for r in rows] == list(range(1, 11))
    assert all(r.delivered == 0 for r in rows)
    assert station.stats.counts["sink_error.broken"] == 10


def test_recipe_switch_between_frames_names_the_judging_recipe(tmp_path: Path) -> None:
    station, source, sink = make_station(tmp_path, max_parts=200, rate_hz=200)
    station.start()
    switched = 0
    while source._part < 200:
        target = "r2" if switched % 2 == 0 else "r1"
        assert station.request_switch(target, "test").ok
        switched += 1
        time.sleep(0.01)
    station.stop()
    assert sorted(m.part_id for m in sink.messages) == list(range(1, 201))
    assert {m.recipe_id for m in sink.messages} == {"r1", "r2"}
    assert all(m.recipe_code == int(m.recipe_id[1]) for m in sink.messages)
    events = ResultLogReader(tmp_path / "state" / "results.db").events("recipe_switch")
    assert len(events) == switched


@pytest.mark.parametrize("policy", ["drop_oldest", "drop_newest"])
def test_part_queue_policies(policy: str) -> None:
    from line.loop.part_queue import PartFailure, PartQueue

    q = PartQueue(1, policy)
    released: list[int] = []
    import numpy as np

    from camera.frame import Frame
    from tests.line.fakes import ScriptedSource as _S  # noqa: F401  (frames built below)

    def frame(i: int) -> Frame:
        return Frame("c", i, i, 0, 0.0, "Mono8", 1, 1, _data=np.zeros((1, 1), np.uint8),
                     _release=lambda i=i: released.append(i))  # fmt: skip

    q.put(frame(1), "t1")
    q.put(frame(2), "t2")
    first, second = q.get(0.1), q.get(0.1)
    assert q.dropped == 1
    if policy == "drop_oldest":
        assert isinstance(first[0], PartFailure) and first[1] == "t1" and released == [1]
        assert isinstance(second[0], Frame) and second[0].part_id == 2
    else:
        assert isinstance(first[0], Frame) and first[0].part_id == 1
        assert isinstance(second[0], PartFailure) and second[1] == "t2" and released == [2]


def test_batched_cameras_every_part_one_verdict(tmp_path: Path) -> None:
    """Three cameras share one engine through the batcher: batches form, nothing is lost."""
    book = scripted_book(tmp_path / "recipes", budget_ms=2000, delay_s=0.004)
    sources = [ScriptedSource(f"cam{i}", ScriptedSource.Options(rate_hz=40, max_parts=50, defective_parts=(7, 9)))
               for i in range(3)]  # fmt: skip
    sink = RecordingSink()
    log = ResultLog(tmp_path / "state" / "results.db", None)
    station = Station("s1", book, list(sources), [sink], log, fetch_timeout_s=0.2, max_batch=3, pad_to=3)
    station.start()
    deadline = time.monotonic() + 20
    while any(s._part < 50 for s in sources) and time.monotonic() < deadline:
        time.sleep(0.01)
    batcher = station.batcher
    station.stop()
    for cam in ("cam0", "cam1", "cam2"):
        parts = sorted(m.part_id for m in sink.messages if m.camera_id == cam)
        assert parts == list(range(1, 51))
        rejects = sorted(m.part_id for m in sink.messages if m.camera_id == cam and m.result_code is ResultCode.REJECT)
        assert rejects == [7, 9]
    assert batcher is not None and batcher.images >= 140 and batcher.batches < batcher.images  # real batches formed


def test_time_beyond_the_engine_is_each_parts_latency_less_its_engine_call(tmp_path: Path) -> None:
    """The bench reads the station's own cost from this stage: per part, not p50 minus p50."""
    station, source, _ = make_station(tmp_path, engine_delay=0.005, max_parts=20)
    run_parts(station, source, 20)
    snap = station.snapshot()
    latency, beyond = snap["latency_ms"], snap["stages_ms"]["beyond_engine"]  # type: ignore[index]
    for key in ("p50", "p99", "max"):
        assert beyond[key] == pytest.approx(latency[key] - 5.0, abs=1e-6)
    assert beyond["n"] == 20 and 0.0 < beyond["p50"] < latency["p50"]
