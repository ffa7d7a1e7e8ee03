"""``linecheck bench --what idle|switch|first-part``: the first parts after a line stop and
after a recipe change (issue 27), against the same station's steady state.

Why these and not more steady-state figures: a triggered station that is slow on the first
part after a stop or a product change fail-safes exactly the parts an operator watches. A
steady run hides it: caches, ORT's worker threads and the CPU's clocks are warm there.

Both phases drive one camera by software trigger (``TriggeredSource``) at a fixed pace, so
each part's trigger time is known and each part's t_ready -> verdict is read per part from the
station's observers, in order.

- idle: a steady run, then for each gap: the station idle for the gap, then a burst of
  parts; the first five of each burst against the steady p50 / p99. The process's CPU use
  during each gap is reported (what being idle costs: nothing, or a keep-warm's inferences).
- switch: a steady run on recipe A, a switch to B (prepared beforehand: warm) and then to C
  (never loaded: cold) while the camera keeps triggering. Every triggered part must get a
  verdict (the old recipe judges until the new one is ready); reported are how long each
  switch took before the new recipe was ready, the parts triggered meanwhile, and the first
  five parts the new recipe judged.
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from camera.errors import FetchTimeout
from camera.frame import Frame, GroundTruth
from camera.memory import MemorySource
from inference.config import EngineOptions
from inference.engine import open_engine
from line.loop.stats import percentiles
from line.recipes.book import RecipeBook
from line.recipes.model import Recipe
from line.results.log import ResultLog
from plc.vocabulary import ResultCode
from tools.bench.phases import result_sinks

FIRST_PARTS = 5


class TriggeredSource(MemorySource):
    """A camera fired by the bench, as a line's part sensor fires a triggered camera: a
    frame is handed out only after ``trigger``; between triggers the lane waits as it would."""

    def __init__(self, camera_id: str, pixel_format: str, images: Sequence[np.ndarray],
                 truths: Sequence[GroundTruth | None]) -> None:  # fmt: skip
        super().__init__(camera_id, MemorySource.Options(pixel_format=pixel_format, pool_size=6), images=images, truths=truths)
        self._triggers = threading.Semaphore(0)

    def trigger(self, part_id: int | None = None) -> None:
        """One frame for the next ``fetch`` (part ids are the source's own count)."""
        self._triggers.release()

    def fetch(self, timeout_s: float) -> Frame:
        if not self._triggers.acquire(timeout=timeout_s):
            raise FetchTimeout("no trigger")
        return super().fetch(timeout_s)


@dataclass
class DecidedPart:
    t_ready: float  # perf_counter
    latency_ms: float  # t_ready -> verdict
    recipe_id: str
    fail_safe: bool
    reason: str  # of a fail-safe verdict (timeout, overflow, ...); "" otherwise


class PartLog:
    """Every decided part, in order (a station observer)."""

    def __init__(self) -> None:
        self.parts: list[DecidedPart] = []
        self._lock = threading.Lock()

    def __call__(self, outcome: Any) -> None:
        now = time.perf_counter()
        part = DecidedPart(outcome.ticket.t_ready, (now - outcome.ticket.t_ready) * 1000, outcome.record.recipe_id,
                           outcome.verdict.result_code not in (ResultCode.PASS, ResultCode.REJECT), outcome.verdict.reason or "")  # fmt: skip
        with self._lock:
            self.parts.append(part)

    def count(self) -> int:
        with self._lock:
            return len(self.parts)

    def since(self, start: int) -> list[DecidedPart]:
        with self._lock:
            return self.parts[start:]


class Pacer:
    """Triggers at a fixed period and waits for the verdicts."""

    def __init__(self, source: TriggeredSource, log: PartLog, period_s: float) -> None:
        self.source, self.log, self.period_s = source, log, period_s
        self.triggered = 0

    def run(self, n: int, stop: threading.Event | None = None) -> list[DecidedPart]:
        start = self.log.count()
        before = self.triggered
        next_t = time.perf_counter()
        for _ in range(n):
            if stop is not None and stop.is_set():
                break
            time.sleep(max(0.0, next_t - time.perf_counter()))
            self.source.trigger()
            self.triggered += 1
            next_t += self.period_s
        self.wait_decided(start + self.triggered - before)
        return self.log.since(start)

    def wait_decided(self, total: int, timeout_s: float = 30.0) -> None:
        deadline = time.perf_counter() + timeout_s
        while self.log.count() < total and time.perf_counter() < deadline:
            time.sleep(0.01)


def recipe_copy(recipe: Recipe, suffix: str, code_offset: int) -> Recipe:
    data = recipe.model_dump(mode="json")
    data["id"], data["code"] = f"{recipe.id}-{suffix}", recipe.code + code_offset
    return Recipe.model_validate(data)


@contextlib.contextmanager
def station_running(recipes: list[Recipe], options: EngineOptions, frames: list[np.ndarray],
                    truths: list[GroundTruth], args: argparse.Namespace) -> Iterator[tuple[Any, TriggeredSource, PartLog]]:  # fmt: skip
    """A station with these recipes (the first active), one triggered camera and the bench's
    PLC sink; stopped on exit."""
    from line.loop.station import Station

    with tempfile.TemporaryDirectory(prefix="linecheck-bench-") as tmp:
        work = Path(tmp)
        (work / "recipes").mkdir()
        for recipe in recipes:
            data = recipe.model_dump(mode="json")
            if args.budget_ms:
                data["cycle_budget_ms"] = args.budget_ms
            (work / "recipes" / f"{recipe.id}.yaml").write_text(yaml.safe_dump(data))
        book = RecipeBook(work / "recipes", lambda r: open_engine(r.detector_spec(), options), warm_max=len(recipes),
                          warm_shape=(frames[0].shape[0], frames[0].shape[1], args.pixel_format))  # fmt: skip
        assert book.switch(recipes[0].id, "bench").ok  # noqa: S101
        source = TriggeredSource("cam1", args.pixel_format, frames, truths)
        sinks, sim = result_sinks(args.plc, work)
        log = ResultLog(work / "results.db", None)
        station = Station("bench", book, [source], sinks, log, queue_size=4, fetch_timeout_s=0.5, archive_ng=False)
        parts = PartLog()
        station.observers.append(parts)
        try:
            station.start()
            for sink in sinks:
                wait = getattr(sink, "wait_connected", None)
                if wait is not None:
                    wait(10.0)
            yield station, source, parts
        finally:
            station.stop()
            if sim is not None:
                from tools.bench.plc_latency import stop_process

                stop_process(sim)


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _first(parts: list[DecidedPart], steady: dict[str, float]) -> dict[str, Any]:
    first = [round(p.latency_ms, 3) for p in parts[:FIRST_PARTS]]
    return {"first_ms": first, "worst_ms": max(first) if first else None,
            "over_steady_p99": sum(v > steady["p99"] for v in first),
            "fail_safe": sum(p.fail_safe for p in parts[:FIRST_PARTS]),
            "fail_safe_reasons": dict(Counter(p.reason for p in parts[:FIRST_PARTS] if p.fail_safe))}  # fmt: skip


def bench_idle(recipe: Recipe, options: EngineOptions, frames: list[np.ndarray], truths: list[GroundTruth],
               args: argparse.Namespace, gaps_s: list[float], rate_hz: float, n_steady: int) -> dict[str, Any]:  # fmt: skip
    with station_running([recipe], options, frames, truths, args) as (_, source, log):
        pacer = Pacer(source, log, 1.0 / rate_hz)
        pacer.run(args.warmup)
        steady_parts = pacer.run(n_steady)
        steady = percentiles(np.array([p.latency_ms for p in steady_parts]))
        rows = []
        for gap in gaps_s:
            cpu0, t0 = _cpu_s(), time.perf_counter()
            time.sleep(gap)
            idle_cpu_pct = (_cpu_s() - cpu0) / (time.perf_counter() - t0) * 100
            burst = pacer.run(FIRST_PARTS)
            rows.append({"gap_s": gap, **_first(burst, steady), "idle_cpu_pct": round(idle_cpu_pct, 2)})
    return {"rate_hz": rate_hz, "steady_ms": steady, "gaps": rows, "keep_warm_s": getattr(args, "keep_warm_s", None)}


def bench_switch(recipe: Recipe, options: EngineOptions, frames: list[np.ndarray], truths: list[GroundTruth],
                 args: argparse.Namespace, rate_hz: float, n_steady: int) -> dict[str, Any]:  # fmt: skip
    warm, cold = recipe_copy(recipe, "warm", 1000), recipe_copy(recipe, "cold", 2000)
    with station_running([recipe, warm, cold], options, frames, truths, args) as (station, source, log):
        station.book.prepare(warm.id)  # loaded and warmed before the line asks for it
        pacer = Pacer(source, log, 1.0 / rate_hz)
        pacer.run(args.warmup)
        steady_parts = pacer.run(n_steady)
        steady = percentiles(np.array([p.latency_ms for p in steady_parts]))
        out: dict[str, Any] = {"rate_hz": rate_hz, "steady_ms": steady}
        for kind, target in (("warm", warm), ("cold", cold)):
            start = log.count()
            stop = threading.Event()
            triggering = threading.Thread(target=pacer.run, args=(1_000_000, stop), name="bench-trigger")
            triggered0 = pacer.triggered
            triggering.start()
            time.sleep(5 / rate_hz)  # the line running on the old recipe
            t_request = time.perf_counter()
            result = station.request_switch(target.id, "bench")
            t_ready = time.perf_counter()
            time.sleep((FIRST_PARTS + 5) / rate_hz)  # parts on the new recipe
            stop.set()
            triggering.join()
            pacer.wait_decided(start + pacer.triggered - triggered0)
            parts = log.since(start)
            during = [p for p in parts if t_request <= p.t_ready < t_ready]
            after = [p for p in parts if p.recipe_id == target.id]
            out[kind] = {
                "ok": result.ok, "message": result.message, "switch_s": round(t_ready - t_request, 4),
                "prepare_s": round(result.prepare_s, 4) if kind == "cold" else 0.0,
                "triggered": pacer.triggered - triggered0, "decided": len(parts),
                "fail_safe": sum(p.fail_safe for p in parts),
                "fail_safe_reasons": dict(Counter(p.reason for p in parts if p.fail_safe)),
                "during_switch": {"parts": len(during), "worst_ms": round(max((p.latency_ms for p in during), default=0.0), 3),
                                  "judged_by_old_recipe": sum(p.recipe_id != target.id for p in during)},
                "after": _first(after, steady),
            }  # fmt: skip
    return out


def print_idle(result: dict[str, Any]) -> None:
    s = result["steady_ms"]
    warm = f", keep-warm every {result['keep_warm_s']} s" if result.get("keep_warm_s") else ""
    print(f"\nidle phase ({result['rate_hz']:.1f} Hz{warm}): steady t_ready->verdict p50 {s['p50']:.2f} / p99 {s['p99']:.2f} ms")
    print(f"{'gap s':>8}  {'first five parts (ms)':<44}{'> p99':>6}{'fail-safe':>10}{'idle CPU %':>11}")
    for row in result["gaps"]:
        first = " ".join(f"{v:.2f}" for v in row["first_ms"])
        print(f"{row['gap_s']:>8g}  {first:<44}{row['over_steady_p99']:>6}{row['fail_safe']:>10}{row['idle_cpu_pct']:>11.2f}")


def print_switch(result: dict[str, Any]) -> None:
    s = result["steady_ms"]
    print(f"\nrecipe switch ({result['rate_hz']:.1f} Hz): steady p50 {s['p50']:.2f} / p99 {s['p99']:.2f} ms")
    for kind in ("warm", "cold"):
        r = result[kind]
        d, a = r["during_switch"], r["after"]
        first = " ".join(f"{v:.2f}" for v in a["first_ms"])
        print(f"  {kind}: {'ok' if r['ok'] else 'REFUSED ' + r['message']}, ready after {r['switch_s'] * 1000:.0f} ms; "
              f"{r['triggered']} parts triggered, {r['decided']} decided, fail-safe {r['fail_safe']}; "
              f"{d['parts']} parts during the switch (worst {d['worst_ms']:.2f} ms, judged by the old recipe); "
              f"first five on the new recipe: {first} ms ({a['over_steady_p99']} over steady p99)")  # fmt: skip
