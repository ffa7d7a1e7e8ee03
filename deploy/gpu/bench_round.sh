#!/usr/bin/env bash
# One GPU call for issue "Benchmarks": GPU tests, then the 1-camera bench (twice: the naive
# loop and the paced pipeline move from run to run), the 1-camera bench with NHWC convolutions
# (ORT CUDA option prefer_nhwc=1), and 8 cameras at 190 Hz, shared trigger and free-running.
# `profile`: inference.gpu_profile at batch 1 (host/device split of the station's path).
# Run inside the suite's environment:
#   bash deploy/gpu/run_gpu_suite.sh --exec bash deploy/gpu/bench_round.sh [jitter|tests|profile|one|nhwc|eight|eight_ab ...]
set -uo pipefail
OUT=${OUT:-$PWD/var/gpu-suite}
mkdir -p "$OUT"
steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(tests one one nhwc eight)
[ -f var/models/yolov8n.onnx ] || python3 recipes/models/export_yolov8n.py --out var/models/yolov8n.onnx 2>&1 | tail -1
one=(python3 -m line bench --backend onnxruntime-cuda --model yolov8n --fp16 --frames 1000 --plc client --json)
summary() {  # the table and the stage line, without ORT's provider warnings
  grep -E "^(machine|raw engine|naive loop|pipeline|stages|paced run|GC pauses)|^  (engine|naive|pipeline)" "$1" | cut -c1-400
}
i=0
for step in "${steps[@]}"; do
  i=$((i + 1))
  case "$step" in
    profile)
      echo "== gpu path profile, batch 1"
      python3 -m inference.gpu_profile var/models/yolov8n.onnx --fp16 --batch 1 --json "$OUT/gpu_profile.json" 2>&1 \
        | grep -E "^batch" | cut -c1-900 ;;
    jitter)  # the host itself: how late a 1 ms sleep wakes (stalls here are not the station's)
      echo "== host jitter, 10 s of 1 ms sleeps"
      python3 - <<'PY'
import time, numpy as np
late = []
end = time.perf_counter() + 10
while time.perf_counter() < end:
    t = time.perf_counter(); time.sleep(0.001); late.append((time.perf_counter() - t - 0.001) * 1e3)
a = np.array(late)
print(f"oversleep ms: p50 {np.percentile(a, 50):.3f} p99 {np.percentile(a, 99):.3f} p99.9 {np.percentile(a, 99.9):.3f} max {a.max():.2f}; >5 ms: {(a > 5).sum()} of {len(a)}")
PY
      ;;
    eight_ab)
      for mode in whole steps; do
        flag=(); [ "$mode" = steps ] && flag=(--no-whole-graph)
        echo "== 8 cameras x 190 Hz, aligned, $mode"
        python3 -m line bench --backend onnxruntime-cuda --model yolov8n --fp16 --cameras 8 --frames 8000 \
          --rate-hz 190 --budget-ms 20 --plc server --phase aligned --no-naive --json "${flag[@]}" \
          > "$OUT/bench_8cam_aligned_$mode.txt" 2>&1
        summary "$OUT/bench_8cam_aligned_$mode.txt"
      done ;;
    tests)
      echo "== gpu tests"
      python3 -m pytest tests/gpu -q -p no:cacheprovider 2>&1 | grep -Ev "Warning|warnings|^ +" | tail -8 ;;
    one)
      echo "== 1 camera ($i)"
      "${one[@]}" --plot "$OUT/bench_1cam_$i.png" > "$OUT/bench_1cam_$i.txt" 2>&1
      summary "$OUT/bench_1cam_$i.txt" ;;
    nhwc)
      echo "== 1 camera, prefer_nhwc=1 ($i)"
      "${one[@]}" --cuda-option prefer_nhwc=1 --plot "$OUT/bench_1cam_nhwc_$i.png" > "$OUT/bench_1cam_nhwc_$i.txt" 2>&1
      summary "$OUT/bench_1cam_nhwc_$i.txt" ;;
    eight)
      for phase in aligned free; do
        echo "== 8 cameras x 190 Hz, $phase"
        python3 -m line bench --backend onnxruntime-cuda --model yolov8n --fp16 --cameras 8 --frames 8000 \
          --rate-hz 190 --budget-ms 20 --plc server --phase "$phase" --no-naive --json \
          > "$OUT/bench_8cam_$phase.txt" 2>&1
        summary "$OUT/bench_8cam_$phase.txt"
      done ;;
  esac
done
