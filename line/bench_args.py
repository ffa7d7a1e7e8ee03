"""Arguments of ``linecheck bench`` (kept apart so the parser does not import the bench)."""

from __future__ import annotations

import argparse


def add_bench_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="demo", help="demo | yolov8n | PATH.onnx")
    p.add_argument("--backend", default="onnxruntime", choices=["onnxruntime", "onnxruntime-cuda", "tensorrt"],
                   help="inference engine (default: %(default)s, on the CPU)")
    p.add_argument("--width", type=int, default=1280, help="frame width in pixels (default: %(default)s)")
    p.add_argument("--height", type=int, default=1024, help="frame height in pixels (default: %(default)s)")
    p.add_argument("--pixel-format", default="Mono8",
                   help="camera pixel format of the frames: Mono8, RGB8, BGR8, RGBa8, Bayer?? (default: %(default)s)")
    p.add_argument("--cameras", type=int, default=1, help="cameras feeding the station (batched on one engine)")
    p.add_argument("--frames", type=int, default=1000, help="frames per measured loop")
    p.add_argument("--warmup", type=int, default=10, help="frames run before each measured loop, not counted")
    p.add_argument("--duration", type=float, default=None, help="seconds per loop instead of --frames")
    p.add_argument("--fp16", action="store_true", help="GPU: half-precision engine")
    p.add_argument("--no-whole-graph", action="store_true",
                   help="GPU: enqueue kernel, network and decode one by one (A/B of the whole-graph replay)")
    p.add_argument("--cuda-option", action="append", default=[], metavar="KEY=VALUE",
                   help="extra ONNX Runtime CUDA provider option (repeatable), e.g. prefer_nhwc=1")
    p.add_argument("--cuda-wait", choices=["auto", "spin", "yield", "block"], default="auto",
                   help="GPU: how host threads wait for the device (engine.cuda_wait; auto spins)")
    p.add_argument("--no-cpu-spin", action="store_true",
                   help="CPU: ONNX Runtime's idle worker threads sleep instead of spinning (engine.cpu_spin: false)")
    p.add_argument("--plc", choices=["none", "server", "client"], default="server",
                   help="PLC side of the pipeline run: none, a Modbus server, or a client writing to a simulator")
    p.add_argument("--json", action="store_true", help="last line: the results as JSON")
    p.add_argument("--plot", default=None, help="PNG file with latency distributions")
    p.add_argument("--budget-ms", type=float, default=None,
                   help="cycle budget in ms for the pipeline (default: the recipe's)")
    p.add_argument("--rate-hz", type=float, default=None,
                   help="per-camera frame rate of the paced (latency) run; default half the sustained maximum. "
                        "With several cameras this is the 'N cameras at R Hz, zero drops, no deadline miss' run")
    p.add_argument("--what", default="cpu", help="cpu | camera | plc | mes | all")
    p.add_argument("--phase", choices=["aligned", "free"], default="aligned",
                   help="paced cameras: one shared trigger (aligned, a multi-view station) or free-running at random phases")
    p.add_argument("--one-process", action="store_true",
                   help="time raw engine, naive loop and pipeline one after another in this process, not each in "
                        "a fresh one (A/B: on the GPU a process's later engines ran slower)")
    p.add_argument("--no-naive", action="store_true", help="skip the naive loop (profiling the station alone)")
    p.add_argument("--archive", action="store_true",
                   help="also archive NG images in the pipeline (the naive loop does not; ~2 ms JPEG per reject)")
