"""Does an ONNX model fit its recipe? Shared by ``linecheck validate`` and the ORT engine.

``check_model`` returns human-readable problems (empty list: fine) and never raises; the
engine calls the same ``open_session`` / ``inspect_session`` / ``probe_outputs`` and raises
``EngineLoadError`` with the same words, so validate and load agree.

The model is loaded with onnxruntime (a base dependency), not the ``onnx`` package (a dev
extra). Static dimensions are checked from the session's metadata; dynamic ones (typically
the candidate count N, which depends on the input size) by one probe run on a zero tensor at
the profile's ``opt`` shape, so a yolov8 model exported for the wrong class count is refused at
load time instead of on the first part.

Class names: an Ultralytics export carries them in the ONNX metadata ``names`` as a Python
dict literal (``"{0: 'scratch', 1: 'dent'}"``). When present and readable they must equal the
recipe's ``classes`` in order: a recipe listing the same classes in another order would
report every dent as a scratch, and no shape check can see that. Models without the entry
(or with one that is not such a literal) are not compared.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from inference.config import InputProfile
from inference.decode import expected_width
from inference.engine import DetectorSpec
from inference.letterbox import effective_bounds

Dim = int | None  # None: dynamic (symbolic or unknown)

_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


@dataclass(frozen=True)
class ModelInfo:
    input_name: str
    input_dtype: type[np.generic]
    input_dims: tuple[Dim, Dim, Dim, Dim]  # N, C, H, W
    output_name: str
    output_dims: tuple[Dim, ...]

    @property
    def static_batch(self) -> int | None:
        return self.input_dims[0]

    def profile(self, declared: InputProfile) -> InputProfile:
        """The recipe profile with statically fixed input axes pinned to the model's size."""
        lo, opt, hi = list(declared.min), list(declared.opt), list(declared.max)
        for axis, dim in enumerate(self.input_dims[2:]):
            if dim is not None:
                lo[axis] = opt[axis] = hi[axis] = dim
        return InputProfile(min=(lo[0], lo[1]), opt=(opt[0], opt[1]), max=(hi[0], hi[1]))


def open_session(path: Path | bytes, intra_op_threads: int = 0, spin: bool = True) -> ort.InferenceSession:
    """CPU session: all graph optimizations, sequential execution; raises on any load failure.

    ``spin=False`` makes idle intra-op workers sleep instead of spinning (``EngineOptions.cpu_spin``).
    """
    options = ort.SessionOptions()
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = intra_op_threads
    options.log_severity_level = 3  # errors only; problems reach the user through our messages
    model = path if isinstance(path, bytes) else str(path)
    return ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])


def inspect_session(session: Any, spec: DetectorSpec) -> tuple[ModelInfo | None, list[str]]:
    """Check input/output metadata against the spec; ``(None, problems)`` when unusable."""
    path = spec.model.onnx
    problems = _spec_problems(spec)
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1:
        problems.append(f"{path}: expected 1 input (an NCHW image), the model has {len(inputs)}: {[i.name for i in inputs]}")
        return None, problems
    inp = inputs[0]
    in_dims = tuple(_dim(d) for d in inp.shape)
    if len(in_dims) != 4:
        problems.append(f"{path}: input {inp.name!r} must be 4-D NCHW, got shape {list(inp.shape)}")
    elif in_dims[1] is not None and in_dims[1] != spec.model.channels:
        problems.append(f"{path}: input {inp.name!r} has {in_dims[1]} channels, recipe model.channels is {spec.model.channels}")
    if inp.type not in _DTYPES:
        problems.append(f"{path}: input {inp.name!r} must be float32 or float16, got {inp.type}")
    if not outputs:
        problems.append(f"{path}: the model has no outputs")
        return None, problems
    problems += class_name_problems(path, metadata_class_names(session), spec.classes)
    out = outputs[0]
    out_dims = tuple(_dim(d) for d in out.shape)
    problems += output_problems(path, spec.model.layout, len(spec.classes), out_dims, out.name, "declared")
    if problems:
        return None, problems
    info = ModelInfo(inp.name, _DTYPES[inp.type], in_dims, out.name, out_dims)  # type: ignore[arg-type]
    problems += _profile_problems(path, info, spec)
    return (None if problems else info), problems


