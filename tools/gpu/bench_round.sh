#!/usr/bin/env bash
# One GPU call for issue "Benchmarks": GPU tests, then the 1-camera bench (twice: the naive
# loop and the paced pipeline move from run to run), the 1-camera bench with NCHW convolutions
# (prefer_nhwc=0, A/B of the default NHWC), and 8 cameras at 190 Hz, shared trigger and free-running.
# `profile`: tools.gpu.gpu_profile at batch 1 (host/device split of the station's path).
# Run inside the suite's environment:
#   bash tools/gpu/run_gpu_suite.sh --exec bash tools/gpu/bench_round.sh [machine|stall|cpuload|steal|jitter|tests|tests_new|profile|one|one_block|one_proc|nchw|eight|eight_aligned|eight_free|eight_block|eight_diag|eight_layout|eight_ab|probe|probe_hold|probe_nhwc|probe_naive ...]
set -uo pipefail
OUT=${OUT:-$PWD/var/gpu-suite}
mkdir -p "$OUT"
steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(tests one one nchw eight)
[ -f var/models/yolov8n.onnx ] || python3 recipes/models/export_yolov8n.py --out var/models/yolov8n.onnx 2>&1 | tail -1
one=(python3 -m tools.bench --backend onnxruntime-cuda --model yolov8n --fp16 --frames 1000 --plc client --json)
summary() {  # the table and the stage line, without ORT's provider warnings; the host's jitter meanwhile
  grep -E "^(machine|raw engine|naive loop|pipeline|stages|paced run|GC pauses|process during|host during|busiest threads|after the paced run)|^  (engine|naive|pipeline|same, at|\(the network)" "$1" | cut -c1-400
  grep -E "^(late parts|cam[0-9]+ part )|^      (ms after|engine:)" "$1" | cut -c1-400  # where late parts spent their time
  grep -E "slow GPU" "$1" | sort | uniq -c | sort -rn | head -12 | cut -c1-300
  if [ -n "${jitter_pid:-}" ]; then kill "$jitter_pid" 2>/dev/null; wait "$jitter_pid" 2>/dev/null; jitter_pid=; fi
}
jitter_pid=
watch_host() { python3 tools/gpu/jitter.py & jitter_pid=$!; }
eight() {  # eight PHASE [TAG [bench flags...]]: 8 cameras x 190 Hz, 20 ms budget
  local phase=$1 tag=${2:-} out
  shift; [ $# -gt 0 ] && shift
  out="$OUT/bench_8cam_${phase}${tag:+_$tag}.txt"
  echo "== 8 cameras x 190 Hz, $phase${tag:+, $tag}"; watch_host
  python3 -m tools.bench --backend onnxruntime-cuda --model yolov8n --fp16 --cameras 8 --frames 8000 \
    --rate-hz 190 --budget-ms 20 --plc server --phase "$phase" --no-naive --json "$@" > "$out" 2>&1
  summary "$out"
}
i=0
for step in "${steps[@]}"; do
  i=$((i + 1))
  case "$step" in
    profile)
      echo "== gpu path profile, batch 1"
      python3 -m tools.gpu.gpu_profile var/models/yolov8n.onnx --fp16 --batch 1 --json "$OUT/gpu_profile.json" 2>&1 \
        | grep -E "^batch" | cut -c1-900 ;;
    machine)  # what the machine is and how its GPU is set (read only: never change these)
      echo "== machine"
      nproc; uptime; grep -m1 "model name" /proc/cpuinfo; head -1 /proc/stat
      nvidia-smi --query-gpu=name,compute_mode,clocks.sm,clocks.mem,clocks_throttle_reasons.active,utilization.gpu,memory.used --format=csv
      nvidia-smi --query-compute-apps=pid,process_name,used_memory --format=csv
      ps -eo pid,pcpu,rss,comm --sort=-pcpu | head -15 ;;
    steal)  # each ingredient of a station's cycle alone: which one makes the host take vCPUs (steal)
      echo "== steal probe"
      python3 tools/gpu/steal_probe.py 8 ;;
    cpuload)  # how much CPU the VM gives, and when the hypervisor starts taking vCPUs back (steal)
      echo "== cpu load probe"
      python3 tools/gpu/cpu_load_probe.py 4 ;;
    eight_block)  # 8 cameras with host threads sleeping on the GPU instead of spinning (engine.cuda_wait)
      eight aligned block --cuda-wait block; eight free block --cuda-wait block ;;
    one_block)
      echo "== 1 camera, cuda_wait=block ($i)"; watch_host
      "${one[@]}" --cuda-wait block > "$OUT/bench_1cam_block_$i.txt" 2>&1
      summary "$OUT/bench_1cam_block_$i.txt" ;;
    stall)  # the GPU and host alone: device time and round trip of a fixed product, steal around each
      echo "== device stall probe, 20 s"
      python3 tools/gpu/device_stall_probe.py 20 ;;
    jitter)  # the host itself: how late a 1 ms sleep wakes (stalls here are not the station's)
      echo "== host jitter, 10 s of 1 ms sleeps"
      python3 tools/gpu/jitter.py 10 ;;
    eight_layout)  # 8 cameras, shared trigger: the default NHWC convolutions, then NCHW (prefer_nhwc=0)
      eight aligned nhwc; eight aligned nchw --cuda-option prefer_nhwc=0 ;;
    eight_ab)  # 8 cameras, shared trigger: the whole graph, then the steps enqueued one by one
      eight aligned whole; eight aligned steps --no-whole-graph ;;
    probe|probe_hold|probe_nhwc|probe_naive|probe_naive_eager)  # does a later engine run slower because of the clock or the instance?
      echo "== engine order probe: $step"
      env=(MODE=revisit); [ "$step" = probe_hold ] && env+=(PREALLOC_GB=8)
      [ "$step" = probe_nhwc ] && env+=(CUDA_OPTIONS=prefer_nhwc=1)
      [[ "$step" = probe_naive* ]] && env+=("STEPS=+A,A,N,A,-N,A,X,A,+B,-B,A")
      [ "$step" = probe_naive_eager ] && env+=(CUDA_MODULE_LOADING=EAGER)
      env "${env[@]}" python3 tools/gpu/engine_order_probe.py 2>&1 | grep -Ev "Warning|warn" | cut -c1-300 ;;
    tests)
      echo "== gpu tests"
      python3 -m pytest tests/gpu -q -rfEs -p no:cacheprovider -W ignore > "$OUT/gpu_tests.txt" 2>&1
      grep -E "^(FAILED|ERROR|SKIPPED)|^E  |passed|failed" "$OUT/gpu_tests.txt" | cut -c1-300 | tail -25 ;;
    tests_new)  # the newest GPU tests alone
      echo "== new gpu tests"
      python3 -m pytest tests/gpu/test_ort_gpu.py -k "blocking_wait or detect_end_to_end_with_graphs" -q -rfEs -p no:cacheprovider -W ignore 2>&1 \
        | grep -vE "onnxruntime_pybind|^\s*$" | tail -40 | cut -c1-300 ;;
    one_proc)  # the old order: raw engine, naive loop and stations one after another in one process
      echo "== 1 camera, one process ($i)"; watch_host
      "${one[@]}" --one-process > "$OUT/bench_1cam_oneproc_$i.txt" 2>&1
      summary "$OUT/bench_1cam_oneproc_$i.txt" ;;
    one)
      echo "== 1 camera ($i)"; watch_host
      "${one[@]}" --plot "$OUT/bench_1cam_$i.png" > "$OUT/bench_1cam_$i.txt" 2>&1
      summary "$OUT/bench_1cam_$i.txt" ;;
    nchw)  # A/B of the default NHWC convolutions (engine.cuda_nhwc)
      echo "== 1 camera, prefer_nhwc=0 ($i)"; watch_host
      "${one[@]}" --cuda-option prefer_nhwc=0 > "$OUT/bench_1cam_nchw_$i.txt" 2>&1
      summary "$OUT/bench_1cam_nchw_$i.txt" ;;
    eight)
      eight aligned; eight free ;;
    eight_aligned|eight_free)  # one phase alone (a short GPU budget)
      eight "${step#eight_}" ;;
    eight_diag)  # 8 cameras with a heartbeat thread inside the station's process (stall diagnosis)
      eight aligned diag --heartbeat-ms 5; eight free diag --heartbeat-ms 5 ;;
  esac
done
