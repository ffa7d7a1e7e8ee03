"""Several stations, one plant broker, one plant subscriber: a load run of the MQTT uplink.

Starts a local Debian ``mosquitto`` (plain TCP, anonymous: a load rig, not a plant broker),
``--stations`` real ``linecheck run`` processes (synthetic camera at ``--rate`` parts/s and a
tiny constant ONNX model, so the CPU goes to the station and the uplink, not to a network), and
``tools/plant_subscriber.py``. Reports what the plant received (parts/s, duplicates, order,
latency from verdict to subscriber p50/p99) and the stations' CPU with the uplink on against a
run with it off (the CPU cost of publishing, per part).

    python tools/uplink_plant_load.py --stations 4 --rate 50 --duration 30
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import yaml
from onnx import TensorProto, helper, numpy_helper, save

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tiny_model(path: Path) -> None:
    """Always one missing-cap detection: a reject per part, at almost no CPU."""
    value = np.zeros((1, 7, 4), np.float32)
    value[0, :, 0] = [160, 160, 40, 40, 0.0, 0.0, 0.9]
    nodes = [helper.make_node("ReduceMean", ["images"], ["m"], axes=[1, 2, 3], keepdims=0),
             helper.make_node("Reshape", ["m", "shape3"], ["m3"]), helper.make_node("Mul", ["m3", "zero"], ["z"]),
             helper.make_node("Add", ["z", "value"], ["output"])]  # fmt: skip
    inits = [numpy_helper.from_array(np.array([-1, 1, 1], np.int64), "shape3"),
             numpy_helper.from_array(np.zeros((1, 1, 1), np.float32), "zero"), numpy_helper.from_array(value, "value")]  # fmt: skip
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, "H", "W"])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, None)], inits)  # fmt: skip
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), str(path))


def write_station(root: Path, index: int, rate: float, port: int, uplink: bool) -> Path:
    recipes = root / "recipes"
    recipes.mkdir(parents=True, exist_ok=True)
    if not (recipes / "tiny.onnx").exists():
        tiny_model(recipes / "tiny.onnx")
        (recipes / "alpha.yaml").write_text(yaml.safe_dump({
            "id": "alpha", "code": 1, "classes": ["scratch", "dent", "missing_cap"], "thresholds": {"default": 0.5},
            "model": {"onnx": "tiny.onnx", "layout": "yolov8", "input": {"min": [320, 320], "opt": [320, 320], "max": [640, 640]}},
            "reject": [{"classes": ["missing_cap"], "bin": 1}], "camera": {"pixel_format": "Mono8"}, "cycle_budget_ms": 150}))  # fmt: skip
    config = {
        "station": {"id": f"station-{index}"},
        "recipes": {"dir": "recipes", "active": "alpha"},
        "cameras": [{"id": "cam1", "kind": "synthetic", "options": {"width": 320, "height": 256, "rate_hz": rate, "seed": index}}],
        "plc": {"modbus_server": {"enabled": False}},
        "storage": {"dir": f"state-{index}", "archive_ng_images": False},
        "uplink": {"enabled": uplink, "port": port, "client_id": f"linecheck-station-{index}",
                   "topic": {"enterprise": "acme", "site": "plant1", "area": "packing", "line": f"line{index}"}},
    }  # fmt: skip
    path = root / f"station-{index}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run_stations(configs: list[Path], duration: float) -> tuple[list[dict[str, object]], list[float]]:
    """Run them side by side; (each one's JSON summary, each one's CPU seconds)."""
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    procs = [subprocess.Popen([sys.executable, "-m", "line", "run", "-c", str(c), "--duration", str(duration), "--json"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env) for c in configs]  # fmt: skip
    handles = [psutil.Process(p.pid) for p in procs]
    cpu = [0.0] * len(procs)
    while any(p.poll() is None for p in procs):
        for i, h in enumerate(handles):
            try:
                t = h.cpu_times()
                cpu[i] = t.user + t.system
            except psutil.Error:
                pass
        time.sleep(0.2)
    summaries = []
    for p in procs:
        out = p.stdout.read() if p.stdout else ""
        lines = [line for line in out.splitlines() if line.startswith("{")]
        summaries.append(json.loads(lines[-1]) if lines else {"error": out[-500:]})
    return summaries, cpu


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stations", type=int, default=4)
    p.add_argument("--rate", type=float, default=50.0, help="parts per second per station")
    p.add_argument("--duration", type=float, default=30.0, help="seconds each run lasts")
    p.add_argument("--skip-baseline", action="store_true", help="no run with the uplink off")
    args = p.parse_args(argv)
    if shutil.which("mosquitto") is None:
        print("needs Debian mosquitto (apt-get install mosquitto)", file=sys.stderr)
        return 2
    root = Path(tempfile.mkdtemp(prefix="uplink-load-"))
    port = free_port()
    (root / "mosquitto.conf").write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                                         f"max_queued_messages 100000\n{'user root' if os.geteuid() == 0 else ''}\n")  # fmt: skip
    broker = subprocess.Popen(["mosquitto", "-c", str(root / "mosquitto.conf")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    result: dict[str, object] = {"stations": args.stations, "rate_per_station": args.rate, "duration_s": args.duration}
    try:
        time.sleep(1.0)
        if not args.skip_baseline:
            configs = [write_station(root, i, args.rate, port, uplink=False) for i in range(args.stations)]
            summaries, cpu_off = run_stations(configs, args.duration)
            result["cpu_s_uplink_off"] = [round(c, 2) for c in cpu_off]
            result["verdicts_uplink_off"] = [s.get("verdicts") for s in summaries]
        sub = subprocess.Popen([sys.executable, str(REPO / "tools" / "plant_subscriber.py"), "--port", str(port),
                                "--topic", "acme/+/+/+/+/linecheck/#", "--quiet-s", "8", "--duration", str(args.duration + 120)],
                               stdout=subprocess.PIPE, text=True)  # fmt: skip
        assert sub.stdout is not None  # noqa: S101
        if sub.stdout.readline().strip() != "subscribed":
            print("the plant subscriber did not subscribe", file=sys.stderr)
            return 1
        configs = [write_station(root, i, args.rate, port, uplink=True) for i in range(args.stations)]
        summaries, cpu_on = run_stations(configs, args.duration)
        plant = json.loads(sub.stdout.read().strip().splitlines()[-1])
        sub.wait()
        verdicts = [int(s.get("verdicts", 0)) for s in summaries]  # type: ignore[call-overload]
        result.update(verdicts=verdicts, cpu_s_uplink_on=[round(c, 2) for c in cpu_on], plant=plant,
                      all_received=plant["parts"] == sum(verdicts))  # fmt: skip
        if not args.skip_baseline:
            extra = sum(cpu_on) - sum(cpu_off)
            result["uplink_cpu_us_per_part"] = round(extra / max(1, sum(verdicts)) * 1e6, 1)
            result["uplink_cpu_share_of_core_per_station"] = round(extra / args.stations / args.duration, 4)
    finally:
        broker.terminate()
        broker.wait()
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
