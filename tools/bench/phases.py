"""The contenders of ``linecheck bench``, each measured in a process of its own.

On the H100 an ONNX Runtime CUDA engine runs its network 8-14 % slower (1.03-1.09 against 0.95
ms) as soon as its process opens any other ORT CUDA session, and stays slower after that
session is closed, at the same clocks (``tools/gpu/engine_order_probe.py``, README
"Performance"). Timed one after another in one process, the contender that happened to come
first would win for that reason alone. A line station opens its engine first, so each
contender gets what a station gets: a fresh process (``spawn``, so no CUDA state is
inherited). ``--one-process`` keeps the old single-process order, for the A/B.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import yaml

from camera.frame import GroundTruth
from camera.memory import MemorySource
from inference.config import EngineOptions
from inference.engine import Engine, ImageInput, open_engine
from line.loop.stats import percentiles
from line.recipes.book import RecipeBook
from line.recipes.model import Recipe
from line.results.archive import ImageArchive
from line.results.log import ResultLog
from plc.vocabulary import ResultSink
from tools.bench.host_steal import read_steal_ms, steal_since
from tools.bench.thread_cpu import busiest_since, thread_cpu_ms

T = TypeVar("T")


def in_fresh_process(fresh: bool, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a new spawned interpreter (its result pickled back), or here."""
    if not fresh:
        return fn(*args)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(fn, *args).result()


def measure_engine(recipe: Recipe, options: EngineOptions, frame: np.ndarray, pixel_format: str, n: int,
                   warmup: int) -> dict[str, Any]:  # fmt: skip
    """A fresh engine, timed alone (see ``bench_engine``) and closed."""
    engine = open_engine(recipe.detector_spec(), options)
    try:
        return bench_engine(engine, recipe, frame, pixel_format, n, warmup)
    finally:
        engine.close()


