"""Where the GPU detect path spends its time, host side and device side, per step.

    python -m tools.gpu.gpu_profile var/models/yolov8n.onnx [--fp16] [--batch 1 8] [--json F]

For each batch size it runs the engine's own steps (preprocess enqueue, network enqueue,
decode with its synchronisations, host NMS) with a host timestamp after each, in two rhythms:
``hot`` (back to back, as the raw-engine bench) and ``paced`` (a 4 ms sleep between calls,
as a line at a few hundred parts/s sees it: cold caches, a sleeping CPU). Device intervals
come from CUDA events. Not a test: it prints a table and writes JSON (issue "Benchmarks":
profile first, then cut).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from inference.config import EngineOptions, InputProfile, ModelConfig
from inference.engine import DetectorSpec, ImageInput
from inference.gpu.cuda import Event

FRAME = (1024, 1280)


def _p(values: list[float]) -> dict[str, float]:
    a = np.asarray(values)
    return {"p50": round(float(np.percentile(a, 50)), 4), "p99": round(float(np.percentile(a, 99)), 4)}


def profile(engine: Any, batch: int, paced_s: float, iters: int) -> dict[str, Any]:
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, FRAME, dtype=np.uint8) for _ in range(max(4, batch * 2))]
    engine.register_host_buffers(frames)
    images = [ImageInput(frames[i % len(frames)], "Mono8") for i in range(batch)]
    ev = [Event() for _ in range(4)]
    host: dict[str, list[float]] = {
        k: [] for k in ("enqueue_pre", "enqueue_net", "decode_sync", "nms", "total")
    }
    dev: dict[str, list[float]] = {k: [] for k in ("pre", "net", "decode")}
    for i in range(iters + 20):
        if paced_s:
            time.sleep(paced_s)
        t0 = time.perf_counter()
        ev[0].record(engine.stream)
        ptr, geometry, b = engine.preprocess_only(images)
        ev[1].record(engine.stream)
        t1 = time.perf_counter()
        out_ptr, out_shape, half = engine._run(ptr, b, geometry.input_h, geometry.input_w)
        ev[2].record(engine.stream)
        t2 = time.perf_counter()
        candidates = engine._decoder.decode(out_ptr, out_shape, half)[:batch]
        ev[3].record(engine.stream)
        t3 = time.perf_counter()
        [engine._finish(c, geometry) for c in candidates]
        ev[3].synchronize()
        t4 = time.perf_counter()
        if i >= 20:
            for k, v in zip(host, ((t1 - t0), (t2 - t1), (t3 - t2), (t4 - t3), (t4 - t0)), strict=True):
                host[k].append(v * 1e3)
            dev["pre"].append(ev[1].elapsed_ms(ev[0]))
            dev["net"].append(ev[2].elapsed_ms(ev[1]))
            dev["decode"].append(ev[3].elapsed_ms(ev[2]))
    # the network alone, as a user times it: run on device buffers, synchronized, host clock
    ptr, geometry, b = engine.preprocess_only(images)
    engine.stream.synchronize()
    net_wall: list[float] = []
    for i in range(iters + 20):
        if paced_s:
            time.sleep(paced_s)
        t0 = time.perf_counter()
        engine._run(ptr, b, geometry.input_h, geometry.input_w)
        engine.stream.synchronize()
        if i >= 20:
            net_wall.append((time.perf_counter() - t0) * 1e3)
    for e in ev:
        e.close()
    return {
        "host_ms": {k: _p(v) for k, v in host.items()},
        "device_ms": {k: _p(v) for k, v in dev.items()},
        "net_run_sync_wall_ms": _p(net_wall),
    }


def whole_graph(engine: Any, batch: int, paced_s: float, iters: int) -> dict[str, Any]:
    """Experiment: upload + preprocess kernel + network (a plain session with the dims pinned)
    + decode kernel + copies captured as ONE CUDA graph, replayed per frame. Compared with the
    engine's own path on the same buffers (output equal?) and timed the same way."""
    import onnxruntime as ort

    from inference.gpu.cuda import CudaGraph

    rng = np.random.default_rng(2)
    frames = [rng.integers(0, 256, FRAME, dtype=np.uint8) for _ in range(batch)]
    engine.register_host_buffers(frames)
    images = [ImageInput(f, "Mono8") for f in frames]
    engine.detect(images)
    in_ptr, geometry, b = engine.preprocess_only(images)
    key = (b, geometry.input_h, geometry.input_w)
    binding0, _, out_ptr = engine._bindings[key]
    out_shape = engine._shapes[key]
    half = engine._half_output
    engine._run(in_ptr, b, geometry.input_h, geometry.input_w)
    engine.stream.synchronize()
    nbytes = int(np.prod(out_shape)) * (2 if half else 4)
    ref = np.empty(nbytes, np.uint8)
    engine.stream.synchronize()
    from inference.gpu.cuda import check, runtime

    check(
        runtime.cudaMemcpy(ref.ctypes.data, out_ptr, nbytes, runtime.cudaMemcpyKind.cudaMemcpyDeviceToHost),
        "cudaMemcpy",
    )
    dims = {}
    for axis, value in zip(
        engine._plain.get_inputs()[0].shape, (b, engine.spec.model.channels, key[1], key[2]), strict=True
    ):
        if isinstance(axis, str) and axis:
            dims[axis] = value
    session = engine._session(graphs=False, dims=dims)
    binding = session.io_binding()
    dtype = np.float16 if engine._half_input else np.float32
    binding.bind_input(
        engine._info.input_name, "cuda", 0, dtype, [b, engine.spec.model.channels, key[1], key[2]], in_ptr
    )
    binding.bind_output(
        engine._info.output_name, "cuda", 0, np.float16 if half else np.float32, list(out_shape), out_ptr
    )
    ro = ort.RunOptions()
    ro.add_run_config_entry("disable_synchronize_execution_providers", "1")
    for _ in range(3):
        session.run_with_iobinding(binding, ro)
        engine.stream.synchronize()
    graph = CudaGraph(engine.stream)
    try:
        graph.begin()
        engine.preprocess_only(images)
        session.run_with_iobinding(binding, ro)
        plan = engine._decoder.enqueue(out_ptr, out_shape, half)
        graph.end()
    except Exception as exc:  # noqa: BLE001 - the experiment reports why capture failed
        return {"error": f"{type(exc).__name__}: {exc}"[:400]}
    check(runtime.cudaMemsetAsync(out_ptr, 0, nbytes, engine.stream.raw), "cudaMemsetAsync")
    graph.replay()
    engine.stream.synchronize()
    got = np.empty(nbytes, np.uint8)
    check(
        runtime.cudaMemcpy(got.ctypes.data, out_ptr, nbytes, runtime.cudaMemcpyKind.cudaMemcpyDeviceToHost),
        "cudaMemcpy",
    )
    view = np.float16 if half else np.float32
    diff = float(np.max(np.abs(got.view(view).astype(np.float32) - ref.view(view).astype(np.float32))))
    lat: list[float] = []
    for i in range(iters + 20):
        if paced_s:
            time.sleep(paced_s)
        t0 = time.perf_counter()
        graph.replay()
        engine.stream.synchronize()
        [engine._finish(c, geometry) for c in engine._decoder.collect(plan, synchronized=True)]
        if i >= 20:
            lat.append((time.perf_counter() - t0) * 1e3)
    graph.close()
    return {"max_abs_diff_vs_engine": diff, "total_ms": _p(lat)}


