"""``linecheck bench``: the real station code against the naive loop and the raw engine, on
the same frames and model, in one run (see README "Performance").

Pipeline latency is measured with the camera paced below capacity (what a line sees: the
part is in the queue alone); pipeline throughput with a back-pressured camera (the most the
station sustains). Warm-up iterations are excluded everywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from line.loop.part_timeline import PartTimeline
from tools.bench.inputs import bench_recipe, engine_options, make_frames, require_int8, ungated_int8_recipe
from tools.bench.phases import bench_naive, bench_pipeline, in_fresh_process, measure_engine

# Paths relative to the current folder (a source checkout's root, for the files below that only
# it has): the bench runs from an installed wheel too, and never writes next to its own code.
CAMERA_CONFIGS = Path("configs")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def run_inference_bench(args: argparse.Namespace) -> dict[str, Any]:
    recipe = bench_recipe(args)
    options = engine_options(args)
    frames, truths = make_frames(args.width, args.height, args.pixel_format)
    n = args.frames
    print(f"bench: model={args.model} backend={args.backend} frames={args.width}x{args.height} {args.pixel_format} "
          f"cameras={args.cameras} n={n}", file=sys.stderr)  # fmt: skip
    fresh = not args.one_process
    raw = in_fresh_process(fresh, measure_engine, recipe, options, frames[0], args.pixel_format, n, args.warmup)
    print(f"  engine: p50 {raw['latency_ms']['p50']:.2f} ms", file=sys.stderr)
    if args.no_naive:  # iterating on the station alone (profiles): the comparison is skipped, and says so
        nan = float("nan")
        naive: dict[str, Any] = {"fps": nan, "latency_ms": {"p50": nan, "p99": nan, "p999": nan, "max": nan, "n": 0}, "skipped": True}
    else:
        naive = in_fresh_process(fresh, bench_naive, recipe, frames, tuple(raw["input_hw"]), args.backend != "onnxruntime",
                                 n, args.warmup)  # fmt: skip
    print(f"  naive: {naive['fps']:.1f} fps, p50 {naive['latency_ms']['p50']:.2f} ms", file=sys.stderr)
    saturated = in_fresh_process(fresh, bench_pipeline, recipe, options, frames, truths, args, 0.0, n)
    print(f"  pipeline (back-pressured): {saturated['fps']:.1f} fps", file=sys.stderr)
    # latency is measured at half the sustainable rate (a part finds the station idle, as on a
    # line) unless a rate is asked for: N cameras at R Hz each is the sustained-load question
    rate = args.rate_hz or 0.5 * saturated["fps"] / args.cameras
    paced = in_fresh_process(fresh, bench_pipeline, recipe, options, frames, truths, args, rate, n)
    print(f"  pipeline (paced {paced['rate_hz']:.1f} Hz/camera): p50 {paced['latency_ms']['p50']:.2f} ms", file=sys.stderr)
    same_instance = paced.pop("_engine_same_instance", None)
    same_paced = paced.pop("_engine_same_instance_paced", None)
    saturated.pop("_engine_same_instance", None)
    saturated.pop("_engine_same_instance_paced", None)
    pipeline = dict(paced)
    pipeline["fps"] = saturated["fps"]
    pipeline["paced_fps"] = paced["fps"]
    pipeline["saturated_latency_ms"] = saturated["latency_ms"]
    saturated.pop("_samples", None)
    saturated.pop("part_timelines", None)  # its parts queue on purpose: the paced run's are the ones to read
    # the paced run is the line's view: its drops and deadline misses are the ones that count.
    # The back-pressured run queues ``pool`` frames per camera on purpose (Little's law), so
    # its misses only say the budget is shorter than that queue; they are reported apart.
    pipeline["saturated_dropped"] = saturated["dropped"]
    pipeline["saturated_deadline_misses"] = saturated["deadline_misses"]
    pipeline["offered_fps"] = rate * args.cameras
    return {
        "machine": machine(), "model": args.model, "backend": args.backend, "frame": [args.height, args.width],
        "pixel_format": args.pixel_format, "cameras": args.cameras, "fp16": args.fp16, "precision": recipe.model.precision,
        "pipeline": pipeline, "naive": naive, "engine": raw, "engine_station_instance": same_instance,
        "engine_station_instance_paced": same_paced,
        "rss_mb": paced["rss_mb"], "gpu_memory_mb": paced["gpu_memory_mb"], "fresh_processes": fresh,
    }  # fmt: skip


def run_precision_ab(args: argparse.Namespace, rounds: int = 2) -> dict[str, Any]:
    """fp32 against the gated INT8 model (CPU engine), engine alone and the whole station, in
    alternating runs (fp32, int8, int8, fp32, ...): on a shared host the moment moves as
    much as the model, and alternation gives both the same moments."""
    from tools.bench.phases import bench_engine_ab

    args.precision = None
    fp32 = bench_recipe(args)
    int8 = fp32.model_copy(update={"model": fp32.model.model_copy(update={"precision": "int8"})})
    if args.skip_gate:
        int8 = ungated_int8_recipe(int8, args)
    else:
        require_int8(int8)
    options = engine_options(args)
    frames, truths = make_frames(args.width, args.height, args.pixel_format)
    fresh = not args.one_process
    rate = args.rate_hz or args.first_part_rate_hz
    engine = in_fresh_process(fresh, bench_engine_ab, [fp32, int8], options, frames[0], args.pixel_format, args.frames,
                              args.warmup, 8, ["fp32", "int8"])  # fmt: skip
    station: dict[str, list[dict[str, Any]]] = {"fp32": [], "int8": []}
    recipes = {"fp32": fp32, "int8": int8}
    for i in range(rounds * 2):
        label = ("fp32", "int8", "int8", "fp32")[i % 4]
        run = in_fresh_process(fresh, bench_pipeline, recipes[label], options, frames, truths, args, rate, args.frames)
        station[label].append({"latency_ms": run["latency_ms"], "engine_ms": run["engine_ms"], "fail_safe": run["fail_safe"],
                               "process_events": run["process_events"]})  # fmt: skip
        print(f"  station {label}: p50 {run['latency_ms']['p50']:.2f} ms, engine p50 {run['engine_ms']['p50']:.2f} ms", file=sys.stderr)
    p50 = {k: float(np.median([r["latency_ms"]["p50"] for r in v])) for k, v in station.items()}
    out = {"machine": machine(), "model": args.model, "rate_hz": rate, "int8_gated": not args.skip_gate,
           "frame": [args.height, args.width], "pixel_format": args.pixel_format, "load_average": os.getloadavg(), "engine_alone": engine, "station": station,
           "station_p50_median_ms": p50, "station_ratio_fp32_over_int8": p50["fp32"] / p50["int8"]}  # fmt: skip
    e = engine
    print(f"\nINT8{' (NOT gated: --skip-gate)' if args.skip_gate else ''} against fp32 ({args.model}, CPU engine, alternating): engine alone p50 fp32 {e['fp32']['p50']:.2f} / int8 "
          f"{e['int8']['p50']:.2f} ms (x{e['ratio_p50']:.2f}); station t_ready->verdict at {rate:g} Hz, median of p50s "
          f"fp32 {p50['fp32']:.2f} / int8 {p50['int8']:.2f} ms (x{out['station_ratio_fp32_over_int8']:.2f})")  # fmt: skip
    return {"int8_ab": out}


def run_first_part_bench(args: argparse.Namespace) -> dict[str, Any]:
    """The idle and recipe-switch phases (``tools.bench.first_part``), each in a fresh process."""
    from tools.bench.first_part import bench_idle, bench_switch, print_idle, print_switch

    recipe = bench_recipe(args)
    options = engine_options(args)
    frames, truths = make_frames(args.width, args.height, args.pixel_format)
    fresh = not args.one_process
    rate, steady = args.first_part_rate_hz, args.first_part_steady
    out: dict[str, Any] = {"machine": machine(), "model": args.model, "backend": args.backend,
                           "frame": [args.height, args.width], "pixel_format": args.pixel_format,
                           "precision": recipe.model.precision}  # fmt: skip
    if args.what in ("first-part", "idle"):
        print(f"bench idle phase: gaps {args.idle_gaps} s at {rate} Hz ...", file=sys.stderr)
        out["idle"] = in_fresh_process(fresh, bench_idle, recipe, options, frames, truths, args, args.idle_gaps, rate, steady)
        print_idle(out["idle"])
    if args.what in ("first-part", "switch"):
        print(f"bench recipe-switch phase at {rate} Hz ...", file=sys.stderr)
        out["switch"] = in_fresh_process(fresh, bench_switch, recipe, options, frames, truths, args, rate, steady)
        print_switch(out["switch"])
    return out


def print_table(result: dict[str, Any]) -> None:
    print(f"\nmachine: {result['machine']}   model: {result['model']}   backend: {result['backend']}   "
          f"frames: {result['frame'][1]}x{result['frame'][0]} {result['pixel_format']}")  # fmt: skip
    print(f"{'':28}{'fps':>9}{'p50 ms':>9}{'p99 ms':>9}{'p99.9 ms':>10}{'max ms':>9}")
    for name, label in (("engine", "raw engine"), ("naive", "naive loop"), ("pipeline", "pipeline t_ready->verdict")):
        r = result[name]
        lat = r["latency_ms"]
        print(f"{label:28}{r['fps']:9.1f}{lat['p50']:9.2f}{lat['p99']:9.2f}{lat['p999']:10.2f}{lat['max']:9.2f}")
    for key, label in (("engine_station_instance", "raw engine, station instance"), ("engine_station_instance_paced", "  same, at the paced rate")):
        same = result.get(key)
        if same:
            lat = same["latency_ms"]
            fps = f"{same['fps']:9.1f}" if key == "engine_station_instance" else " " * 9  # paced: the pace, not a rate
            print(f"{label:28}{fps}{lat['p50']:9.2f}{lat['p99']:9.2f}{lat['p999']:10.2f}{lat['max']:9.2f}")
    same, same_paced = result.get("engine_station_instance"), result.get("engine_station_instance_paced")
    if same and same_paced:  # timed in alternating blocks: the difference is the pace's, not the moment's
        slower = same_paced["latency_ms"]["p50"] - same["latency_ms"]["p50"]
        print(f"  (the network at the paced rate, against back to back in alternating blocks: {slower:+.2f} ms at p50)")
    p = result["pipeline"]
    ack = p.get("plc_ack_ms", {})
    if ack.get("n"):
        print(f"{'pipeline t_ready->PLC ack':28}{'':9}{ack['p50']:9.2f}{ack['p99']:9.2f}{ack['p999']:10.2f}{ack['max']:9.2f}")
    print("stages (p50 / p99 ms): " + ", ".join(f"{k} {v['p50']:.2f}/{v['p99']:.2f}" for k, v in p["stages_ms"].items()))
    print(f"paced run: {result['cameras']} camera(s) x {p['rate_hz']:.1f} Hz offered {p['offered_fps']:.0f} fps, "
          f"decided {p['paced_fps']:.1f} fps, dropped {p['dropped']}, deadline misses {p['deadline_misses']} "
          f"(fail-safe {p['fail_safe']}); RSS {result['rss_mb']:.0f} MB"
          + (f", GPU memory in use {result['gpu_memory_mb']:.0f} MB" if result.get("gpu_memory_mb") else ""))  # fmt: skip
    gcp = p.get("gc_pause_ms", {})
    if gcp.get("n"):
        print(f"GC pauses during the paced run: {gcp['n']} (full {gcp['full']}), p99 {gcp['p99']:.2f} ms, max {gcp['max']:.2f} ms")
    events = p.get("process_events")
    if events:
        print("process during the paced run: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in events.items()))
    steal = p.get("host_steal_ms")
    if steal is not None:
        print(f"host during the paced run: {steal['steal_ms']:.0f} ms of vCPU time taken by the hypervisor (steal), "
              f"at most {steal['steal_max_cpu_ms']:.0f} ms from one vCPU"
              + (f"; GPU calls stalled over 10 ms with no cause of ours: {steal['gpu_stalls_over_10ms']} "
                 f"(the longest of the process {steal['gpu_stall_max_ms']:.1f} ms)" if "gpu_stalls_over_10ms" in steal else ""))  # fmt: skip
    busiest = p.get("busiest_threads")
    if busiest:
        print("busiest threads during the paced run (CPU ms / ms waiting for a CPU): "
              + ", ".join(f"{name} {ms}/{waited}" for name, ms, waited in busiest))
    after = p.get("after_run_ms")
    if after:  # the bench's own work once the run's window closed, while its last parts finish
        print(f"after the paced run: {after['in_flight']:.0f} parts in flight; "
              + ", ".join(f"{k.replace('_', ' ')} {v:.1f} ms" for k, v in after.items() if k != "in_flight"))  # fmt: skip
    print_timelines(p.get("part_timelines"))


def print_timelines(timelines: dict[str, Any] | None, show: int = 8) -> None:
    """Where the paced run's late parts (and its slowest on-time ones) spent their time."""
    if not timelines:
        return
    late, slowest = timelines["late"], timelines["slowest_on_time"]
    if timelines["late_parts"]:
        steps = ", ".join(f"{step} in {n}" for step, n in timelines["late_largest_steps"].items())
        kept = "each" if len(late) == timelines["late_parts"] else f"the first {len(late)}"
        print(f"late parts: {timelines['late_parts']}; the largest step of {kept}: {steps}")
    for entry in late[:show] + slowest[:3]:
        print(PartTimeline(entry["camera"], entry["part"], entry["late"], entry["at_s"], entry["steps_ms"],
                           entry["engine_ms"], entry["batch"]).describe())  # fmt: skip


