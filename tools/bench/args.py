"""Arguments of ``linecheck bench`` (kept apart so the parser does not import the bench)."""

from __future__ import annotations

import argparse


def _gaps(text: str) -> list[float]:
    try:
        gaps = [float(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of seconds: {text!r} (e.g. 1,10,60,300)") from None
    if not gaps or any(g < 0 for g in gaps):
        raise argparse.ArgumentTypeError(f"need one or more gaps >= 0 s, got {text!r}")
    return gaps


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
    p.add_argument("--precision", choices=["fp32", "int8"], default=None,
                   help="CPU engine: the recipe's model in fp32 or its INT8 copy (made by `linecheck build`)")
    p.add_argument("--skip-gate", action="store_true",
                   help="int8 bench / --precision int8: time an INT8 copy that no accuracy gate checked (quantized here "
                        "on synthetic frames, kept apart from the engine cache), for models the gate cannot judge, "
                        "such as --model yolov8n's random weights. Timing only: `linecheck run` never uses it")
    p.add_argument("--no-whole-graph", action="store_true",
                   help="GPU: enqueue kernel, network and decode one by one (A/B of the whole-graph replay)")
    p.add_argument("--cuda-option", action="append", default=[], metavar="KEY=VALUE",
                   help="extra ONNX Runtime CUDA provider option (repeatable), e.g. prefer_nhwc=1")
    p.add_argument("--cuda-wait", choices=["auto", "spin", "yield", "block"], default="auto",
                   help="GPU: how host threads wait for the device (engine.cuda_wait; auto spins)")
    p.add_argument("--cuda-release-gil", action="store_true",
                   help="GPU: every CUDA call through cuda-python, which releases the GIL (engine.cuda_keep_gil: false)")
    p.add_argument("--no-cpu-spin", action="store_true",
                   help="CPU: ONNX Runtime's idle worker threads sleep instead of spinning (engine.cpu_spin: false)")
    p.add_argument("--intra-op-threads", type=int, default=0, metavar="N",
                   help="CPU: ONNX Runtime's threads per inference (engine.intra_op_threads; 0: one per core), "
                        "e.g. to leave cores to the MES server and its clients")  # fmt: skip
    p.add_argument("--plc", choices=["none", "server", "client"], default="server",
                   help="PLC side of the pipeline run: none, a Modbus server, or a client writing to a simulator")
    p.add_argument("--json", action="store_true", help="last line: the results as JSON")
    p.add_argument("--plot", default=None, help="PNG file with latency distributions")
    p.add_argument("--budget-ms", type=float, default=None,
                   help="cycle budget in ms for the pipeline (default: the recipe's)")
    p.add_argument("--rate-hz", type=float, default=None,
                   help="per-camera frame rate of the paced (latency) run; default half the sustained maximum. "
                        "With several cameras this is the 'N cameras at R Hz, zero drops, no deadline miss' run")
    p.add_argument("--what", default="cpu",
                   help="cpu | camera | plc | mes | uplink | all; uplink: the station with its MQTT uplink against a "
                        "broker that is up and one that is down (ABAB; not part of all); first-part: the idle and recipe-switch phases (idle | switch alone); "
                        "int8: fp32 against the INT8 model, engine alone and the whole station, alternating")
    p.add_argument("--uplink-sparkplug", action="store_true",
                   help="uplink bench: the uplink in Sparkplug B mode instead of JSON topics")
    p.add_argument("--mv-subscribers", type=int, default=20, metavar="N",
                   help="mes: OPC 40100 ResultReadyEvent subscribers on the Server object in the last phase "
                        "(0: skip that phase; default %(default)s)")
    p.add_argument("--idle-gaps", type=_gaps, default=[1.0, 10.0], metavar="S,S,...",
                   help="idle phase: seconds the station stands idle before each burst (issue 27: 1,10,60,300)")
    p.add_argument("--first-part-rate-hz", type=float, default=10.0,
                   help="idle and switch phases: the trigger pace of the steady run and of the bursts")
    p.add_argument("--first-part-steady", type=int, default=200,
                   help="idle and switch phases: parts of the steady run their first parts are compared with")
    p.add_argument("--phase", choices=["aligned", "free"], default="aligned",
                   help="paced cameras: one shared trigger (aligned, a multi-view station) or free-running at random phases")
    p.add_argument("--one-process", action="store_true",
                   help="time raw engine, naive loop and pipeline one after another in this process, not each in "
                        "a fresh one (A/B: on the GPU a process's later engines ran slower)")
    p.add_argument("--no-naive", action="store_true", help="skip the naive loop (profiling the station alone)")
    p.add_argument("--archive", action="store_true",
                   help="also archive NG images in the pipeline (the naive loop does not; ~2 ms JPEG per reject)")
    p.add_argument("--heartbeat-ms", type=float, default=0.0, metavar="MS",
                   help="stall diagnosis: a thread in the station's process sleeps MS at a time and its late "
                        "wake-ups are reported (default: off; its wake-ups take the GIL too)")
    p.add_argument("--no-gc-freeze", action="store_true",
                   help="A/B: the station's station.gc_freeze off (the start-up heap stays in the collector)")
    p.add_argument("--no-retire-decided", action="store_true",
                   help="A/B: the station's station.retire_decided off (the watchdog wakes at each decided deadline)")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """``linecheck bench`` (entry point ``linecheck.commands``): the parser here, the bench itself
    imported only when it runs."""
    bench = sub.add_parser("bench", help="latency and throughput: pipeline vs naive loop vs raw engine")
    add_bench_arguments(bench)
    bench.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from tools.bench.cli import main

    return main(args)
