"""An ONNX detector laid out exactly as ``yolo export format=onnx`` writes a YOLOv8/YOLO11 model,
built with onnx.helper (no torch, no ultralytics) so a test can follow the own-model quickstart.

What matches the export: input ``images`` float32 ``[1, 3, 640, 640]`` (``dynamic=True``:
``[batch, 3, height, width]``), RGB, 0-1; output ``output0`` ``[1, 4 + C, N]`` (``dynamic=True``:
``[batch, 4 + C, anchors]``) with rows cx, cy, w, h in input pixels and one sigmoid-like score
per class; metadata_props as the exporter writes them (every value ``str()``-ed, so ``names`` is
a dict literal such as ``"{0: 'scratch', 1: 'dent'}"``).

What the "network" computes, so verdicts can be predicted: one candidate per 32x32 cell of the
input (N = H/32 * W/32, a stand-in for the export's three strides); box = the cell; class 0
scores the brightest pixel of the cell (a white spot is a "scratch"), class 1 one minus the
darkest (a black spot is a "dent"), on the channel mean.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

STRIDE = 32


def export_like_ultralytics(path: Path, names: dict[int, str], dynamic: bool = False, imgsz: int = 640) -> Path:
    if len(names) != 2:
        raise ValueError("this stand-in scores exactly two classes (bright, dark)")
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["gray"], axes=[1], keepdims=1),  # [B, 1, H, W]
        helper.make_node("MaxPool", ["gray"], ["bright"], kernel_shape=[STRIDE, STRIDE], strides=[STRIDE, STRIDE]),
        helper.make_node("Neg", ["gray"], ["neg"]),
        helper.make_node("MaxPool", ["neg"], ["neg_dark"], kernel_shape=[STRIDE, STRIDE], strides=[STRIDE, STRIDE]),
        helper.make_node("Add", ["neg_dark", "one"], ["dark"]),  # 1 - min
        helper.make_node("Concat", ["bright", "dark"], ["cells"], axis=1),  # [B, 2, h, w]
        helper.make_node("Reshape", ["cells", "flat"], ["scores"]),  # [B, 2, h*w]
        # cell centres: Range over the pooled grid's own shape, so dynamic inputs work
        helper.make_node("Shape", ["bright"], ["grid_shape"]),
        helper.make_node("Gather", ["grid_shape", "i2"], ["gh"], axis=0),
        helper.make_node("Gather", ["grid_shape", "i3"], ["gw"], axis=0),
        helper.make_node("Range", ["zero_i", "gh", "one_i"], ["rows"]),
        helper.make_node("Range", ["zero_i", "gw", "one_i"], ["cols"]),
        helper.make_node("Cast", ["rows"], ["rows_f"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["cols"], ["cols_f"], to=TensorProto.FLOAT),
        helper.make_node("Add", ["rows_f", "half"], ["rows_c"]),
        helper.make_node("Add", ["cols_f", "half"], ["cols_c"]),
        helper.make_node("Mul", ["rows_c", "stride"], ["cy1"]),
        helper.make_node("Mul", ["cols_c", "stride"], ["cx1"]),
        helper.make_node("Unsqueeze", ["cy1", "ax1"], ["cy_col"]),  # [h, 1]
        helper.make_node("Unsqueeze", ["cx1", "ax0"], ["cx_row"]),  # [1, w]
        helper.make_node("Mul", ["cy_col", "zero_f"], ["zy"]),
        helper.make_node("Mul", ["cx_row", "zero_f"], ["zx"]),
        helper.make_node("Add", ["zy", "zx"], ["zeros_hw"]),  # [h, w]
        helper.make_node("Add", ["cy_col", "zeros_hw"], ["cy"]),
        helper.make_node("Add", ["cx_row", "zeros_hw"], ["cx"]),
        helper.make_node("Add", ["zeros_hw", "stride"], ["side"]),
        helper.make_node("Unsqueeze", ["cx", "ax0"], ["cx3"]),
        helper.make_node("Unsqueeze", ["cy", "ax0"], ["cy3"]),
        helper.make_node("Unsqueeze", ["side", "ax0"], ["side3"]),
        helper.make_node("Concat", ["cx3", "cy3", "side3", "side3"], ["boxes_hw"], axis=0),  # [4, h, w]
        helper.make_node("Reshape", ["boxes_hw", "flat1"], ["boxes1"]),  # [1, 4, h*w]
        helper.make_node("ReduceSum", ["scores", "ax1"], ["ssum"], keepdims=1),  # [B, 1, N]
        helper.make_node("Mul", ["ssum", "zero_f"], ["zb"]),
        helper.make_node("Add", ["boxes1", "zb"], ["boxes"]),  # [B, 4, N]
        helper.make_node("Concat", ["boxes", "scores"], ["output0"], axis=1),  # [B, 4 + 2, N]
    ]
    inits = [
        numpy_helper.from_array(np.array(1.0, np.float32), "one"),
        numpy_helper.from_array(np.array([0, 2, -1], np.int64), "flat"),
        numpy_helper.from_array(np.array([1, 4, -1], np.int64), "flat1"),
        numpy_helper.from_array(np.array(2, np.int64), "i2"),
        numpy_helper.from_array(np.array(3, np.int64), "i3"),
        numpy_helper.from_array(np.array(0, np.int64), "zero_i"),
        numpy_helper.from_array(np.array(1, np.int64), "one_i"),
        numpy_helper.from_array(np.array(0.5, np.float32), "half"),
        numpy_helper.from_array(np.array(float(STRIDE), np.float32), "stride"),
        numpy_helper.from_array(np.array(0.0, np.float32), "zero_f"),
        numpy_helper.from_array(np.array([0], np.int64), "ax0"),
        numpy_helper.from_array(np.array([1], np.int64), "ax1"),
    ]
    if dynamic:
        in_dims: list[int | str] = ["batch", 3, "height", "width"]
        out_dims: list[int | str] = ["batch", 4 + len(names), "anchors"]
    else:
        in_dims = [1, 3, imgsz, imgsz]
        out_dims = [1, 4 + len(names), (imgsz // STRIDE) ** 2]
    graph = helper.make_graph(
        nodes,
        "main_graph",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, in_dims)],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, out_dims)],
        inits,
    )
    model = helper.make_model(graph, producer_name="pytorch", opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    metadata = {  # ultralytics/engine/exporter.py: every value str()-ed
        "description": "Ultralytics YOLO11n model trained on parts.yaml",
        "author": "Ultralytics",
        "version": "8.3.0",
        "license": "AGPL-3.0 License (https://ultralytics.com/license)",
        "docs": "https://docs.ultralytics.com",
        "stride": STRIDE,
        "task": "detect",
        "batch": 1,
        "imgsz": [imgsz, imgsz],
        "names": names,
        "args": {"batch": 1, "half": False, "dynamic": dynamic, "nms": False},
    }
    helper.set_model_props(model, {k: str(v) for k, v in metadata.items()})
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
