"""Experiment (issue "Benchmarks"): does the network's time inside the station's whole graph
depend on the frame content, the warm-up frames, cuDNN's algorithm search, or on how many
engines the process opened before?

Opens one engine per name in ORDER (zeros|noise|synth, comma-separated), one after another,
warms it on those frames, then times the in-graph network (CUDA events) over 300 paced parts of
synthetic frames. ALGO=HEURISTIC|DEFAULT overrides ORT's cudnn_conv_algo_search. Measured on
the H100: the first engine 0.95 ms, every later one 1.03-1.08 ms, whatever the warm-up and the
search.

    bash tools/gpu/run_gpu_suite.sh --exec env ORDER=noise,zeros,synth,noise \
        python3 tools/gpu/engine_order_probe.py

MODE=revisit asks whether the effect follows the engine or the clock: it times engine A, opens
B and C, times them, times A again, closes A, opens D (which may reuse A's memory) and times D
and B again, logging the SM clock, power and temperature at each step. PREALLOC_GB=N holds N
GiB of device memory (cupy) before the first engine, to move where its memory lands. STEPS
overrides the sequence (+X opens engine X, -X closes it, X times it; N opens a naive-loop-style
ORT session, -N closes it; X alone runs cuBLAS through cupy).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from inference.config import EngineOptions, InputProfile, ModelConfig  # noqa: E402
from inference.engine import DetectorSpec, ImageInput  # noqa: E402
from inference.gpu.onnxruntime_cuda import OnnxRuntimeCudaEngine  # noqa: E402
from tools.bench.inputs import make_frames  # noqa: E402


def _gpu_state() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=clocks.sm,clocks.mem,power.draw,temperature.gpu",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=10).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        out = f"nvidia-smi: {exc}"
    return out


def _time(engine: OnnxRuntimeCudaEngine, frames: list[np.ndarray], paced: bool) -> float:
    ms = []
    for i in range(300):
        if paced:
            time.sleep(0.003)
        launched = engine.try_launch([ImageInput(frames[i % len(frames)], "Mono8")])
        ms.append(engine.finish(launched)[0].timings_ms["engine"])
    return float(np.median(ms))


def revisit(spec: DetectorSpec, synth: list[np.ndarray], extra: dict[str, str]) -> None:
    hold = None
    gib = float(os.environ.get("PREALLOC_GB", "0"))
    if gib:
        import cupy

        hold = cupy.empty(int(gib * 2**30), dtype=cupy.uint8)
        print(f"holding {gib} GiB at 0x{hold.data.ptr:x}", flush=True)
    engines: dict[str, OnnxRuntimeCudaEngine] = {}

    def open_(name: str) -> None:
        options = EngineOptions(backend="onnxruntime", device="cuda", fp16=True,
                                engine_cache_dir=Path("var/engines"), cuda_provider_options=extra)  # fmt: skip
        engine = OnnxRuntimeCudaEngine(spec, options)
        engine.register_host_buffers(synth)
        for frame in synth[:2]:
            engine.detect([ImageInput(frame, "Mono8")])
        engines[name] = engine

    def report(name: str) -> None:
        paced, busy = _time(engines[name], synth, True), _time(engines[name], synth, False)
        print(
            f"{name}: in-graph network p50 paced {paced:.4f} ms, back-to-back {busy:.4f} ms | {_gpu_state()}",
            flush=True,
        )

    print(f"idle | {_gpu_state()}", flush=True)
    for step in os.environ.get("STEPS", "+A,A,+B,+C,B,C,A,-A,+D,D,B,A?").split(","):
        if step == "N":  # the naive loop's kind of session: fp32 model, default CUDA provider
            import onnxruntime as ort

            naive = ort.InferenceSession(str(spec.model.onnx), providers=["CUDAExecutionProvider"])
            blob = np.zeros((1, 3, 512, 640), np.float32)
            for _ in range(3):
                naive.run(None, {naive.get_inputs()[0].name: blob})
            print("opened a naive-style session", flush=True)
        elif step == "-N":
            del naive
            print("closed the naive-style session", flush=True)
        elif step == "X":  # cuBLAS elsewhere in the process, no ORT
            import cupy

            a = cupy.ones((2048, 2048), cupy.float16)
            for _ in range(3):
                a @ a
            cupy.cuda.Device().synchronize()
            print("ran cupy matmuls", flush=True)
        elif step.startswith("+"):
            open_(step[1:])
        elif step.startswith("-"):
            engines.pop(step[1:]).close()
            print(f"closed {step[1:]}", flush=True)
        elif step.rstrip("?") in engines:
            report(step.rstrip("?"))
    for engine in engines.values():
        engine.close()
    del hold


def main() -> None:
    model = ModelConfig.model_validate({"onnx": "var/models/yolov8n.onnx", "layout": "yolov8",
                                        "input": InputProfile(min=(320, 320), opt=(512, 640), max=(640, 640))})  # fmt: skip
    spec = DetectorSpec(model, tuple(f"c{i}" for i in range(80)), (0.25,) * 80)
    synth, _ = make_frames(1280, 1024, "Mono8", 6)
    rng = np.random.default_rng(1)
    frames = {
        "synth": synth,
        "noise": [rng.integers(0, 256, (1024, 1280), dtype=np.uint8) for _ in range(6)],
        "zeros": [np.zeros((1024, 1280), np.uint8) for _ in range(6)],
    }
    algo = os.environ.get("ALGO")
    extra = {"cudnn_conv_algo_search": algo} if algo else {}
    extra.update(dict(item.split("=", 1) for item in os.environ.get("CUDA_OPTIONS", "").split() if item))
    if os.environ.get("MODE") == "revisit":
        revisit(spec, synth, extra)
        return
    for warm_name in os.environ.get("ORDER", "noise,zeros,synth").split(","):
        options = EngineOptions(backend="onnxruntime", device="cuda", fp16=True,
                                engine_cache_dir=Path("var/engines"), cuda_provider_options=extra)  # fmt: skip
        engine = OnnxRuntimeCudaEngine(spec, options)
        engine.register_host_buffers([f for group in frames.values() for f in group])
        for frame in frames[warm_name][:2]:
            engine.detect([ImageInput(frame, "Mono8")])
        ms = []
        for i in range(300):
            time.sleep(0.003)
            launched = engine.try_launch([ImageInput(synth[i % 6], "Mono8")])
            ms.append(engine.finish(launched)[0].timings_ms["engine"])
        print(f"engine warmed on {warm_name}: in-graph network p50 {np.median(ms):.4f} ms", flush=True)
        engine.close()


if __name__ == "__main__":
    main()
