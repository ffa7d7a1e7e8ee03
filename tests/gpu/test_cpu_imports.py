"""The CPU path never loads CUDA: runs on every machine (not marked gpu)."""

from __future__ import annotations

import subprocess
import sys


def test_cpu_engine_imports_leave_cuda_out() -> None:
    code = (
        "import sys, inference, inference.onnxruntime, inference.letterbox, inference.decode, inference.nms;"
        "bad = sorted(m for m in sys.modules if m == 'cuda' or m.startswith(('cuda.', 'tensorrt', 'cupy')));"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"CPU imports loaded CUDA modules: {proc.stdout} {proc.stderr[-500:]}"


def test_gpu_modules_import_without_a_gpu() -> None:
    """Importing the GPU modules must not need a device (they are imported for skips, docs)."""
    code = "import inference.gpu.cuda, inference.gpu.preprocess, inference.gpu.decode, inference.tensorrt.build"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-800:]
