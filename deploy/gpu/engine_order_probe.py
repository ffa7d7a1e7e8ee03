"""Experiment (issue "Benchmarks"): does the network's time inside the station's whole graph
depend on the frame content, the warm-up frames, cuDNN's algorithm search, or on how many
engines the process opened before?

Opens one engine per name in ORDER (zeros|noise|synth, comma-separated), one after another,
warms it on those frames, then times the in-graph network (CUDA events) over 300 paced parts of
synthetic frames. ALGO=HEURISTIC|DEFAULT overrides ORT's cudnn_conv_algo_search. Measured on
the H100: the first engine 0.95 ms, every later one 1.03-1.08 ms, whatever the warm-up and the
search.

    bash deploy/gpu/run_gpu_suite.sh --exec env ORDER=noise,zeros,synth,noise \
        python3 deploy/gpu/engine_order_probe.py
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from inference.config import EngineOptions, InputProfile, ModelConfig  # noqa: E402
from inference.engine import DetectorSpec, ImageInput  # noqa: E402
from inference.onnxruntime_gpu import OnnxRuntimeCudaEngine  # noqa: E402
from line.bench import make_frames  # noqa: E402


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
