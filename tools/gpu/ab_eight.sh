#!/usr/bin/env bash
# A/B of the 8-camera station on the GPU host: the same bench under switches (environment, bench flags),
# each twice (run-to-run spread). Prints one line per run: switches, back-pressured fps, p50.
#   bash tools/gpu/run_gpu_suite.sh --exec bash tools/gpu/ab_eight.sh
set -uo pipefail
for round in 1 2; do
  for variant in "|" "|--no-gc-freeze" "|--cuda-release-gil"; do
    env=${variant%%|*} flags=${variant#*|}
    # shellcheck disable=SC2086  # the switches are meant to split into words
    out=$(env $env python3 -m tools.bench $flags --backend onnxruntime-cuda --model yolov8n --fp16 --cameras 8 --frames 4000 \
          --rate-hz 50 --budget-ms 20 --plc server --no-naive --json 2>/dev/null | tail -1)
    echo "round $round $env $flags: $(echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin)["pipeline"]; print(f"saturated {d["fps"]:.0f} fps, sat p50 {d["saturated_latency_ms"]["p50"]:.1f} ms, stages total p50 {d["stages_ms"]["total"]["p50"]:.2f}")')"
  done
done
