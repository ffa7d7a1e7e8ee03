"""Export a YOLOv8n-sized detector (random weights) to ONNX for GPU/bench runs.

Why: GPU timings need a model of the size lines actually run (YOLOv8n: ~3.2 M parameters,
~8.7 GFLOPs at 640x640), and we cannot download Ultralytics weights. This is the YOLOv8n
architecture in plain torch modules — Conv-BN-SiLU, C2f, SPPF, a PAN neck and the decoupled
head with DFL — with RANDOM weights (class biases set as Ultralytics initialises them, so
scores are low and few candidates pass a threshold, like a trained model on a clean part).
Detections from it are meaningless; shapes, FLOPs and memory traffic are the real thing.

Output layout ``yolov8``: input ``images`` [B, 3, H, W] float32 in [0, 1]; output ``output0``
[B, 4 + nc, N] with (cx, cy, w, h) in input pixels and sigmoid class scores. H and W are
dynamic (multiples of 32).

    .venv/bin/python recipes/models/export_yolov8n.py --out var/models/yolov8n.onnx [--classes 80]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn


class Conv(nn.Module):
    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, k // 2, bias=False)
        self.bn = nn.BatchNorm2d(c2, eps=1e-3, momentum=0.03)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    def __init__(self, c: int, shortcut: bool) -> None:
        super().__init__()
        self.cv1, self.cv2 = Conv(c, c, 3), Conv(c, c, 3)
        self.add = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C2f(nn.Module):
    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = False) -> None:
        super().__init__()
        self.c = c2 // 2
        self.cv1 = Conv(c1, 2 * self.c, 1)
        self.cv2 = Conv((2 + n) * self.c, c2, 1)
        self.m = nn.ModuleList(Bottleneck(self.c, shortcut) for _ in range(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = list(self.cv1(x).chunk(2, 1))
        for m in self.m:
            y.append(m(y[-1]))
        return self.cv2(torch.cat(y, 1))


class SPPF(nn.Module):
    def __init__(self, c1: int, c2: int, k: int = 5) -> None:
        super().__init__()
        c_ = c1 // 2
        self.cv1, self.cv2 = Conv(c1, c_, 1), Conv(c_ * 4, c2, 1)
        self.m = nn.MaxPool2d(k, 1, k // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cv1(x)
        y1 = self.m(x)
        y2 = self.m(y1)
        return self.cv2(torch.cat((x, y1, y2, self.m(y2)), 1))


class Detect(nn.Module):
    """Decoupled head + DFL; outputs [B, 4 + nc, N] (xywh in pixels, sigmoid scores)."""

    reg_max = 16
    strides = (8, 16, 32)

    def __init__(self, nc: int, ch: tuple[int, int, int]) -> None:
        super().__init__()
        self.nc = nc
        c2 = max(16, ch[0] // 4, self.reg_max * 4)
        c3 = max(ch[0], min(nc, 100))
        self.cv2 = nn.ModuleList(
            nn.Sequential(Conv(x, c2, 3), Conv(c2, c2, 3), nn.Conv2d(c2, 4 * self.reg_max, 1)) for x in ch
        )
        self.cv3 = nn.ModuleList(
            nn.Sequential(Conv(x, c3, 3), Conv(c3, c3, 3), nn.Conv2d(c3, nc, 1)) for x in ch
        )
        self.register_buffer(
            "proj", torch.arange(self.reg_max, dtype=torch.float32).view(1, self.reg_max, 1, 1)
        )
        for seq, s in zip(self.cv3, self.strides, strict=True):  # Ultralytics' bias init
            head: Any = seq
            nn.init.constant_(head[-1].bias, math.log(5 / nc / (640 / s) ** 2))

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        boxes, scores, anchors, strides = [], [], [], []
        for i, x in enumerate(feats):
            b = x.shape[0]
            h, w = x.shape[2], x.shape[3]
            box = self.cv2[i](x).view(b, 4, self.reg_max, -1).transpose(1, 2)  # [B, 16, 4, hw]
            proj: torch.Tensor = self.proj  # type: ignore[assignment]
            dist = (box.softmax(1) * proj.view(1, self.reg_max, 1, 1)).sum(1)  # [B, 4, hw]
            boxes.append(dist)
            scores.append(self.cv3[i](x).view(b, self.nc, -1))
            sy = torch.arange(h, dtype=torch.float32) + 0.5
            sx = torch.arange(w, dtype=torch.float32) + 0.5
            yy, xx = torch.meshgrid(sy, sx, indexing="ij")
            anchors.append(torch.stack((xx.reshape(-1), yy.reshape(-1)), 0))
            strides.append(torch.full((1, h * w), float(self.strides[i])))
        dist = torch.cat(boxes, 2)
        anchor = torch.cat(anchors, 1).unsqueeze(0)
        stride = torch.cat(strides, 1).unsqueeze(0)
        lt, rb = dist[:, :2], dist[:, 2:]
        x1y1, x2y2 = anchor - lt, anchor + rb
        xywh = torch.cat(((x1y1 + x2y2) / 2, x2y2 - x1y1), 1) * stride
        return torch.cat((xywh, torch.cat(scores, 2).sigmoid()), 1)


class YoloV8n(nn.Module):
    def __init__(self, nc: int = 80) -> None:
        super().__init__()
        self.b0, self.b1, self.b2 = Conv(3, 16, 3, 2), Conv(16, 32, 3, 2), C2f(32, 32, 1, True)
        self.b3, self.b4 = Conv(32, 64, 3, 2), C2f(64, 64, 2, True)
        self.b5, self.b6 = Conv(64, 128, 3, 2), C2f(128, 128, 2, True)
        self.b7, self.b8, self.b9 = Conv(128, 256, 3, 2), C2f(256, 256, 1, True), SPPF(256, 256)
        self.up = nn.Upsample(scale_factor=2.0, mode="nearest")
        self.h12, self.h15 = C2f(384, 128), C2f(192, 64)
        self.h16, self.h18 = Conv(64, 64, 3, 2), C2f(192, 128)
        self.h19, self.h21 = Conv(128, 128, 3, 2), C2f(384, 256)
        self.detect = Detect(nc, (64, 128, 256))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p3 = self.b4(self.b3(self.b2(self.b1(self.b0(x)))))
        p4 = self.b6(self.b5(p3))
        p5 = self.b9(self.b8(self.b7(p4)))
        h12 = self.h12(torch.cat((self.up(p5), p4), 1))
        o3 = self.h15(torch.cat((self.up(h12), p3), 1))
        o4 = self.h18(torch.cat((self.h16(o3), h12), 1))
        o5 = self.h21(torch.cat((self.h19(o4), p5), 1))
        return self.detect([o3, o4, o5])


def export(out: Path, nc: int = 80, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    model = YoloV8n(nc).eval()
    dummy = torch.rand(1, 3, 640, 640)
    out.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(
            model,
            (dummy,),
            str(out),
            dynamo=False,
            opset_version=17,
            input_names=["images"],
            output_names=["output0"],
            dynamic_axes={
                "images": {0: "batch", 2: "height", 3: "width"},
                "output0": {0: "batch", 2: "anchors"},
            },
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("var/models/yolov8n.onnx"))
    ap.add_argument("--classes", type=int, default=80)
    args = ap.parse_args()
    path = export(args.out, args.classes)
    params = sum(p.numel() for p in YoloV8n(args.classes).parameters())
    print(
        f"exported {path} ({path.stat().st_size / 1e6:.1f} MB, {params / 1e6:.2f} M parameters, random weights)"
    )


if __name__ == "__main__":
    main()
