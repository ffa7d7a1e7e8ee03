#!/usr/bin/env bash
# Every GPU test and a short benchmark, in ONE call on the GPU host (tool `run`, or any CUDA box).
#
#   bash tools/gpu/run_gpu_suite.sh            # log + JSON under $OUT (or var/gpu-suite)
#
# Python packages the host lacks travel with the call:
#   .whl/*.whl                      pydantic & co., onnxconverter-common: installed to /tmp/site
#   .whlcpu/*.whl                   asyncua, cryptography, paho-mqtt & co.: likewise
#   /tmp/w/ort.part* and/or .gpuwheel/part*/ort.part*
#                                   onnxruntime-gpu, an xz tarball of the unpacked wheel cut in
#                                   parts (earlier calls append parts to /tmp/w); joined,
#                                   sha256-checked, unpacked to /tmp/site
# tools/gpu/pack_ort_gpu.sh makes those parts and prints the call sequence.
# Steps: environment report → pytest tests/gpu (+ tests/inference_trt where tensorrt-rtx is
# installed) → YOLOv8n-sized export → tools.gpu.gpu_bench (preprocess GPU vs CPU, ORT CUDA
# p50 with/without CUDA graphs, fp32/fp16, decode). Exit status: pytest's.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-$PWD/var/gpu-suite}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/gpu_suite.log") 2>&1
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0
SITE=/tmp/site
mkdir -p "$SITE" /tmp/w

for wheels in .whl .whlcpu; do  # .whlcpu: asyncua, cryptography & co. (MES and uplink benches)
  if compgen -G "$wheels/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$SITE" "$wheels"/*.whl || echo "WARN: $wheels install failed"
  fi
done
for p in .gpuwheel/part*/ort.part*; do [ -f "$p" ] && cp "$p" /tmp/w/; done
if compgen -G "/tmp/w/ort.part*" >/dev/null; then
  cat $(ls /tmp/w/ort.part* | sort) > /tmp/w/ort.tar.xz
  want=$(cat .gpuwheel/part*/sha256 2>/dev/null | awk '{print $1}' | head -1)
  have=$(sha256sum /tmp/w/ort.tar.xz | awk '{print $1}')
  if [ -n "$want" ] && [ "$want" != "$have" ]; then
    echo "WARN: onnxruntime-gpu parts incomplete (sha256 $have != $want); skipping it"
  else
    tar -xJf /tmp/w/ort.tar.xz -C "$SITE" && echo "onnxruntime-gpu unpacked to $SITE"
  fi