def metadata_class_names(session: Any) -> tuple[str, ...] | None:
    """Class names from the ONNX metadata ``names`` (Ultralytics: a dict literal by class id,
    a list also accepted); None when absent or unreadable."""
    try:
        text = session.get_modelmeta().custom_metadata_map.get("names")
    except Exception:  # noqa: BLE001 - metadata is optional
        return None
    if not isinstance(text, str):
        return None
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    if isinstance(value, dict) and all(isinstance(k, int) for k in value) and sorted(value) == list(range(len(value))):
        return tuple(str(value[i]) for i in range(len(value)))
    if isinstance(value, list | tuple):
        return tuple(str(v) for v in value)
    return None


def class_name_problems(path: Path, model_names: tuple[str, ...] | None, recipe_classes: tuple[str, ...]) -> list[str]:
    if model_names is None or tuple(model_names) == tuple(recipe_classes):
        return []
    return [
        f"{path}: the model's class names (ONNX metadata 'names') are {list(model_names)}, "
        f"the recipe's classes are {list(recipe_classes)}; list the recipe's classes exactly as the model's, in the same order"
    ]


def output_problems(
    path: Path, layout: str, num_classes: int, dims: tuple[Dim, ...], name: str = "output", what: str = "actual"
) -> list[str]:
    """Does an output shape (static or actual) fit the layout for ``num_classes`` classes?"""
    axis, size = expected_width(layout, num_classes)
    want = {"yolov5": f"[B, N, {size}] (5 + {num_classes} classes)", "yolov8": f"[B, {size}, N] (4 + {num_classes} classes)"}
    want_text = want.get(layout, "[B, K, 6] (x1, y1, x2, y2, score, class)")
    shown = [("?" if d is None else d) for d in dims]
    if len(dims) == 3 and dims[axis] in (None, size):
        return []
    return [f"{path}: {what} output {name!r} shape {shown} does not fit layout {layout}: need {want_text}"]


def probe_outputs(session: Any, info: ModelInfo, spec: DetectorSpec) -> list[str]:
    """One run on zeros at the (stride-snapped) opt shape; checks the actual output shape."""
    profile = info.profile(spec.model.input)
    (lo_h, lo_w), (hi_h, hi_w) = effective_bounds(profile, spec.model.stride)
    stride = spec.model.stride
    h = min(hi_h, max(lo_h, -(-profile.opt[0] // stride) * stride))
    w = min(hi_w, max(lo_w, -(-profile.opt[1] // stride) * stride))
    tensor = np.zeros((info.static_batch or 1, spec.model.channels, h, w), info.input_dtype)
    path = spec.model.onnx
    try:
        (out,) = session.run([info.output_name], {info.input_name: tensor})
    except Exception as exc:  # noqa: BLE001 - any runtime failure is a model problem here
        return [f"{path}: probe run at input {list(tensor.shape)} failed: {_short(exc)}"]
    dims = tuple(int(d) for d in np.shape(out))
    return output_problems(path, spec.model.layout, len(spec.classes), dims, info.output_name)


def check_model(spec: DetectorSpec) -> list[str]:
    """Problems that stop this model from serving the recipe; never raises."""
    path = spec.model.onnx
    if not Path(path).is_file():
        return [f"{path}: model file not found"]
    try:
        session = open_session(path, intra_op_threads=1)
    except Exception as exc:  # noqa: BLE001
        return [f"{path}: not a loadable ONNX model: {_short(exc)}"]
    try:
        info, problems = inspect_session(session, spec)
        if info is not None:
            problems += probe_outputs(session, info, spec)
        return problems
    except Exception as exc:  # noqa: BLE001 - validate must report, not crash
        return [f"{path}: model check failed: {_short(exc)}"]


def _spec_problems(spec: DetectorSpec) -> list[str]:
    if not spec.classes:
        return [f"{spec.model.onnx}: the recipe declares no classes"]
    if len(spec.score_thresholds) != len(spec.classes):
        return [f"{spec.model.onnx}: {len(spec.score_thresholds)} score thresholds for {len(spec.classes)} classes"]
    return []


def _profile_problems(path: Path, info: ModelInfo, spec: DetectorSpec) -> list[str]:
    declared = spec.model.input
    problems = []
    for axis, name in ((0, "height"), (1, "width")):
        dim = info.input_dims[2 + axis]
        if dim is not None and not (declared.min[axis] <= dim <= declared.max[axis]):
            problems.append(
                f"{path}: input {name} is fixed at {dim}, outside the recipe's input profile "
                f"[{declared.min[axis]}, {declared.max[axis]}]"
            )
    return problems


def _dim(d: object) -> Dim:
    return d if isinstance(d, int) and d > 0 else None


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
