"""Short GPU benchmark: preprocess (GPU vs CPU), ORT CUDA engine p50 with/without CUDA graphs,
decode (GPU prefilter vs CPU), end-to-end detect. Prints a table, writes JSON.

    python -m tools.gpu.gpu_bench --yolov8n var/models/yolov8n.onnx [--demo recipes/demo/demo-parts.onnx]
        [--json out.json] [--iters 200]

Frames are 1280x1024 (Mono8, BayerRG8, RGB8) letterboxed into a 640-wide input (512x640).
Device times come from CUDA events; host times from perf_counter around a synchronized call.
Not a test: no assertions on speed (tests/gpu checks correctness).
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from inference.config import EngineOptions, InputProfile, ModelConfig
from inference.decode import decode
from inference.engine import DetectorSpec, ImageInput
from inference.gpu.cuda import BufferPool, Device, Event, Stream
from inference.gpu.decode import GpuDecoder
from inference.gpu.host_register import HostRegistry
from inference.gpu.preprocess import GpuPreprocessor
from inference.letterbox import LetterboxCanvas, LetterboxGeometry, compute_geometry, to_tensor
from inference.pixels import prepare

FRAME = (1024, 1280)
PROFILE = InputProfile(min=(320, 320), opt=(512, 640), max=(640, 640))


def _stats(samples: list[float]) -> dict[str, float]:
    a = np.asarray(samples)
    return {"p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)), "n": len(a)}


def device_times(
    stream: Stream, fn: Callable[[], None], iters: int, warmup: int = 10
) -> tuple[dict[str, float], dict[str, float]]:
    """(device ms per call from events, host wall ms per synchronized call)."""
    e0, e1 = Event(), Event()
    dev, host = [], []
    for i in range(warmup + iters):
        t0 = time.perf_counter()
        e0.record(stream)
        fn()
        e1.record(stream)
        e1.synchronize()
        t1 = time.perf_counter()
        if i >= warmup:
            dev.append(e1.elapsed_ms(e0))
            host.append((t1 - t0) * 1e3)
    e0.close()
    e1.close()
    return _stats(dev), _stats(host)


def host_times(fn: Callable[[], Any], iters: int, warmup: int = 3) -> dict[str, float]:
    out = []
    for i in range(warmup + iters):
        t0 = time.perf_counter()
        fn()
        if i >= warmup:
            out.append((time.perf_counter() - t0) * 1e3)
    return _stats(out)


def _cpu_preprocess(
    frame: np.ndarray,
    fmt: str,
    geometry: LetterboxGeometry,
    canvas: dict[int, LetterboxCanvas],
    tensor: np.ndarray,
) -> None:
    """The CPU engine's preprocessing (pixels.prepare → canvas → to_tensor), cached buffers."""
    p = prepare(frame, fmt, 3)
    ch = p.image.shape[2] if p.image.ndim == 3 else 1
    c = canvas.setdefault(ch, LetterboxCanvas(geometry, ch))
    to_tensor(c.fill(p.image), order=p.order, channels=3, out=tensor)