fi
for whl in $(ls /tmp/w/*.whl.part* 2>/dev/null | sed 's/\.part[0-9]*$//' | sort -u); do  # split-wheel parts
  cat $(ls "$whl".part* | sort) > "$whl" && python3 -m pip install -q --no-index --no-deps --target "$SITE" "$whl"
done
export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
# CUDA 13 / cuDNN libraries from the nvidia-* pip packages, for onnxruntime-gpu's providers
NV=$(python3 -c "import glob,site,os; print(':'.join(sorted({os.path.dirname(p) for d in site.getsitepackages() for p in glob.glob(d+'/nvidia/**/lib*.so*', recursive=True)})))" 2>/dev/null)
export LD_LIBRARY_PATH="${NV}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

SPY=$(command -v py-spy || ls /tmp/site/bin/py-spy 2>/dev/null || true)
if [ "${1:-}" = "--exec" ]; then  # any command in this environment (ORT GPU, carried wheels)
  shift
  exec "$@"
fi
if [ "${1:-}" = "--profile" ]; then
  # issue "Benchmarks": GPU tests, the per-step profile of the GPU path, the 1-camera station bench
  echo "== gpu tests"; python3 -m pytest tests/gpu -q -x -p no:cacheprovider 2>&1 | tail -4
  python3 recipes/models/export_yolov8n.py --out var/models/yolov8n.onnx 2>&1 | tail -1
  echo "== gpu path profile"
  python3 -m tools.gpu.gpu_profile var/models/yolov8n.onnx --fp16 --batch 1 8 --json "$OUT/gpu_profile.json"
  echo "== 1 camera"
  python3 -m tools.bench --backend onnxruntime-cuda --model yolov8n --fp16 --frames 1000 --plc client --json \
    --plot "$OUT/bench_yolov8n_fp16_cuda.png" | tee "$OUT/bench_1cam.txt"
  exit 0
fi
if [ "${1:-}" = "--eight" ]; then
  # 8 cameras at RATE Hz each (default 190: 1520 frames/s), 20 ms budget; py-spy where it runs
  rate=${2:-190}
  for phase in aligned free; do
    echo "== 8 cameras x $rate Hz, $phase"
    cmd=(python3 -m tools.bench --backend onnxruntime-cuda --model yolov8n --fp16 --cameras 8 --frames 8000
         --rate-hz "$rate" --budget-ms 20 --plc server --phase "$phase" --no-naive --json)
    if [ -n "$SPY" ] && [ "$phase" = aligned ]; then  # --gil: only the thread holding the GIL
      "$SPY" record --gil --nonblocking --threads -r 250 -f raw -o "$OUT/spy_8cam_gil.txt" -- "${cmd[@]}" \
        | tee "$OUT/bench_8cam_$phase.txt"
    else
      "${cmd[@]}" | tee "$OUT/bench_8cam_$phase.txt"
    fi
  done
  [ "${3:-}" = "--one" ] || exit 0
  echo "== 1 camera"
  python3 -m tools.bench --backend onnxruntime-cuda --model yolov8n --fp16 --frames 1000 --plc client --json \
    --plot "$OUT/bench_yolov8n_fp16_cuda.png" | tee "$OUT/bench_1cam.txt"
  exit 0
fi
if [ "${1:-}" = "--station-bench" ]; then
  # issue "Benchmarks": the real station (`linecheck bench`) on the GPU, pipeline vs naive vs raw engine
  echo "== linecheck bench on $(nvidia-smi --query-gpu=name --format=csv,noheader)"
  python3 -m tools.bench --backend onnxruntime-cuda --model demo --frames 600 --plc client --json \
    --plot "$OUT/bench_demo_cuda.png" | tee "$OUT/bench_demo_cuda.txt"
  python3 -m tools.bench --backend onnxruntime-cuda --model yolov8n --fp16 --frames 1000 --plc client --json \
    --plot "$OUT/bench_yolov8n_fp16_cuda.png" | tee "$OUT/bench_yolov8n_fp16_cuda.txt"
  python3 -m tools.bench --backend onnxruntime-cuda --model yolov8n --fp16 --cameras 8 --frames 8000 \
    --budget-ms 20 --plc server --json | tee "$OUT/bench_yolov8n_fp16_cuda_8cam.txt"
  exit 0
fi

echo "== environment"
nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv,noheader
python3 - <<'PY'
import importlib
for m in ("cuda.bindings", "onnxruntime", "onnx", "cv2", "numpy", "pydantic", "torch", "onnxconverter_common"):
    try:
        mod = importlib.import_module(m)
        print(f"{m:22s} {getattr(mod, '__version__', '?')}  {getattr(mod, '__file__', '')}")
    except Exception as exc:
        print(f"{m:22s} MISSING ({exc})")
try:
    import onnxruntime as ort
    print("ORT providers:", ort.get_available_providers())
except Exception:
    pass
PY

echo "== tests"
suites="tests/gpu"
python3 -c "import tensorrt_rtx" 2>/dev/null && suites="$suites tests/inference_trt"
python3 -m pytest $suites -q -rs -p no:cacheprovider --junitxml="$OUT/junit.xml" -o junit_family=xunit2
status=$?

echo "== benchmark"
bench_args=()
if python3 -c "import onnxruntime as o, sys; sys.exit('CUDAExecutionProvider' not in o.get_available_providers())" 2>/dev/null; then
  python3 recipes/models/export_yolov8n.py --out /tmp/models/yolov8n.onnx 2>&1 | grep -v Warning
  bench_args+=(--yolov8n /tmp/models/yolov8n.onnx)
  demo=recipes/demo/demo-parts.onnx
  [ -f "$demo" ] || demo=${DEMO_ONNX:-}  # e.g. an export of a training checkpoint, for timings
  [ -n "$demo" ] && [ -f "$demo" ] && bench_args+=(--demo "$demo")
fi
python3 -m tools.gpu.gpu_bench "${bench_args[@]}" --iters "${BENCH_ITERS:-200}" --json "$OUT/gpu_bench.json"
echo "== done: pytest status $status"
exit $status