def plot(result: dict[str, Any], path: str) -> None:
    """Latency distributions (empirical CDFs) of the raw engine, the naive loop and the pipeline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    labels = {"engine": "raw engine", "naive": "naive loop", "pipeline": "pipeline (t_ready → verdict)"}
    for name, label in labels.items():
        values = np.sort(np.asarray(result[name].get("_samples", [])))
        if len(values):
            ax.step(values, np.arange(1, len(values) + 1) / len(values), where="post",
                    label=f"{label}: p50 {result[name]['latency_ms']['p50']:.2f} ms")  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("latency (ms, log scale)")
    ax.set_ylabel("share of frames ≤ latency")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(f"{result['model']} · {result['backend']} · {result['frame'][1]}x{result['frame'][0]} · "
                 f"{result['machine'][:48]}", fontsize=8)  # fmt: skip
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def camera_bench(duration_s: float) -> dict[str, Any]:
    """Acquisition overhead (buffer ready → frame handed over) for both real backends:
    harvesters + the genicam wheel's viky.cti, and Aravis against its fake GigE camera."""
    out: dict[str, Any] = {}
    for name, config, extra in (("genicam", "genicam-viky.yaml", []), ("aravis", "aravis-fake.yaml", ["--spawn-fake"])):
        path = CAMERA_CONFIGS / config
        if not path.exists():
            out[name] = {"error": [f"{path} not found: the camera bench runs from a source checkout's root"]}
            continue
        cmd = [sys.executable, "-m", "tools.bench.acquisition", str(path), "--duration", str(duration_s), *extra]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 60)
        try:
            out[name] = json.loads(proc.stdout)
        except json.JSONDecodeError:
            out[name] = {"error": (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]}
    return out