def bench_engine_ab(recipes: list[Recipe], options: EngineOptions, frame: np.ndarray, pixel_format: str, n: int,
                    warmup: int, blocks: int = 8, names: list[str] | None = None) -> dict[str, Any]:  # fmt: skip
    """Two recipes' engines (fp32 and INT8 of one model) timed alone in alternating blocks
    (A B B A ...), so neither owns a quiet or a busy moment of a shared host. ``names``: their
    labels (default: their precisions; an ungated INT8 model runs as a plain fp32-typed one)."""
    engines = [open_engine(r.detector_spec(), options) for r in recipes]
    names = names or [r.model.precision for r in recipes]
    samples: dict[str, list[np.ndarray]] = {name: [] for name in names}
    try:
        for block in range(blocks):
            order = (0, 1) if block % 2 == 0 else (1, 0)
            for i in order:
                figures = bench_engine(engines[i], recipes[i], frame, pixel_format, max(1, n // blocks),
                                       warmup if block == 0 else 2)  # fmt: skip
                samples[names[i]].append(figures["_samples"])
    finally:
        for engine in engines:
            engine.close()
    out: dict[str, Any] = {name: percentiles(np.concatenate(v)) for name, v in samples.items()}
    out["ratio_p50"] = out[names[0]]["p50"] / out[names[1]]["p50"]
    out["blocks"] = blocks
    return out


def bench_engine(engine: Engine, recipe: Recipe, frame: np.ndarray, pixel_format: str, n: int, warmup: int,
                 period_s: float = 0.0) -> dict[str, Any]:  # fmt: skip
    """The network alone, as the pipeline's engine runs it: the backend's own ``engine`` stage
    timing (ORT ``run`` on CPU; CUDA events around the graph replay on GPU). It bounds what the
    pipeline can reach; preprocessing, decode and hand-overs are what the pipeline adds.

    ``period_s``: one call per period, as the paced line calls it, instead of back to back. On a
    shared VM, work that follows an idle gap can run slower (the CPU preprocess took 0.13 ms back
    to back and 0.45 ms after 2-15 ms idle on the CI box: caches the host's other tenants emptied
    meanwhile); this shows whether the network itself does, at the line's pace."""
    image = ImageInput(frame, pixel_format)
    result = None
    # the network as the backend replays it alone (ORT's own graph on GPU), not inside the
    # pipeline's whole graph: the reference stays the same whatever the pipeline fuses
    fused = getattr(engine, "whole_graph", None)
    if fused is not None:
        engine.whole_graph = False  # type: ignore[attr-defined]
    try:
        for _ in range(warmup):
            result = engine.detect([image])[0]
        lat = []
        next_call = time.perf_counter()
        for _ in range(n):
            if period_s:
                next_call += period_s
                time.sleep(max(0.0, next_call - time.perf_counter()))
            lat.append(engine.detect([image])[0].timings_ms["engine"])
    finally:
        if fused is not None:
            engine.whole_graph = fused  # type: ignore[attr-defined]
    shape = result.input_shape if result is not None else (0, 0)
    return _engine_figures(np.array(lat), shape)


def bench_engine_both_ways(engine: Engine, recipe: Recipe, frame: np.ndarray, pixel_format: str, n: int, n_paced: int,
                           warmup: int, period_s: float, blocks: int = 4) -> tuple[dict[str, Any], dict[str, Any]]:  # fmt: skip
    """``bench_engine`` back to back (``n`` calls) and at the line's pace (``n_paced``), in
    alternating blocks, ABBA. On the shared CI VM the network's own speed drifted by more than
    the difference sought within a minute: timed one after the other, the two figures compared
    two moments as much as two paces. Interleaved in one process, 60 calls a block, the demo
    network took 9.80 ms back to back and 11.04 ms paced at 28 ms (10.86 with a busy-wait in
    place of the sleep, so not the vCPU halting: the caches, emptied by the host's other tenants
    during the gap)."""
    back_to_back: list[np.ndarray] = []
    paced: list[np.ndarray] = []
    shape: tuple[int, int] = (0, 0)
    for block in range(blocks):
        for period in (0.0, period_s) if block % 2 == 0 else (period_s, 0.0):
            total, into = (n_paced, paced) if period else (n, back_to_back)
            count = total // blocks + (1 if block < total % blocks else 0)
            if count == 0:
                continue
            warm = warmup if not (back_to_back or paced) else 1
            figures = bench_engine(engine, recipe, frame, pixel_format, count, warm, period)
            into.append(figures["_samples"])
            shape = (figures["input_hw"][0], figures["input_hw"][1])
    return _engine_figures(np.concatenate(back_to_back), shape), _engine_figures(np.concatenate(paced), shape)


def _engine_figures(lat: np.ndarray, shape: tuple[int, int]) -> dict[str, Any]:
    return {"fps": 1000.0 / float(np.mean(lat)), "latency_ms": percentiles(lat), "input_hw": list(shape), "_samples": lat}


def bench_naive(recipe: Recipe, frames: list[np.ndarray], input_hw: tuple[int, int], cuda: bool, n: int, warmup: int) -> dict[str, Any]:
    import onnxruntime as ort

    from tools.bench.naive import NaiveLoop

    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if cuda else ["CPUExecutionProvider"]
    session = ort.InferenceSession(str(recipe.model.onnx), providers=providers)
    loop = NaiveLoop(session, recipe, input_hw)
    for i in range(warmup):
        loop.run_one(frames[i % len(frames)])
    t0 = time.perf_counter()
    lat = [loop.run_one(frames[i % len(frames)]) for i in range(n)]
    elapsed = time.perf_counter() - t0
    return {"fps": n / elapsed, "latency_ms": percentiles(np.array(lat)), "_samples": np.array(lat)}


def result_sinks(kind: str, workdir: Path) -> tuple[list[ResultSink], Any]:
    if kind == "none":
        return [], None
    from plc.config import ModbusClientConfig, ModbusServerConfig

    if kind == "server":
        from plc.modbus_server import ModbusServerSink

        return [ModbusServerSink(ModbusServerConfig(port=0))], None
    from plc.modbus_client import ModbusClientSink
    from tools.bench.plc_latency import start_simulator

    sim, port = start_simulator("--record", str(workdir / "plc.jsonl"))
    return [ModbusClientSink(ModbusClientConfig(enabled=True, port=port, write_timeout_ms=20))], sim


def bench_pipeline(recipe: Recipe, options: EngineOptions, frames: list[np.ndarray], truths: list[GroundTruth],
                   args: argparse.Namespace, rate_hz: float, n: int) -> dict[str, Any]:  # fmt: skip
    from line.loop.station import Station

    with tempfile.TemporaryDirectory(prefix="linecheck-bench-") as tmp:
        work = Path(tmp)
        (work / "recipes").mkdir()
        data = recipe.model_dump(mode="json")
        if args.budget_ms:
            data["cycle_budget_ms"] = args.budget_ms
        (work / "recipes" / f"{recipe.id}.yaml").write_text(yaml.safe_dump(data))
        book = RecipeBook(work / "recipes", lambda r: open_engine(r.detector_spec(), options),
                          warm_shape=(frames[0].shape[0], frames[0].shape[1], args.pixel_format),
                          warm_batch=args.cameras)  # fmt: skip
        assert book.switch(recipe.id, "bench").ok  # noqa: S101
        per_camera = max(1, n // args.cameras)
        # back-pressured (rate 0): fewer camera buffers than queue slots, so acquisition waits for
        # the station instead of overflowing its queue — the most it sustains without a drop
        pool = 6 if rate_hz > 0 else 3
        # paced cameras: one shared trigger (a multi-view station) or free-running, each at a random phase
        rng = np.random.default_rng(11)
        epoch = time.perf_counter()
        epochs = [epoch if args.phase == "aligned" else epoch + rng.uniform(0, 1 / rate_hz) if rate_hz else None
                  for _ in range(args.cameras)]  # fmt: skip
        sources = [MemorySource(f"cam{i + 1}", MemorySource.Options(rate_hz=rate_hz, pixel_format=args.pixel_format,
                                pool_size=pool, max_frames=per_camera + args.warmup, trigger_epoch=epochs[i] if rate_hz else None),
                                images=frames, truths=truths)
                   for i in range(args.cameras)]  # fmt: skip
        sinks, sim = result_sinks(args.plc, work)
        log = ResultLog(work / "results.db", ImageArchive(work / "ng", 50, "jpg") if args.archive else None)
        gpu = options.device == "cuda"
        station = Station("bench", book, list(sources), sinks, log, queue_size=4, fetch_timeout_s=0.5,
                          archive_ng=args.archive, gc_freeze=not args.no_gc_freeze,
                          retire_decided=not args.no_retire_decided,
                          max_batch=args.cameras, pad_to=args.cameras if gpu else None)  # fmt: skip
        try:
            station.start()
            for sink in sinks:
                wait = getattr(sink, "wait_connected", None)
                if wait is not None:
                    wait(10.0)
            while sum(lane.parts for lane in station.lanes) < args.warmup * args.cameras:
                time.sleep(0.005)
            station.stats.reset()
            t0 = time.perf_counter()
            usage0 = resource.getrusage(resource.RUSAGE_SELF)
            steal0 = read_steal_ms()
            threads0 = thread_cpu_ms()
            engine = book.active.engine if book.active is not None else None
            stalls0 = getattr(engine, "unexplained_stalls", None)
            heartbeat = _Heartbeat.start(args.heartbeat_ms)
            # CPU, paced: look rarely. On two cores the ORT CPU engine runs a thread per core, and
            # any other thread that wakes mid-run stalls its parallel loops. Elsewhere every 5 ms,
            # which the throughput figures' resolution needs (elapsed ends at a look)
            poll_s = 0.05 if rate_hz > 0 and options.device == "cpu" else 0.005
            # Done when the cameras are through and every part they announced is decided (frames
            # a camera dropped at the very end announce no part). This loop once stopped 4
            # triggers early, and the bench's own Python below (thread readings, percentiles: up
            # to 90 ms on the main thread, holding the GIL in slices) overlapped the last
            # triggers: on the H100 their batch took 31-38 ms instead of 3, and 7-8 parts were
            # late in several 8-camera runs, by the bench's doing.
            while time.perf_counter() - t0 < 600:
                if all(s.exhausted for s in sources) and not any(lane.undecided() for lane in station.lanes):
                    break
                time.sleep(poll_s)
            t_end = time.perf_counter()
            elapsed = t_end - t0
            in_flight = sum(lane.undecided() for lane in station.lanes)
            usage = _usage_since(usage0)
            host = steal_since(steal0)
            busiest = busiest_since(threads0)
            if stalls0 is not None:  # GPU engine: device waits over 10 ms none of its own work explains
                host["gpu_stalls_over_10ms"] = engine.unexplained_stalls - stalls0  # type: ignore[union-attr]
                host["gpu_stall_max_ms"] = round(engine.unexplained_stall_max_ms, 1)  # type: ignore[union-attr]
            usage["cpu_cores_busy_pct"] = round(usage.pop("cpu_ms") / elapsed / 10)
            if heartbeat is not None:
                usage.update(heartbeat.stop())
            t_read = time.perf_counter()
            # nothing is normally left (the loop above waited for it) unless its 600 s cap ended
            # the run: what is, is decided before the bench's own work below, so a late part is
            # the station's doing, never the bench's bookkeeping
            while any(lane.undecided() for lane in station.lanes) and time.perf_counter() - t_read < 2.0:
                time.sleep(0.001)
            t_drained = time.perf_counter()
            snap = station.snapshot()
            samples = station.stats.verdict_latency.values()
            timelines = station.stats.slow_parts.summary()
            # the network alone again, on the very engine instance this station ran: on the H100
            # a process's later engines ran ~8 % slower than its first (0.95 against 1.03-1.08
            # ms, whatever the warm-up or the cuDNN search), so the first-instance figure above
            # is not quite the bound of this station's pipeline. Measured with the station idle
            # (every part decided), before stop() closes the book's engines.
            after: dict[str, float] = {
                "in_flight": in_flight, "readings": (t_read - t_end) * 1000, "drain": (t_drained - t_read) * 1000,
                "snapshot": (time.perf_counter() - t_drained) * 1000,
            }  # fmt: skip
            active = book.active
            same = None
            gpu_mb = None
            if options.device == "cuda":
                from inference.gpu.cuda import Device

                t_query = time.perf_counter()
                gpu_mb = Device(options.device_id).memory_used_mb()
                after["gpu_memory_query"] = (time.perf_counter() - t_query) * 1000
            same_paced = None
            if rate_hz > 0 and active is not None:
                # back to back, and at the paced run's pace (one camera's: a batch per trigger;
                # fewer calls), in alternating blocks
                same, same_paced = bench_engine_both_ways(active.engine, recipe, frames[0], args.pixel_format, n,
                                                          min(n, 200), args.warmup, 1.0 / rate_hz)  # fmt: skip
                same.pop("_samples", None)
                same_paced.pop("_samples", None)
            station.stop()
        finally:
            if sim is not None:
                from tools.bench.plc_latency import stop_process

                stop_process(sim)
        counts: dict[str, int] = snap["counts"]  # type: ignore[assignment]
        stages: dict[str, dict[str, float]] = snap["stages_ms"]  # type: ignore[assignment]
        return {
            "fps": (counts.get("passed", 0) + counts.get("rejected", 0)) / elapsed,  # inspected, not fail-safe
            "latency_ms": snap["latency_ms"],
            "plc_ack_ms": snap["plc_ack_ms"],
            "engine_ms": stages.get("engine", {}),
            "stages_ms": stages,
            "dropped": sum(lane.queue.dropped for lane in station.lanes) + sum(s.counters.dropped for s in sources),
            "deadline_misses": counts.get("fail_safe.timeout", 0),
            "fail_safe": counts.get("fail_safe", 0),
            "gc_pause_ms": snap["gc_pause_ms"],
            "process_events": usage,
            "host_steal_ms": host,
            "busiest_threads": busiest,
            "part_timelines": timelines,
            "after_run_ms": {k: round(v, 2) for k, v in after.items()},
            "rate_hz": rate_hz,
            "_samples": samples,
            "_engine_same_instance": same,
            "_engine_same_instance_paced": same_paced,
            # this process's peak: with fresh processes the station's own, not the bench's
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "gpu_memory_mb": gpu_mb,
        }


class _Heartbeat:
    """Diagnosis of stalls (``linecheck bench --heartbeat-ms N``): a thread of the station's own
    process sleeping N ms at a time. Late wake-ups that a monitor in another process does not
    see (``tools/gpu/jitter.py``) point at this process (a thread holding the GIL, a page
    fault waiting for the kernel) rather than at the host. Off by default: its wake-ups take
    the GIL too."""

    def __init__(self, period_s: float) -> None:
        self.period_s = period_s
        self.late_ms: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-heartbeat", daemon=True)

    @classmethod
    def start(cls, period_ms: float) -> _Heartbeat | None:
        if period_ms <= 0:
            return None
        beat = cls(period_ms / 1000)
        beat._thread.start()
        return beat

    def _run(self) -> None:
        while not self._stop.is_set():
            t = time.perf_counter()
            time.sleep(self.period_s)
            self.late_ms.append((time.perf_counter() - t - self.period_s) * 1000)

    def stop(self) -> dict[str, int]:
        self._stop.set()
        self._thread.join()
        late = np.array(self.late_ms or [0.0])
        return {"heartbeat_max_late_us": int(late.max() * 1000), "heartbeats_late_over_5ms": int((late > 5).sum())}


def _usage_since(before: resource.struct_rusage) -> dict[str, int]:
    """What the kernel did to this process during the measured run: page faults (a major one
    waits for a disk; a minor one may wait for the kernel to reclaim or compact memory) and
    context switches (involuntary: a thread was preempted, e.g. by another tenant's work)."""
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "minor_faults": after.ru_minflt - before.ru_minflt,
        "major_faults": after.ru_majflt - before.ru_majflt,
        "voluntary_switches": after.ru_nvcsw - before.ru_nvcsw,
        "involuntary_switches": after.ru_nivcsw - before.ru_nivcsw,
        "cpu_ms": int((after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1000),
    }