def bench_preprocess(iters: int) -> dict[str, Any]:
    device, stream, pool, registry = Device(0), Stream(), BufferPool(), HostRegistry()
    rng = np.random.default_rng(0)
    geometry = compute_geometry(*FRAME, PROFILE)
    results: dict[str, Any] = {"input": [geometry.input_h, geometry.input_w]}
    for fmt, shape in (("Mono8", FRAME), ("BayerRG8", FRAME), ("RGB8", (*FRAME, 3))):
        frame = rng.integers(0, 256, shape, dtype=np.uint8)
        registry.register([frame])
        for half in (False, True):
            pre = GpuPreprocessor(device, stream, pool, registry, channels=3, half=half)
            out = pool.device(f"bench-pre:{half}", pre.output_nbytes(geometry, 1))
            run = functools.partial(pre.run, [frame], fmt, geometry, out.ptr)
            dev, host = device_times(stream, run, iters)
            results[f"gpu {fmt} {'fp16' if half else 'fp32'}"] = {
                "device_ms": dev,
                "host_ms": host,
                "host_copies": pre.counters.host_copies,
            }

        cpu = functools.partial(
            _cpu_preprocess, frame, fmt, geometry, {}, np.empty((1, 3, *geometry.input_shape), np.float32)
        )
        results[f"cpu {fmt} fp32"] = {"host_ms": host_times(cpu, max(10, iters // 5))}
    registry.close()
    pool.close()
    stream.close()
    return results


def _spec(path: Path, classes: int, threshold: float = 0.25) -> DetectorSpec:
    model = ModelConfig(onnx=path, layout="yolov8", input=PROFILE)
    return DetectorSpec(model, tuple(f"c{i}" for i in range(classes)), (threshold,) * classes)


def _classes_of(path: Path) -> int:
    """Class count of a yolov8-layout model: one CPU run at 320x320 ([B, 4 + C, N] out)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    x = np.zeros((1, 3, 320, 320), np.float16 if "16" in inp.type else np.float32)
    return int(session.run(None, {inp.name: x})[0].shape[1]) - 4


def bench_engine(name: str, path: Path, iters: int, cache: Path) -> dict[str, Any]:
    from inference.gpu.onnxruntime_cuda import OnnxRuntimeCudaEngine

    results: dict[str, Any] = {}
    spec = _spec(path, _classes_of(path))
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, FRAME, dtype=np.uint8)
    for fp16 in (False, True):
        for graphs in (False, True):
            label = f"{name} {'fp16' if fp16 else 'fp32'} {'graph' if graphs else 'nograph'}"
            opts = EngineOptions(
                backend="onnxruntime", device="cuda", fp16=fp16, cuda_graphs=graphs, engine_cache_dir=cache
            )
            try:
                engine = OnnxRuntimeCudaEngine(spec, opts)
            except Exception as exc:  # noqa: BLE001 - report and go on with the other variants
                results[label] = {"error": str(exc)[:300]}
                continue
            with engine:
                engine.register_host_buffers([frame])
                image = ImageInput(frame, "Mono8")
                engine.detect([image])
                ptr, geometry, batch = engine.preprocess_only([image])
                infer = functools.partial(engine.infer_device, ptr, batch, geometry.input_h, geometry.input_w)
                dev, host = device_times(engine.stream, infer, iters)
                e2e = host_times(functools.partial(engine.detect, [image]), iters // 2)
                last = engine.detect([image])[0]
                results[label] = {
                    "engine_device_ms": dev,
                    "engine_host_ms": host,
                    "detect_e2e_ms": e2e,
                    "stage_ms": last.timings_ms,
                    "cuda_graphs_active": engine.cuda_graphs_active if graphs else False,
                    "graph_error": engine.cuda_graph_error,
                    "host_copies": engine.counters.host_copies,
                    "dma_uploads": engine.counters.dma_uploads,
                }
    return results


def bench_decode(iters: int, classes: int = 80, n: int = 6720) -> dict[str, Any]:
    device, stream, pool = Device(0), Stream(), BufferPool()
    rng = np.random.default_rng(2)
    out = rng.random((1, 4 + classes, n), dtype=np.float32)
    out[:, :4] *= 640
    out[:, 4:] *= np.float32(0.05)  # background: every class score low...
    hits = rng.integers(0, n, 40)  # ...and 40 candidates over the threshold, like a real frame
    out[0, 4 + rng.integers(0, classes, 40), hits] = rng.uniform(0.3, 0.95, 40).astype(np.float32)
    thresholds = np.full(classes, 0.25, np.float32)
    dev_out = pool.device("bench-dec", out.nbytes)
    dev_out.upload(out, stream)
    dec = GpuDecoder(device, stream, pool, "yolov8", thresholds)
    gpu = host_times(lambda: dec.decode(dev_out.ptr, out.shape, False), iters)
    host = pool.pinned("bench-dec-host", out.nbytes).view(np.float32, out.shape)

    def cpu() -> None:
        dev_out.download(host, stream)
        stream.synchronize()
        decode("yolov8", host, thresholds)

    cpu_ms = host_times(cpu, iters)
    kept = len(dec.decode(dev_out.ptr, out.shape, False)[0].scores)
    pool.close()
    stream.close()
    return {
        "gpu_prefilter_ms": gpu,
        "cpu_download_decode_ms": cpu_ms,
        "candidates": kept,
        "output": list(out.shape),
    }


def _table(results: dict[str, Any]) -> str:
    lines = [f"{'what':44s} {'device p50':>11s} {'host p50':>9s} {'e2e p50':>8s}"]
    for section, entries in results.items():
        if not isinstance(entries, dict):
            continue
        for label, r in entries.items():
            if not isinstance(r, dict):
                continue
            if "error" in r:
                lines.append(f"{section + ': ' + label:44s} ERROR {r['error'][:60]}")
                continue
            dev = r.get("device_ms") or r.get("engine_device_ms") or {}
            host = r.get("host_ms") or r.get("engine_host_ms") or r.get("gpu_prefilter_ms") or {}
            e2e = r.get("detect_e2e_ms") or {}
            fmt = lambda d: f"{d['p50']:.3f}" if d else "-"  # noqa: E731
            lines.append(f"{section + ': ' + label:44s} {fmt(dev):>11s} {fmt(host):>9s} {fmt(e2e):>8s}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--yolov8n", type=Path)
    ap.add_argument("--demo", type=Path)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/linecheck-engines"))
    args = ap.parse_args(argv)
    dev = Device(0)
    results: dict[str, Any] = {"device": {"name": dev.name, "cc": list(dev.compute_capability)}}
    results["preprocess"] = bench_preprocess(args.iters)
    decode_res = bench_decode(args.iters)
    results["decode"] = {"yolov8n-output": decode_res}
    for name, path in (("demo", args.demo), ("yolov8n", args.yolov8n)):
        if path is not None and path.is_file():
            results[f"engine {name}"] = bench_engine(name, path, args.iters, args.cache)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    print(_table(results))
    print(
        f"decode: gpu prefilter+copy+host decode p50 {decode_res['gpu_prefilter_ms']['p50']:.3f} ms, "
        f"cpu download+decode p50 {decode_res['cpu_download_decode_ms']['p50']:.3f} ms, {decode_res['candidates']} candidates"
    )


if __name__ == "__main__":
    main()