def main(args: argparse.Namespace) -> int:
    result: dict[str, Any] = {}
    if args.what in ("cpu", "inference", "all"):
        result = run_inference_bench(args)
        print_table(result)
        if args.plot:
            plot(result, args.plot)
        for name in ("engine", "naive", "pipeline"):
            result[name].pop("_samples", None)
    if args.what == "int8":
        result.update(run_precision_ab(args))
    if args.what in ("first-part", "idle", "switch"):
        result.update(run_first_part_bench(args))
    if args.what in ("plc", "all"):
        from tools.bench.plc_latency import measure_write_latency

        result["plc_write_ms"] = measure_write_latency(2000)
        print(f"PLC write (client -> simulator, loopback): {result['plc_write_ms']}")
    if args.what in ("mes", "all"):
        from tools.bench.mes import run_mes_bench

        result["mes"] = run_mes_bench(args, duration_s=args.duration or 30.0)
        m = result["mes"]
        print(f"station t_ready->verdict alone p50 {m['alone_ms']['p50']:.2f} / p99 {m['alone_ms']['p99']:.2f} ms; with "
              f"{m['subscribers']} subscribers + {m['pollers']} GetResults pollers p50 {m['loaded_ms']['p50']:.2f} / "
              f"p99 {m['loaded_ms']['p99']:.2f} ms (p99 {m['p99_change_pct']:+.1f} %)")  # fmt: skip
        print(f"alone again p50 {m['alone_again_ms']['p50']:.2f} / p99 {m['alone_again_ms']['p99']:.2f} ms "
              f"(run-to-run p99 {m['spread_p99_pct']:+.1f} %)")  # fmt: skip
        if m["mv_loaded_ms"]:
            events = m["mv_load"].get("events") or [0]
            print(f"with {m['mv_subscribers']} OPC 40100 ResultReadyEvent subscribers on the Server object p50 "
                  f"{m['mv_loaded_ms']['p50']:.2f} / p99 {m['mv_loaded_ms']['p99']:.2f} ms "
                  f"(p99 {m['mv_p99_change_pct']:+.1f} %; events per subscriber min {min(events)} max {max(events)}, "
                  f"errors {len(m['mv_load'].get('errors', []))})")  # fmt: skip
    if args.what == "uplink":
        from tools.bench.uplink import print_uplink, run_uplink_bench

        result["uplink"] = run_uplink_bench(args, duration_s=args.duration or 20.0, rate_hz=args.rate_hz or 20.0)
        print_uplink(result["uplink"])
    if args.what in ("camera", "all"):
        result["camera"] = camera_bench(duration_s=args.duration or 5.0)
        print(f"camera acquisition: {result['camera']}")
    if args.json:
        print(json.dumps(result, default=float))
    return 0
