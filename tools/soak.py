"""Soak test runner: run a station as a real process for a long time and watch what it
holds on to (``python -m tools.soak --duration S --config C --json``).

Why a separate process and these three numbers: a station runs for weeks, so a leak that
costs one megabyte an hour or one file descriptor per reconnect ends a shift with an
OOM-kill or ``EMFILE``, long after any unit test has passed. We therefore start
``linecheck run`` as a child (exactly what a deployment runs), sample its resident set size,
thread count and open file descriptors with psutil every few seconds, and judge only the
samples after a warm-up (allocator arenas, ONNX Runtime's first runs, SQLite's page cache
and the NG-image archive filling up to its retention limit all grow memory at start by
design). RSS growth is a least-squares slope extrapolated to an hour, which is robust to
the saw-tooth of the allocator; threads and fds are compared as medians of the first and
last thirds of the judged samples, so a file open for a moment (an NG image being written)
is not taken for a leak. Helper processes of the station (the OPC UA server for MES runs in
its own process) are sampled too and their summed RSS is judged by the same limit.

Criteria (docs/architecture.md, durability): RSS growth < 20 MB/hour, no growth in threads
or fds, and every part got a verdict (``verdicts == parts`` in the station's own summary).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

RSS_LIMIT_MB_PER_H = 20.0
_PACED_KINDS = ("synthetic", "replay")  # camera kinds whose options take rate_hz


@dataclass(frozen=True)
class Sample:
    t_s: float  # since the child started
    rss_mb: float
    threads: int
    fds: int
    cpu_s: float  # user + system CPU time so far
    children_rss_mb: float = 0.0  # helper processes (the OPC UA server for MES), summed
    children: int = 0


def _fit_slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs (0 with fewer than two distinct xs)."""
    if len(xs) < 2:
        return 0.0
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx


def _third_medians(values: list[int]) -> tuple[float, float]:
    """Median of the first and of the last third (at least one sample each)."""
    k = max(1, len(values) // 3)
    return float(statistics.median(values[:k])), float(statistics.median(values[-k:]))


def analyse(samples: list[Sample], warmup_s: float) -> dict[str, Any]:
    """The figures and the verdict for samples taken after ``warmup_s``."""
    judged = [s for s in samples if s.t_s >= warmup_s]
    if len(judged) < 3:
        return {"judged_samples": len(judged), "ok": False, "why": "fewer than 3 samples after the warm-up"}
    hours = [s.t_s / 3600.0 for s in judged]
    slope = _fit_slope(hours, [s.rss_mb for s in judged])
    th0, th1 = _third_medians([s.threads for s in judged])
    fd0, fd1 = _third_medians([s.fds for s in judged])
    span = judged[-1].t_s - judged[0].t_s
    cpu = (judged[-1].cpu_s - judged[0].cpu_s) / span * 100 if span > 0 else 0.0
    out: dict[str, Any] = {
        "judged_samples": len(judged),
        "judged_s": round(span, 1),
        "rss_mb": {"start": round(judged[0].rss_mb, 2), "end": round(judged[-1].rss_mb, 2),
                   "min": round(min(s.rss_mb for s in judged), 2), "max": round(max(s.rss_mb for s in judged), 2)},
        "rss_growth_mb_per_h": round(slope, 3),
        "threads": {"start": judged[0].threads, "end": judged[-1].threads, "max": max(s.threads for s in judged),
                    "growth": th1 - th0},
        "fds": {"start": judged[0].fds, "end": judged[-1].fds, "max": max(s.fds for s in judged), "growth": fd1 - fd0},
        "cpu_percent": round(cpu, 1),
    }  # fmt: skip
    if any(s.children for s in judged):
        child_slope = _fit_slope(hours, [s.children_rss_mb for s in judged])
        out["children"] = {"count": judged[-1].children, "rss_mb_end": round(judged[-1].children_rss_mb, 2),
                           "rss_growth_mb_per_h": round(child_slope, 3)}  # fmt: skip
    problems = []
    if "children" in out and out["children"]["rss_growth_mb_per_h"] >= RSS_LIMIT_MB_PER_H:
        problems.append(f"helper processes' RSS grows {out['children']['rss_growth_mb_per_h']:.1f} MB/h")
    if slope >= RSS_LIMIT_MB_PER_H:
        problems.append(f"RSS grows {slope:.1f} MB/h (limit {RSS_LIMIT_MB_PER_H})")
    if th1 > th0:
        problems.append(f"threads grow {th0:g} -> {th1:g}")
    if fd1 > fd0:
        problems.append(f"open fds grow {fd0:g} -> {fd1:g}")
    out["ok"] = not problems
    out["why"] = "; ".join(problems)
    return out


def soak_config(config_path: Path, rate_hz: float | None, out_dir: Path) -> Path:
    """A copy of the station config with every path made absolute and paced cameras set to
    ``rate_hz`` (the original file is never touched; relative paths would break in a copy)."""
    from line.app.assembly import load_station_config  # validates the original (ConfigError on a bad file)

    config = load_station_config(config_path)
    data = config.model_dump(mode="json", exclude_unset=False)
    if data.get("hmi", {}).get("enabled"):
        data["hmi"]["port"] = 0  # never collide with the HMI of a running line
    if rate_hz is not None:
        for camera in data["cameras"]:
            if camera.get("kind") in _PACED_KINDS:
                camera.setdefault("options", {})["rate_hz"] = rate_hz
    path = out_dir / "soak-station.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    load_station_config(path)  # the copy must validate the same way
    return path


def _sample(proc: Any, t0: float) -> Sample:
    import psutil

    with proc.oneshot():
        cpu = proc.cpu_times()
        rss, threads, fds = proc.memory_info().rss, proc.num_threads(), proc.num_fds()
    children_rss, children = 0, 0
    for child in proc.children(recursive=True):
        try:
            children_rss += child.memory_info().rss
            children += 1
        except psutil.Error:  # exited between the listing and the read
            continue
    return Sample(time.monotonic() - t0, rss / 2**20, threads, fds, cpu.user + cpu.system,
                  children_rss / 2**20, children)  # fmt: skip


def run_soak(
    config_path: Path | str,
    duration_s: float,
    rate_hz: float | None = 50,
    *,
    interval_s: float | None = None,
    warmup_s: float | None = None,
    state_dir: Path | str | None = None,
    keep_state: bool = False,
) -> dict[str, Any]:
    """Run ``linecheck run`` on ``config_path`` for ``duration_s`` and return the figures.

    ``interval_s`` defaults to 5 s (1 s for runs under two minutes); ``warmup_s`` to 20 % of
    the run, at most five minutes. The result log, journal and NG archive go to
    ``state_dir`` (default: a temporary folder, removed afterwards unless ``keep_state``), and
    a Modbus server role and the HMI (if enabled) listen on free ports, so a soak never disturbs
    a configured line.
    """
    import psutil  # dev extra: only the soak runner needs it

    if duration_s <= 0:
        raise ValueError("duration_s must be > 0")
    interval = interval_s if interval_s is not None else (1.0 if duration_s < 120 else 5.0)
    warmup = warmup_s if warmup_s is not None else min(300.0, 0.2 * duration_s)
    work = Path(tempfile.mkdtemp(prefix="linecheck-soak-"))
    state = Path(state_dir) if state_dir is not None else work / "state"
    try:
        config = soak_config(Path(config_path), rate_hz, work)
        log_path = work / "station.log"
        cmd = [sys.executable, "-m", "line", "run", "-c", str(config), "--duration", str(duration_s), "--json",
               "--state-dir", str(state), "--port", "0"]  # fmt: skip
        samples: list[Sample] = []
        with log_path.open("w") as log_file:
            child = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})  # fmt: skip
            t0 = time.monotonic()
            try:
                proc = psutil.Process(child.pid)
                next_t = t0 + min(interval, 1.0)
                while child.poll() is None:
                    try:
                        child.wait(max(0.0, next_t - time.monotonic()))
                        break  # exited
                    except subprocess.TimeoutExpired:
                        pass
                    try:
                        samples.append(_sample(proc, t0))
                    except psutil.NoSuchProcess:
                        break
                    next_t += interval
                rc = child.wait(max(60.0, duration_s * 0.1))
            finally:
                if child.poll() is None:
                    child.kill()
                    child.wait()
        lines = log_path.read_text(errors="replace").splitlines()
        summary: dict[str, Any] | None = None
        if lines and lines[-1].startswith("{"):
            summary = json.loads(lines[-1])
        result: dict[str, Any] = {
            "config": str(config_path),
            "duration_s": duration_s,
            "rate_hz": rate_hz,
            "interval_s": interval,
            "warmup_s": warmup,
            "returncode": rc,
            "station": summary,
            **analyse(samples, warmup),
            "samples": [asdict(s) for s in samples],
        }
        if summary is None:
            result["ok"] = False
            result["why"] = (
                result.get("why", "") + "; no summary from the station: " + " | ".join(lines[-5:])
            ).lstrip("; ")
        elif summary.get("verdicts") != summary.get("parts"):
            result["ok"] = False
            result["why"] = (
                result["why"] + f"; verdicts {summary.get('verdicts')} != parts {summary.get('parts')}"
            ).lstrip("; ")
        return result
    finally:
        if not keep_state:
            shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.soak", description=__doc__.splitlines()[0])
    p.add_argument("--config", "-c", required=True, help="station config (YAML)")
    p.add_argument("--duration", type=float, required=True, help="seconds")
    p.add_argument(
        "--rate-hz",
        type=float,
        default=50.0,
        help="parts/s of a synthetic or replay camera (0: as configured)",
    )
    p.add_argument("--interval", type=float, default=None, help="seconds between samples")
    p.add_argument("--warmup", type=float, default=None, help="seconds not judged at the start")
    p.add_argument("--state-dir", default=None, help="keep the result log here (default: a temporary folder)")
    p.add_argument("--json", action="store_true", help="print the full result (with samples) as JSON")
    args = p.parse_args(argv)
    from line.errors import ConfigError

    try:
        result = run_soak(args.config, args.duration, args.rate_hz or None, interval_s=args.interval,
                          warmup_s=args.warmup, state_dir=args.state_dir)  # fmt: skip
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
    else:
        brief = {k: v for k, v in result.items() if k != "samples"}
        print(json.dumps(brief, indent=2))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
