"""Train the demo-parts detector on synthetic caps and export it as a YOLOv8-layout ONNX model.

Why a home-made detector: the demo must run on a 2-core CPU with no downloads, so the model
is a ~0.4 M parameter anchor-free net (stride-16 head fed by a stride-32 context branch),
trained from scratch in ~20 minutes on images from ``camera.synthetic_parts``. The export
follows the contract of ``inference/decode.py`` for ``layout: yolov8``: input ``images``
float32 NCHW RGB in [0, 1], output ``output0`` [B, 4 + C, N] with (cx, cy, w, h) in input
pixels and sigmoid class scores, no objectness.

    .venv/bin/python recipes/demo/train_demo_model.py            # train + export + evaluate
    .venv/bin/python recipes/demo/train_demo_model.py --eval-only  # evaluate the committed model
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from camera.synthetic_parts import KNOWN_CLASSES, generate_part  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo_eval import evaluate_onnx  # noqa: E402

CLASSES = KNOWN_CLASSES
STRIDE = 16
FULL_HW = (1024, 1280)
NET_HW = (512, 640)  # the letterbox of 1280x1024 into max (512, 640): a plain 0.5 resize
CROP_HW = (320, 384)  # training crops (fully convolutional net; 2x cheaper than full frames)
CACHE = ROOT / "var" / "demo-train"
OUT = Path(__file__).resolve().parent / "demo-parts.onnx"


def letterbox_half(img: np.ndarray) -> np.ndarray:
    return cv2.resize(img, (NET_HW[1], NET_HW[0]), interpolation=cv2.INTER_LINEAR)


def build_cache(n: int, seed: int) -> tuple[np.ndarray, list[list[tuple[int, tuple[float, ...]]]]]:
    """Generate ``n`` parts once (full res, then the 0.5 letterbox); reused by later runs."""
    img_path, lab_path = CACHE / f"train-{seed}-{n}.u8", CACHE / f"train-{seed}-{n}.json"
    if img_path.exists() and lab_path.exists():
        labels = json.loads(lab_path.read_text())
        return np.memmap(img_path, np.uint8, "r", shape=(n, *NET_HW)), labels
    CACHE.mkdir(parents=True, exist_ok=True)
    images = np.memmap(img_path, np.uint8, "w+", shape=(n, *NET_HW))
    rng = np.random.default_rng(seed)
    labels = []
    for i in range(n):
        img, truth = generate_part(rng, FULL_HW[1], FULL_HW[0], "Mono8", defect_rate=0.6)
        images[i] = letterbox_half(img)
        labels.append([(CLASSES.index(d.class_name), tuple(v * 0.5 for v in d.box_xyxy)) for d in truth.defects])
    images.flush()
    lab_path.write_text(json.dumps(labels))
    return np.memmap(img_path, np.uint8, "r", shape=(n, *NET_HW)), labels


def conv(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class CapNet(nn.Module):
    """Backbone to stride 32, top-down fusion into stride 16, decoupled cls/box heads."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.s8 = nn.Sequential(conv(3, 16, 2), conv(16, 24, 2), conv(24, 24), conv(24, 40, 2), conv(40, 40))
        self.s16 = nn.Sequential(conv(40, 64, 2), conv(64, 64))
        self.s32 = nn.Sequential(conv(64, 96, 2), conv(96, 96), conv(96, 96, dilation=2))
        self.lateral = nn.Conv2d(96, 64, 1)
        self.fuse = nn.Sequential(conv(64, 64), conv(64, 64, dilation=2))
        cls_out = nn.Conv2d(64, num_classes, 1)
        if cls_out.bias is not None:
            nn.init.constant_(cls_out.bias, -4.6)  # prior 0.01: stable focal-loss start
        self.cls = nn.Sequential(conv(64, 64), cls_out)
        self.box = nn.Sequential(conv(64, 64), nn.Conv2d(64, 4, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f16 = self.s16(self.s8(x))
        f32 = self.s32(f16)
        f = self.fuse(f16 + F.interpolate(self.lateral(f32), size=f16.shape[-2:], mode="nearest"))
        return self.cls(f), self.box(f)  # logits (B,C,h,w), raw ltrb (B,4,h,w)


class YoloV8Export(nn.Module):
    """Wraps ``CapNet`` into the YOLOv8 output layout with the grid computed from the input."""

    def __init__(self, net: CapNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits, raw = self.net(images)
        b, _, h, w = logits.shape
        ys = (torch.arange(h, dtype=torch.float32) + 0.5) * STRIDE
        xs = (torch.arange(w, dtype=torch.float32) + 0.5) * STRIDE
        gy = ys.view(h, 1).expand(h, w).reshape(1, 1, -1)
        gx = xs.view(1, w).expand(h, w).reshape(1, 1, -1)
        ltrb = F.softplus(raw).reshape(b, 4, -1) * STRIDE
        x1, y1 = gx - ltrb[:, 0:1], gy - ltrb[:, 1:2]
        x2, y2 = gx + ltrb[:, 2:3], gy + ltrb[:, 3:4]
        boxes = torch.cat([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], dim=1)
        return torch.cat([boxes, torch.sigmoid(logits).reshape(b, logits.shape[1], -1)], dim=1)


def assign(boxes: np.ndarray, cls: np.ndarray, ignore: np.ndarray, h: int, w: int) -> tuple[np.ndarray, ...]:
    """Centre sampling on the stride-16 grid: the cells near a box centre (at most 1.5 strides
    away, always the cell holding the centre) are positives; other cells inside a box and
    cells inside truncated boxes are ignored by the classification loss."""
    cy, cx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = (cx + 0.5) * STRIDE, (cy + 0.5) * STRIDE
    target = np.zeros((len(CLASSES), h, w), np.float32)
    weight = np.ones((h, w), np.float32)
    box_t = np.zeros((4, h, w), np.float32)
    pos = np.zeros((h, w), bool)
    best_area = np.full((h, w), np.inf, np.float32)
    for (x1, y1, x2, y2) in ignore:
        weight[(cx >= x1) & (cx <= x2) & (cy >= y1) & (cy <= y2)] = 0.0
    for (x1, y1, x2, y2), c in zip(boxes, cls, strict=True):
        bw, bh = x2 - x1, y2 - y1
        mx, my = (x1 + x2) / 2, (y1 + y2) / 2
        rx, ry = max(min(bw / 2, 1.5 * STRIDE), 0.5 * STRIDE), max(min(bh / 2, 1.5 * STRIDE), 0.5 * STRIDE)
        inside = (cx >= x1 - 4) & (cx <= x2 + 4) & (cy >= y1 - 4) & (cy <= y2 + 4)
        weight[inside] = 0.0
        region = (np.abs(cx - mx) <= rx) & (np.abs(cy - my) <= ry) & (bw * bh < best_area)
        pos |= region
        best_area[region] = bw * bh
        target[:, region] = 0.0
        target[c, region] = 1.0
        box_t[:, region] = np.array([[x1], [y1], [x2], [y2]], np.float32)
    weight[pos] = 1.0
    return target, weight, box_t, pos


def sample_batch(images: np.ndarray, labels: list, rng: np.random.Generator, batch: int) -> tuple[torch.Tensor, ...]:
    ch, cw = CROP_HW
    h, w = ch // STRIDE, cw // STRIDE
    xs, ts, ws, bs, ps = [], [], [], [], []
    for _ in range(batch):
        i = int(rng.integers(0, len(images)))
        img = np.asarray(images[i], np.float32)
        lab = labels[i]
        y0 = int(rng.integers(0, NET_HW[0] - ch + 1))
        x0 = int(rng.integers(0, NET_HW[1] - cw + 1))
        if lab and rng.uniform() < 0.8:  # mostly crops that hold the defect(s)
            bx = np.array([b for _, b in lab])
            mx, my = bx[:, [0, 2]].mean(), bx[:, [1, 3]].mean()
            x0 = int(np.clip(mx - rng.uniform(0.2, 0.8) * cw, 0, NET_HW[1] - cw))
            y0 = int(np.clip(my - rng.uniform(0.2, 0.8) * ch, 0, NET_HW[0] - ch))
        crop = img[y0 : y0 + ch, x0 : x0 + cw]
        keep, cls, ign = [], [], []
        for c, (x1, y1, x2, y2) in lab:
            b = np.array([x1 - x0, y1 - y0, x2 - x0, y2 - y0])
            clipped = np.clip(b, 0, [cw, ch, cw, ch])
            area = (b[2] - b[0]) * (b[3] - b[1])
            carea = max(0.0, clipped[2] - clipped[0]) * max(0.0, clipped[3] - clipped[1])
            if carea >= 0.6 * area:
                keep.append(clipped)
                cls.append(c)
            elif carea > 0:
                ign.append(clipped)
        boxes = np.array(keep, np.float32).reshape(-1, 4)
        if rng.uniform() < 0.5:
            crop = crop[:, ::-1]
            boxes[:, [0, 2]] = cw - boxes[:, [2, 0]]
            ign = [np.array([cw - b[2], b[1], cw - b[0], b[3]]) for b in ign]
        if rng.uniform() < 0.5:
            crop = crop[::-1]
            boxes[:, [1, 3]] = ch - boxes[:, [3, 1]]
            ign = [np.array([b[0], ch - b[3], b[2], ch - b[1]]) for b in ign]
        crop = crop * rng.uniform(0.85, 1.15) + rng.uniform(-12, 12)
        t, wt, bt, p = assign(boxes, np.array(cls, int), np.array(ign).reshape(-1, 4), h, w)
        xs.append(np.clip(crop, 0, 255) / 255.0)
        ts.append(t)
        ws.append(wt)
        bs.append(bt)
        ps.append(p)
    x = torch.from_numpy(np.stack(xs).astype(np.float32))[:, None].expand(-1, 3, -1, -1).contiguous()
    return x, *(torch.from_numpy(np.stack(a)) for a in (ts, ws, bs, ps))


def giou_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    ix1, iy1 = torch.max(pred[:, 0], target[:, 0]), torch.max(pred[:, 1], target[:, 1])
    ix2, iy2 = torch.min(pred[:, 2], target[:, 2]), torch.min(pred[:, 3], target[:, 3])
    inter = (ix2 - ix1).clamp(min=0) * (iy2 - iy1).clamp(min=0)
    ap = (pred[:, 2] - pred[:, 0]) * (pred[:, 3] - pred[:, 1])
    at = (target[:, 2] - target[:, 0]) * (target[:, 3] - target[:, 1])
    union = ap + at - inter + 1e-6
    ex1, ey1 = torch.min(pred[:, 0], target[:, 0]), torch.min(pred[:, 1], target[:, 1])
    ex2, ey2 = torch.max(pred[:, 2], target[:, 2]), torch.max(pred[:, 3], target[:, 3])
    enclose = (ex2 - ex1) * (ey2 - ey1) + 1e-6
    return (1 - inter / union + (enclose - union) / enclose).mean()


def loss_fn(net: CapNet, batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, float, float]:
    x, target, weight, box_t, pos = batch
    logits, raw = net(x)
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    pt = p * target + (1 - p) * (1 - target)
    alpha = 0.25 * target + 0.75 * (1 - target)
    focal = (alpha * (1 - pt) ** 2 * ce * weight[:, None]).sum() / max(1.0, float(pos.sum()))
    if pos.any():
        b, _, h, w = raw.shape
        dev = raw.device
        gy, gx = torch.meshgrid((torch.arange(h, device=dev) + 0.5) * STRIDE, (torch.arange(w, device=dev) + 0.5) * STRIDE,
                                indexing="ij")
        ltrb = F.softplus(raw) * STRIDE
        pred = torch.stack([gx - ltrb[:, 0], gy - ltrb[:, 1], gx + ltrb[:, 2], gy + ltrb[:, 3]], dim=1)
        m = pos
        pb = pred.permute(0, 2, 3, 1)[m]
        tb = box_t.permute(0, 2, 3, 1)[m]
        reg = giou_loss(pb, tb)
    else:
        reg = torch.zeros((), device=raw.device)
    return focal + 2.0 * reg, float(focal.detach()), float(reg.detach())


def export(net: CapNet, path: Path) -> None:
    net.cpu().eval()
    model = YoloV8Export(net)
    dummy = torch.zeros(1, 3, *NET_HW)
    torch.onnx.export(
        model, (dummy,), str(path), dynamo=False, opset_version=17,
        input_names=["images"], output_names=["output0"],
        dynamic_axes={"images": {0: "batch", 2: "height", 3: "width"}, "output0": {0: "batch", 2: "anchors"}},
    )
    import onnx  # the legacy exporter writes shapes we verify here rather than trust

    proto = onnx.load(str(path))
    dim = proto.graph.output[0].type.tensor_type.shape.dim[1]
    dim.Clear()
    dim.dim_value = 4 + len(CLASSES)  # static 4 + C, so loaders can check the class count
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


def train(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    images, labels = build_cache(args.images, args.seed)
    print(f"dataset: {len(images)} images ({time.perf_counter() - t0:.1f} s)", flush=True)
    net = CapNet(len(CLASSES)).to(args.device)
    print(f"params: {sum(p.numel() for p in net.parameters()):,}", flush=True)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    warm = 200
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: min(1.0, (i + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(i, args.iters) / args.iters)) + 0.01
    )
    t_train = time.perf_counter()
    net.train()
    for it in range(1, args.iters + 1):
        batch = tuple(t.to(args.device) for t in sample_batch(images, labels, rng, args.batch))
        loss, lc, lr_ = loss_fn(net, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if it % 50 == 0 or it == 1:
            el = time.perf_counter() - t_train
            print(f"it {it}/{args.iters} loss {float(loss.detach()):.4f} (cls {lc:.4f} box {lr_:.4f}) {el:.0f}s "
                  f"eta {el / it * (args.iters - it):.0f}s", flush=True)
        if it % 1000 == 0:
            torch.save(net.state_dict(), CACHE / "checkpoint.pt")
    print(f"training wall time: {time.perf_counter() - t_train:.0f} s", flush=True)
    torch.save(net.state_dict(), CACHE / "checkpoint.pt")
    export(net, args.out)
    print(f"exported {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--images", type=int, default=4000)
    ap.add_argument("--iters", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu (the reference) or cuda")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--eval-only", action="store_true")
    ap.add_argument("--export-only", action="store_true", help="re-export var/demo-train/checkpoint.pt")
    ap.add_argument("--val-parts", type=int, default=500)
    ap.add_argument("--test-parts", type=int, default=1000)
    args = ap.parse_args()
    if args.export_only:
        net = CapNet(len(CLASSES))
        net.load_state_dict(torch.load(CACHE / "checkpoint.pt", map_location="cpu"))
        export(net, args.out)
    elif not args.eval_only:
        train(args)
    if args.test_parts > 0:
        evaluate_onnx(args.out, CLASSES, val_parts=args.val_parts, test_parts=args.test_parts, threads=args.threads)


if __name__ == "__main__":
    main()
