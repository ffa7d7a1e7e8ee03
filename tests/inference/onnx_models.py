"""Tiny ONNX graphs with known outputs, built with onnx.helper (dev extra) for engine tests.

Every graph takes ``images`` [N, C, H, W] (H, W dynamic) and makes the output batch follow
the input batch by adding ``0 * mean(images)``, so batching is exercised for real.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 9


def _save(path: Path, nodes: list, inputs: list, outputs: list, initializers: list) -> Path:
    graph = helper.make_graph(nodes, "linecheck-test", inputs, outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _image_input(channels: int | None = 3, rank: int = 4, batch: int | None = None, hw: tuple[int, int] | None = None) -> onnx.ValueInfoProto:
    dims: list[int | str | None] = [batch or "N", channels if channels else "C", *(hw or ("H", "W"))][:rank]
    return helper.make_tensor_value_info("images", TensorProto.FLOAT, dims)


def constant_model(
    path: Path,
    value: np.ndarray,
    channels: int | None = 3,
    dynamic: bool = False,
    batch: int | None = None,
    hw: tuple[int, int] | None = None,
) -> Path:
    """Output ``value`` (shape [1, a, b]) broadcast over the input batch.

    ``dynamic``: pass the result through a Reshape whose target shape depends on the input at
    run time, so no shape inference can know the output dims ([N, ?, ?] until a run).
    """
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["m"], axes=[1, 2, 3], keepdims=0),  # [N]
        helper.make_node("Reshape", ["m", "shape3"], ["m3"]),  # [N, 1, 1]
        helper.make_node("Mul", ["m3", "zero"], ["z"]),
        helper.make_node("Add", ["z", "value"], ["static" if dynamic else "output"]),
    ]
    inits = [
        numpy_helper.from_array(np.array([-1, 1, 1], np.int64), "shape3"),
        numpy_helper.from_array(np.zeros((1, 1, 1), np.float32), "zero"),
        numpy_helper.from_array(value.astype(np.float32), "value"),
    ]
    if dynamic:  # target [0, -1, b] computed as ReduceMax(images) cast to int64 * 0 + [0, -1, b]
        nodes += [
            helper.make_node("ReduceMax", ["images"], ["mx"], keepdims=0),
            helper.make_node("Cast", ["mx"], ["mxi"], to=TensorProto.INT64),
            helper.make_node("Mul", ["mxi", "zero_i"], ["zi"]),
            helper.make_node("Add", ["zi", "target"], ["target_rt"]),
            helper.make_node("Reshape", ["static", "target_rt"], ["output"]),
        ]
        inits += [
            numpy_helper.from_array(np.array(0, np.int64), "zero_i"),
            numpy_helper.from_array(np.array([0, -1, value.shape[2]], np.int64), "target"),
        ]
    dims = ["N", "A", "B"] if dynamic else ["N", value.shape[1], value.shape[2]]
    out = helper.make_tensor_value_info("output", TensorProto.FLOAT, dims)
    return _save(path, nodes, [_image_input(channels, batch=batch, hw=hw)], [out], inits)


def colour_model(path: Path, box: tuple[float, float, float, float]) -> Path:
    """yolov8 [N, 4 + 3, 1]: one candidate at ``box`` (cx, cy, w, h), class c scores mean(channel c).

    Tells which colour the network saw: an RGB-red frame scores class 0, green 1, blue 2.
    """
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["chan"], axes=[2, 3], keepdims=0),  # [N, 3]
        helper.make_node("Unsqueeze", ["chan", "axis2"], ["scores"]),  # [N, 3, 1]
        helper.make_node("ReduceMean", ["images"], ["m"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Reshape", ["m", "shape3"], ["m3"]),
        helper.make_node("Mul", ["m3", "zero"], ["z"]),
        helper.make_node("Add", ["z", "box"], ["boxes"]),  # [N, 4, 1]
        helper.make_node("Concat", ["boxes", "scores"], ["output"], axis=1),
    ]
    inits = [
        numpy_helper.from_array(np.array([2], np.int64), "axis2"),
        numpy_helper.from_array(np.array([-1, 1, 1], np.int64), "shape3"),
        numpy_helper.from_array(np.zeros((1, 1, 1), np.float32), "zero"),
        numpy_helper.from_array(np.array(box, np.float32).reshape(1, 4, 1), "box"),
    ]
    out = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 7, 1])
    return _save(path, nodes, [_image_input(3)], [out], inits)


def bad_input_model(path: Path, rank: int = 2) -> Path:
    """Input of the wrong rank; output is a valid-looking yolov8 tensor."""
    inp = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", "K"][:rank] if rank <= 2 else ["N", 3, "H"])
    nodes = [helper.make_node("Identity", ["value"], ["output"])]
    inits = [numpy_helper.from_array(np.zeros((1, 6, 4), np.float32), "value")]
    out = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 6, 4])
    return _save(path, nodes, [inp], [out], inits)


def with_metadata(path: Path, props: dict[str, str]) -> Path:
    """Add ONNX metadata_props in place, as ``yolo export`` writes them (e.g. ``names``)."""
    model = onnx.load(str(path))
    helper.set_model_props(model, props)
    onnx.save(model, str(path))
    return path
