"""Early launch: an unbatched lane's camera thread starts the (GPU-like) engine on a frame the
moment it is ready. The guarantees of the station must hold unchanged: one verdict per part,
in order, fail-safe at the deadline, every buffer back; and the engine is never left reserved
(a launch that is not finished would block every later ``detect``: the line would stop)."""

from __future__ import annotations

import time
from pathlib import Path

from inference.config import EngineOptions
from line.loop.station import Station
from line.recipes.book import RecipeBook
from line.results.archive import ImageArchive
from line.results.log import ResultLog
from line.results.reader import ResultLogReader
from plc.vocabulary import ResultCode
from tests.line.fakes import LaunchingEngine, ScriptedSource, write_recipes
from tests.line.test_station import RecordingSink, run_parts


def make(tmp_path: Path, *, engine_delay: float = 0.0, budget_ms: float = 2000.0, queue_size: int = 4,
         early_launch: bool = True, **source_options: object) -> tuple[Station, ScriptedSource, RecordingSink, list[LaunchingEngine]]:  # fmt: skip
    engines: list[LaunchingEngine] = []

    def factory(recipe):  # noqa: ANN001, ANN202
        engine = LaunchingEngine(recipe.detector_spec(), EngineOptions())
        engine.delay_s = engine_delay
        engines.append(engine)
        return engine

    book = RecipeBook(write_recipes(tmp_path / "recipes", budget_ms=budget_ms), factory, check_models=False)
    assert book.switch("r1", "test").ok
    source = ScriptedSource("cam1", ScriptedSource.Options(**source_options))  # type: ignore[arg-type]
    log = ResultLog(tmp_path / "state" / "results.db", ImageArchive(tmp_path / "state" / "ng", 50))
    sink = RecordingSink()
    station = Station("s1", book, [source], [sink], log, queue_size=queue_size, fetch_timeout_s=0.2,
                      early_launch=early_launch)  # fmt: skip
    return station, source, sink, engines


def assert_engine_free(engine: LaunchingEngine) -> None:
    assert engine.finished == len(engine.launch_threads), "every launch finished or abandoned"
    assert engine.busy.acquire(blocking=False), "the engine is left reserved"
    engine.busy.release()


def test_parts_are_launched_from_the_camera_thread_and_decided_in_order(tmp_path: Path) -> None:
    station, source, sink, engines = make(tmp_path, rate_hz=100, max_parts=60, defective_parts=(7, 21, 40))
    run_parts(station, source, 60)
    assert [m.part_id for m in sink.messages] == list(range(1, 61))
    assert {m.part_id for m in sink.messages if m.result_code is ResultCode.REJECT} == {7, 21, 40}
    (engine,) = engines
    # paced at 100 Hz against an instant engine, the lane is idle at every frame: all launched early
    assert len(engine.launch_threads) >= 55
    assert set(engine.launch_threads) == {"acq-cam1"}
    assert_engine_free(engine)
    assert source.outstanding == set() and source.released == 60
    rows = ResultLogReader(tmp_path / "state" / "results.db").all()
    assert [r.part_id for r in rows] == list(range(1, 61))


def test_backlog_and_overflow_never_leave_the_engine_reserved(tmp_path: Path) -> None:
    # 30 ms of engine per part at 200 parts/s with one queue slot: drops, a busy engine, frames
    # launched then dropped from the queue, all at once
    station, source, sink, engines = make(tmp_path, engine_delay=0.03, queue_size=1, rate_hz=200, max_parts=40)
    run_parts(station, source, 40)
    assert sorted(m.part_id for m in sink.messages) == list(range(1, 41))
    dropped = [m for m in sink.messages if m.reason == "dropped"]
    assert dropped and len(dropped) == station.lanes[0].queue.dropped
    (engine,) = engines
    assert engine.launch_threads, "the idle engine at the first frame is launched early"
    assert_engine_free(engine)
    assert source.outstanding == set()


def test_a_launched_part_past_its_deadline_is_fail_safe_at_the_deadline(tmp_path: Path) -> None:
    station, source, sink, engines = make(tmp_path, engine_delay=0.08, budget_ms=30, rate_hz=20, max_parts=10)
    run_parts(station, source, 10)
    assert sorted(m.part_id for m in sink.messages) == list(range(1, 11))
    assert {m.reason for m in sink.messages} <= {"timeout", "dropped"}
    timeouts = [r for r in ResultLogReader(tmp_path / "state" / "results.db").all() if r.reason == "timeout"]
    assert timeouts and max(r.processing_us for r in timeouts) < 60_000
    assert station.stats.counts["late_discarded"] >= 1
    assert_engine_free(engines[0])


def test_an_engine_error_on_a_launched_part_is_fail_safe_and_the_line_goes_on(tmp_path: Path) -> None:
    station, source, sink, engines = make(tmp_path, rate_hz=100, max_parts=10, choking_parts=(3,))
    run_parts(station, source, 10)
    by_part = {m.part_id: m for m in sink.messages}
    assert sorted(by_part) == list(range(1, 11))
    assert by_part[3].reason == "inference_error"
    assert by_part[4].result_code is ResultCode.PASS
    assert_engine_free(engines[0])


def test_early_launch_off_keeps_the_engine_on_the_inference_thread(tmp_path: Path) -> None:
    station, source, sink, engines = make(tmp_path, rate_hz=100, max_parts=20, early_launch=False)
    run_parts(station, source, 20)
    assert [m.part_id for m in sink.messages] == list(range(1, 21))
    assert engines[0].launch_threads == []


def test_shutdown_with_a_launch_in_flight_frees_the_engine(tmp_path: Path) -> None:
    station, source, sink, engines = make(tmp_path, engine_delay=0.05, rate_hz=50, max_parts=1000)
    station.start()
    time.sleep(0.3)
    station.stop()
    parts = [m.part_id for m in sink.messages]
    assert parts == list(range(1, len(parts) + 1)) and len(parts) >= 3
    assert_engine_free(engines[0])
    assert source.outstanding == set()