def fused_launch(engine: Any, paced_s: float, iters: int) -> dict[str, Any]:
    """The station's one-camera path (``try_launch`` + ``finish`` on the whole graph), step by
    step with a host timestamp after each: what the host adds before the device starts and
    after it is done. ``chain`` is the sum; ``device_span`` the events e0..e3; also the
    candidates that reach the host decoder and the detections NMS keeps, per frame."""
    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 256, FRAME, dtype=np.uint8) for _ in range(4)]
    engine.register_host_buffers(frames)
    for i in range(3):
        engine.finish(engine.try_launch([ImageInput(frames[i % 4], "Mono8")]))
    steps = ("upload", "lookup", "graph_launch", "sync_wait", "collect", "nms", "results", "chain")
    out: dict[str, list[float]] = {k: [] for k in (*steps, "device_span", "engine_in_graph", "candidates", "detections")}
    e0, e1, e2, e3 = engine._events
    pre, decoder = engine._preprocessor, engine._decoder
    for i in range(iters + 20):
        data = frames[i % 4]
        if paced_s:
            time.sleep(paced_s)
        t = [time.perf_counter()]
        e0.record(engine.stream)
        staging, h, w, pitch = pre.upload([data], "Mono8")
        t.append(time.perf_counter())
        geometry = engine.geometry(h, w)
        input_ptr = engine._input_buffer(geometry, 1)
        fused = engine._fused_graph((1, 1, h, w, pitch, "Mono8"), staging, input_ptr, geometry)
        t.append(time.perf_counter())
        fused.graph.replay()
        if not fused.timed:
            e3.record(engine.stream)
        t.append(time.perf_counter())
        engine.stream.synchronize()
        t.append(time.perf_counter())
        copied = decoder.candidates_copied
        candidates = decoder.collect(fused.plan, synchronized=True)
        t.append(time.perf_counter())
        detections = [engine._finish(c, geometry) for c in candidates]
        t.append(time.perf_counter())
        engine._results(detections, geometry, t[0], True)
        t.append(time.perf_counter())
        if i >= 20:
            for k, (a, b) in zip(steps, zip(t, t[1:], strict=False), strict=False):
                out[k].append((b - a) * 1e3)
            out["chain"].append((t[-1] - t[0]) * 1e3)
            out["device_span"].append(e3.elapsed_ms(e0))
            out["engine_in_graph"].append(e2.elapsed_ms(e1))
            out["candidates"].append(float(decoder.candidates_copied - copied))
            out["detections"].append(float(len(detections[0])))
    return {k: _p(v) for k, v in out.items() if v}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--fp16", action="store_true")
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--iters", type=int, default=300)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--fused-only", action="store_true", help="only the station's launch path")
    ap.add_argument("--cuda-option", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()
    from inference.gpu.onnxruntime_cuda import OnnxRuntimeCudaEngine

    classes = tuple(f"class{i}" for i in range(80))
    model = ModelConfig.model_validate({"onnx": args.model, "layout": "yolov8",
                                        "input": InputProfile(min=(320, 320), opt=(512, 640), max=(640, 640))})  # fmt: skip
    spec = DetectorSpec(model, classes, (0.25,) * len(classes))
    out: dict[str, Any] = {}
    for batch in args.batch:
        extra = dict(item.split("=", 1) for item in args.cuda_option)
        engine = OnnxRuntimeCudaEngine(spec, EngineOptions(backend="onnxruntime", device="cuda", fp16=args.fp16,
                                                           max_batch=batch, engine_cache_dir=Path("var/engines"),
                                                           cuda_provider_options=extra))  # fmt: skip
        for rhythm, pause in (("hot", 0.0), ("paced", 0.004)):
            if batch == 1:
                f = out[f"b1_{rhythm}_fused_launch"] = fused_launch(engine, pause, args.iters)
                print(f"batch 1 {rhythm:5}: station path (try_launch + finish) {f}", flush=True)
            if args.fused_only:
                continue
            g = out[f"b{batch}_{rhythm}_whole_graph"] = whole_graph(engine, batch, pause, args.iters)
            print(f"batch {batch} {rhythm:5}: whole graph {g}", flush=True)
            r = out[f"b{batch}_{rhythm}"] = profile(engine, batch, pause, args.iters)
            h, d = r["host_ms"], r["device_ms"]
            print(f"batch {batch} {rhythm:5}: host enqueue pre {h['enqueue_pre']['p50']:.3f} net {h['enqueue_net']['p50']:.3f} "
                  f"decode+sync {h['decode_sync']['p50']:.3f} nms {h['nms']['p50']:.3f} total {h['total']['p50']:.3f}/"
                  f"{h['total']['p99']:.3f} | device pre {d['pre']['p50']:.3f} net {d['net']['p50']:.3f} "
                  f"decode {d['decode']['p50']:.3f} | net run+sync wall {r['net_run_sync_wall_ms']['p50']:.3f}", flush=True)  # fmt: skip
        engine.close()
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
