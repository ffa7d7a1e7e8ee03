"""Build the YOLOv8n-sized detector (random weights) as ONNX with onnx.helper and NumPy: no torch.

Why: CPU and INT8 timings need a model of the size lines actually run (YOLOv8n: ~3.2 M
parameters, ~8.7 GFLOPs at 640x640), on machines where torch is not installed; Ultralytics
weights cannot be downloaded. This writes the graph ``export_yolov8n.py`` gets from torch, with
batch norm already folded into each convolution (as ``torch.onnx.export`` does in eval mode):
Conv + SiLU (Sigmoid, Mul), C2f, SPPF, the PAN neck and the decoupled head with DFL. Weights
are drawn like torch's default initialisation (uniform in +-1/sqrt(fan_in)), and class biases
are set as Ultralytics initialises them, so scores are low and few candidates pass a threshold,
like a trained model on a clean part. Detections from it are meaningless; shapes, FLOPs and
memory traffic are the real thing.

Output layout ``yolov8``: input ``images`` [batch, 3, height, width] float32 in [0, 1]; output
``output0`` [batch, 4 + nc, anchors] with (cx, cy, w, h) in input pixels and sigmoid class
scores. Height and width are dynamic (multiples of 32).

    python recipes/models/build_yolov8n_onnx.py --out var/models/yolov8n.onnx [--classes 80]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8
REG_MAX = 16
STRIDES = (8, 16, 32)
BN_EPS = 1e-3  # Ultralytics' BatchNorm2d(eps=1e-3); at initialisation (mean 0, var 1) it scales by 1/sqrt(1+eps)


class _Graph:
    """Nodes and initializers under unique names; each layer method returns its output's name."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.params = 0
        self._count = 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"/{hint}_{self._count}"

    def const(self, value: np.ndarray, hint: str = "c", weight: bool = False) -> str:
        name = self.name(hint)
        self.inits.append(numpy_helper.from_array(value, name))
        if weight:
            self.params += value.size
        return name

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, outputs: int = 1, **attrs: Any) -> str:
        outs = [self.name(hint or op_type) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=outs[0] + "/" + op_type, **attrs))
        return outs[0] if outputs == 1 else ",".join(outs)

    def conv(self, x: str, c1: int, c2: int, k: int = 1, s: int = 1, act: bool = True,
             bias: np.ndarray | None = None) -> str:  # fmt: skip
        """Conv-BN-SiLU with BN folded (``act``), or the head's plain biased Conv (``not act``)."""
        bound = 1.0 / math.sqrt(c1 * k * k)
        w = self.rng.uniform(-bound, bound, (c2, c1, k, k)).astype(np.float32)
        if act:
            w *= np.float32(1.0 / math.sqrt(1.0 + BN_EPS))
            b = np.zeros(c2, np.float32)
        else:
            b = bias if bias is not None else self.rng.uniform(-bound, bound, c2).astype(np.float32)
        y = self.op("Conv", [x, self.const(w, "w", True), self.const(b.astype(np.float32), "b", True)], "conv",
                    kernel_shape=[k, k], strides=[s, s], pads=[k // 2] * 4)  # fmt: skip
        return self.op("Mul", [y, self.op("Sigmoid", [y])], "silu") if act else y

    def c2f(self, x: str, c1: int, c2: int, n: int, shortcut: bool) -> str:
        c = c2 // 2
        halves = self.op("Split", [self.conv(x, c1, 2 * c), self.const(np.array([c, c], np.int64), "split")],
                         "split", outputs=2, axis=1).split(",")  # fmt: skip
        ys = list(halves)
        for _ in range(n):
            y = self.conv(self.conv(ys[-1], c, c, 3), c, c, 3)
            ys.append(self.op("Add", [ys[-1], y]) if shortcut else y)
        return self.conv(self.op("Concat", ys, axis=1), (2 + n) * c, c2)

    def sppf(self, x: str, c1: int, c2: int) -> str:
        c = c1 // 2
        y0 = self.conv(x, c1, c)
        y1 = self.op("MaxPool", [y0], kernel_shape=[5, 5], strides=[1, 1], pads=[2, 2, 2, 2])
        y2 = self.op("MaxPool", [y1], kernel_shape=[5, 5], strides=[1, 1], pads=[2, 2, 2, 2])
        y3 = self.op("MaxPool", [y2], kernel_shape=[5, 5], strides=[1, 1], pads=[2, 2, 2, 2])
        return self.conv(self.op("Concat", [y0, y1, y2, y3], axis=1), 4 * c, c2)

    def up(self, x: str) -> str:
        scales = self.const(np.array([1, 1, 2, 2], np.float32), "scales")
        return self.op("Resize", [x, "", scales], "up", mode="nearest", coordinate_transformation_mode="asymmetric",
                       nearest_mode="floor")  # fmt: skip

    def anchors(self, feat: str) -> str:
        """[1, 2, h*w] cell centres (x, y) of ``feat``'s grid, from its run-time shape."""
        shape = self.op("Shape", [feat])
        hw = self.op("Slice", [shape, self.const(np.array([2], np.int64)), self.const(np.array([4], np.int64))])
        half, one = self.const(np.array(0.5, np.float32)), self.const(np.array(1.0, np.float32))
        axes = []
        for i in (2, 3):
            size = self.op("Cast", [self.op("Gather", [shape, self.const(np.array(i, np.int64))], axis=0)],
                           to=TensorProto.FLOAT)  # fmt: skip
            axes.append(self.op("Range", [half, self.op("Add", [size, half]), one]))
        yy = self.op("Expand", [self.op("Unsqueeze", [axes[0], self.const(np.array([1], np.int64))]), hw])
        xx = self.op("Expand", [self.op("Unsqueeze", [axes[1], self.const(np.array([0], np.int64))]), hw])
        flat = self.const(np.array([1, 1, -1], np.int64))
        return self.op("Concat", [self.op("Reshape", [xx, flat]), self.op("Reshape", [yy, flat])], axis=1)

    def detect(self, feats: list[str], ch: tuple[int, int, int], nc: int) -> str:
        """Decoupled head + DFL: [B, 4 + nc, N] (xywh in pixels, sigmoid scores)."""
        c2, c3 = max(16, ch[0] // 4, REG_MAX * 4), max(ch[0], min(nc, 100))
        proj = self.const(np.arange(REG_MAX, dtype=np.float32).reshape(1, REG_MAX, 1, 1), "proj")
        boxes, scores = [], []
        for x, c, stride in zip(feats, ch, STRIDES, strict=True):
            box = self.conv(self.conv(self.conv(x, c, c2, 3), c2, c2, 3), c2, 4 * REG_MAX, act=False)
            cls_bias = np.full(nc, math.log(5 / nc / (640 / stride) ** 2), np.float32)  # Ultralytics' bias init
            cls = self.conv(self.conv(self.conv(x, c, c3, 3), c3, c3, 3), c3, nc, act=False, bias=cls_bias)
            box = self.op("Reshape", [box, self.const(np.array([0, 4, REG_MAX, -1], np.int64))])
            box = self.op("Softmax", [self.op("Transpose", [box], perm=[0, 2, 1, 3])], axis=1)  # [B, 16, 4, hw]
            dist = self.op("ReduceSum", [self.op("Mul", [box, proj]), self.const(np.array([1], np.int64))],
                           keepdims=0)  # [B, 4, hw]  # fmt: skip
            lt, rb = self.op("Split", [dist, self.const(np.array([2, 2], np.int64))], outputs=2, axis=1).split(",")
            anchor = self.anchors(x)
            x1y1, x2y2 = self.op("Sub", [anchor, lt]), self.op("Add", [anchor, rb])
            centre = self.op("Div", [self.op("Add", [x1y1, x2y2]), self.const(np.array(2.0, np.float32))])
            xywh = self.op("Concat", [centre, self.op("Sub", [x2y2, x1y1])], axis=1)
            boxes.append(self.op("Mul", [xywh, self.const(np.array(float(stride), np.float32))]))
            scores.append(self.op("Reshape", [cls, self.const(np.array([0, nc, -1], np.int64))]))
        sig = self.op("Sigmoid", [self.op("Concat", scores, axis=2)])
        return self.op("Concat", [self.op("Concat", boxes, axis=2), sig], axis=1)


def build_model(nc: int = 80, seed: int = 0) -> tuple[onnx.ModelProto, int]:
    """The YOLOv8n graph with random weights for ``nc`` classes, and its parameter count."""
    g = _Graph(np.random.default_rng(seed))
    x = g.conv("images", 3, 16, 3, 2)
    x = g.c2f(g.conv(x, 16, 32, 3, 2), 32, 32, 1, True)
    p3 = g.c2f(g.conv(x, 32, 64, 3, 2), 64, 64, 2, True)
    p4 = g.c2f(g.conv(p3, 64, 128, 3, 2), 128, 128, 2, True)
    p5 = g.sppf(g.c2f(g.conv(p4, 128, 256, 3, 2), 256, 256, 1, True), 256, 256)
    h12 = g.c2f(g.op("Concat", [g.up(p5), p4], axis=1), 384, 128, 1, False)
    o3 = g.c2f(g.op("Concat", [g.up(h12), p3], axis=1), 192, 64, 1, False)
    o4 = g.c2f(g.op("Concat", [g.conv(o3, 64, 64, 3, 2), h12], axis=1), 192, 128, 1, False)
    o5 = g.c2f(g.op("Concat", [g.conv(o4, 128, 128, 3, 2), p5], axis=1), 384, 256, 1, False)
    out = g.detect([o3, o4, o5], (64, 128, 256), nc)
    g.nodes.append(helper.make_node("Identity", [out], ["output0"], name="/output0/Identity"))
    graph = helper.make_graph(
        g.nodes, "yolov8n-random",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", 4 + nc, "anchors"])],
        g.inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="linecheck")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model, g.params


def build(out: Path, nc: int = 80, seed: int = 0) -> tuple[Path, int]:
    """Write the model to ``out`` (atomically: a half-written file never takes its name)."""
    model, params = build_model(nc, seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    staged = out.with_name(f".{out.name}.tmp")
    onnx.save(model, str(staged))
    staged.replace(out)
    return out, params


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("var/models/yolov8n.onnx"))
    ap.add_argument("--classes", type=int, default=80)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    path, params = build(args.out, args.classes, args.seed)
    print(f"built {path} ({path.stat().st_size / 1e6:.1f} MB, {params / 1e6:.2f} M parameters, random weights)")


if __name__ == "__main__":
    main()
