"""A deliberately weaker copy of a model: the stand-in for "a candidate trained for fewer
steps" in the demo-line tests and tools/shadow_p99.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def weaker_copy(model: Path, out: Path, scale: float = 0.25, seed: int = 7) -> Path:
    """The demo model with its last layers' weights shrunk and jittered: it sees less."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(model))
    rng = np.random.default_rng(seed)
    for init in list(proto.graph.initializer)[-6:]:
        arr = numpy_helper.to_array(init).astype(np.float32)
        new = arr * scale + rng.normal(0, float(arr.std()) * 0.2, arr.shape).astype(np.float32)
        init.CopyFrom(numpy_helper.from_array(new.astype(arr.dtype), init.name))
    onnx.save(proto, str(out))
    return out
