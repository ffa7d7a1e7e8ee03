#!/usr/bin/env bash
# Pack onnxruntime-gpu for a GPU host without a package index, in five parts:
# the unpacked wheel as an xz tarball (204 MB vs the 256 MB wheel), cut into 50 MiB parts
# under the git-ignored .gpuwheel/partNN (each part + the working tree fits one 64 MiB call).
#
#   bash tools/gpu/pack_ort_gpu.sh [VERSION]       # default 1.31.1 (built for CUDA 13)
#
# Then, back-to-back (the host keeps /tmp only while it stays warm, 30 s between calls):
#   run carry [".gpuwheel/part00"]: mkdir -p /tmp/w && cp .gpuwheel/part00/* /tmp/w/
#   run carry [".gpuwheel/part01"]: cp .gpuwheel/part01/* /tmp/w/
#   run carry [".gpuwheel/part02"]: cp .gpuwheel/part02/* /tmp/w/
#   run carry [".gpuwheel/part03", ".whl"]: bash tools/gpu/run_gpu_suite.sh
# run_gpu_suite.sh joins /tmp/w/ort.part* (+ the carried last part), checks the sha256 and
# unpacks into /tmp/site. (Plain split-wheel parts, *.whl.partNN in /tmp/w, work too.)
set -euo pipefail
version=${1:-1.31.1}
top=$(git rev-parse --show-toplevel)
cd "$top"
grep -qx '/.gpuwheel/' .git/info/exclude 2>/dev/null || { mkdir -p .git/info; printf '/.gpuwheel/\n' >> .git/info/exclude; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d "$work" "onnxruntime-gpu==$version"
(cd "$work" && unzip -q ./*.whl -d x && tar -C x -cf - . | xz -T0 -6 > ort.tar.xz)
rm -rf .gpuwheel && mkdir -p .gpuwheel
split -b 50M -d -a 2 "$work/ort.tar.xz" .gpuwheel/ort.part
for f in .gpuwheel/ort.part*; do n=${f##*part}; mkdir -p ".gpuwheel/part$n"; mv "$f" ".gpuwheel/part$n/"; done
last=$(ls -d .gpuwheel/part* | sort | tail -1)
sha256sum "$work/ort.tar.xz" > "$last/sha256"
ls -la .gpuwheel/*
