#!/usr/bin/env bash
# One GPU call for issue 27 (the first part after a line stop and after a recipe change), on
# onnxruntime-cuda with the YOLOv8n-sized model in fp16: the steady reference (raw engine and
# pipeline), the idle phase (gaps of 1, 10 and 60 s, then 300 s alone: one call runs 10 minutes
# at most) and the recipe-switch phase (warm, then cold). Logs and JSON under $OUT.
# Run inside the suite's environment:
#   bash tools/gpu/run_gpu_suite.sh --exec bash tools/gpu/first_part_round.sh [machine|steady|idle|idle300|switch ...]
# Default: machine steady idle switch (about 5 minutes); idle300 in a call of its own.
set -uo pipefail
OUT=${OUT:-$PWD/var/gpu-suite}
mkdir -p "$OUT"
steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(machine steady idle switch)
[ -f var/models/yolov8n.onnx ] || python3 recipes/models/export_yolov8n.py --out var/models/yolov8n.onnx 2>&1 | tail -1
gpu=(python3 -m tools.bench --backend onnxruntime-cuda --model yolov8n --fp16 --plc server)
first_part() {  # first_part NAME [bench flags...]: the phase's table, its JSON kept whole
  local name=$1 out
  shift
  out="$OUT/first_part_$name.txt"
  "${gpu[@]}" --json "$@" > "$out" 2>&1
  grep -E "^(idle phase|recipe switch|  (warm|cold):| +gap s| +[0-9.]+ +[0-9])" "$out" | cut -c1-400
  tail -1 "$out" > "$OUT/first_part_$name.json"
}
for step in "${steps[@]}"; do
  case "$step" in
    machine)  # what the lent machine is (read only: never change its settings)
      echo "== machine"
      nproc; grep -m1 "model name" /proc/cpuinfo
      nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,pstate,power.draw --format=csv ;;
    steady)  # the reference: raw engine and paced pipeline (target: first part within raw engine + 1 ms)
      echo "== steady reference"
      "${gpu[@]}" --frames 1000 --no-naive --json > "$OUT/first_part_steady.txt" 2>&1
      grep -E "^(machine|raw engine|pipeline)" "$OUT/first_part_steady.txt" | cut -c1-300
      tail -1 "$OUT/first_part_steady.txt" > "$OUT/first_part_steady.json" ;;
    idle)
      echo "== idle phase: gaps 1, 10, 60 s"
      nvidia-smi --query-gpu=pstate,clocks.sm --format=csv,noheader
      first_part idle --what idle --idle-gaps 1,10,60 --first-part-rate-hz 100 ;;
    idle300)
      echo "== idle phase: gap 300 s"
      first_part idle300 --what idle --idle-gaps 300 --first-part-rate-hz 100 ;;
    switch)  # warm (prepared beforehand) and cold (engine load + CUDA graph capture while parts flow)
      echo "== recipe switch phase"
      first_part switch --what switch --first-part-rate-hz 100 ;;
    *) echo "unknown step $step" ;;
  esac
done
