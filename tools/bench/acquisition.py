"""Acquisition overhead bench: what our backend adds between "buffer ready" and "Frame
handed over", at the producer's maximum rate.

Why this number: the station's latency budget starts at ``Frame.t_ready`` (the moment the
backend saw the filled buffer); everything the backend does after that — wrapping the
buffer, building the numpy view, counters, part ids — is pure overhead on every part.

    python -m tools.bench.acquisition configs/aravis-fake.yaml --duration 5 --spawn-fake
    python -m tools.bench.acquisition configs/genicam-viky.yaml --duration 5
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from camera.config import CameraConfig, CameraSettings
from camera.errors import CameraRetryableError, FetchTimeout
from camera.source import FrameSource, open_source


def _percentile_ms(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)) * 1e3, 4) if values else None


def measure_acquisition(
    source_config: CameraConfig,
    duration_s: float,
    settings: CameraSettings | None = None,
    max_rate: bool = True,
) -> dict[str, Any]:
    """Acquire for ``duration_s`` and report overhead per frame (t_ready → Frame returned).

    ``max_rate``: set the device's frame-rate node to its maximum (free-run), so the
    figures are taken at the producer's maximum rate. Frames are released at once, as the
    station would after inference, so buffer starvation is not part of the figure.
    """
    settings = settings or CameraSettings()
    source: FrameSource = open_source(source_config, settings)
    overhead: list[float] = []
    complete = incomplete = timeouts = retryable = 0
    rate = None
    try:
        if max_rate and hasattr(source, "frame_rate_bounds"):
            bounds = source.frame_rate_bounds()
            if bounds is not None:
                rate = bounds[1]
                settings = settings.model_copy(update={"frame_rate": rate})
                source.apply_settings(settings)
        source.start()
        for _ in range(3):  # warm-up: first buffers include stream start-up
            try:
                source.fetch(2.0).release()
            except FetchTimeout:
                break
        before = source.counters.snapshot()
        t0 = time.perf_counter()
        t_end = t0 + duration_s
        while time.perf_counter() < t_end:
            try:
                frame = source.fetch(1.0)
            except FetchTimeout:
                timeouts += 1
                continue
            except CameraRetryableError:
                retryable += 1
                time.sleep(0.01)
                continue
            overhead.append(time.perf_counter() - frame.t_ready)
            if frame.complete:
                complete += 1
            else:
                incomplete += 1
            frame.release()
        elapsed = time.perf_counter() - t0
        after = source.counters.snapshot()
        info = source.stream_info() if hasattr(source, "stream_info") else {}
    finally:
        source.close()
    frames = complete + incomplete
    return {
        "camera": source_config.id,
        "kind": source_config.kind,
        "duration_s": round(elapsed, 3),
        "frame_rate_set": rate,
        "frames": frames,
        "fps": round(frames / elapsed, 1) if elapsed else 0.0,
        "complete": complete,
        "incomplete": incomplete,
        "dropped": after["dropped"] - before["dropped"],
        "timeouts": timeouts,
        "retryable_errors": retryable,
        "overhead_p50_ms": _percentile_ms(overhead, 50),
        "overhead_p99_ms": _percentile_ms(overhead, 99),
        "overhead_max_ms": _percentile_ms(overhead, 100),
        "producer": info,
    }


def _camera_from_station_file(path: Path, index: int) -> CameraConfig:
    data = yaml.safe_load(path.read_text())
    camera = dict(data["cameras"][index])
    options = dict(camera.get("options") or {})
    if options.get("cti"):  # relative producer paths resolve against the config file
        options["cti"] = [str((path.parent / p).resolve()) for p in options["cti"]]
    camera["options"] = options
    return CameraConfig.model_validate(camera)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("config", type=Path, help="station config (configs/*.yaml); its first camera is used")
    parser.add_argument("--camera", type=int, default=0, help="index in cameras:")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--pixel-format", default=None)
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--height", type=int, default=None)
    parser.add_argument(
        "--spawn-fake", action="store_true", help="start arv-fake-gv-camera-0.8 on 127.0.0.1 first"
    )
    args = parser.parse_args(argv)
    camera = _camera_from_station_file(args.config, args.camera)
    settings = CameraSettings(pixel_format=args.pixel_format, width=args.width, height=args.height)
    fake = None
    if args.spawn_fake:
        exe = shutil.which("arv-fake-gv-camera-0.8")
        if exe is None:
            parser.error("arv-fake-gv-camera-0.8 not installed (apt-get install -y aravis-tools)")
        fake = subprocess.Popen(
            [exe, "-i", "127.0.0.1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(0.5)
    try:
        print(json.dumps(measure_acquisition(camera, args.duration, settings), indent=2))
    finally:
        if fake is not None:
            fake.kill()
            fake.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
