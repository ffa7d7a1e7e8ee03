"""Part-level evaluation of the demo model on held-out synthetic parts (ONNX Runtime, CPU).

Decides like the station: letterbox 1280x1024 → 640x512, decode the YOLOv8 layout, class-aware
NMS, and reject a part when any detection reaches its class threshold. Thresholds are tuned
on a validation set (its own seed) and then reported on a separate test set (another seed),
so the figures in recipes/demo/README.md are not tuned on the parts they describe.

    .venv/bin/python recipes/demo/demo_eval.py [model.onnx]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from camera.synthetic_parts import KNOWN_CLASSES, generate_part  # noqa: E402

VAL_SEED, TEST_SEED = 1001, 2002
TARGET_RECALL, TARGET_FRR = 0.98, 0.02
SCALE = 0.5  # 1280x1024 letterboxed into (512, 640)


def _local_nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Greedy NMS of one class; only for machines without the project's ``inference`` package."""
    order = np.argsort(-scores)
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        ix = np.clip(np.minimum(boxes[i, 2], boxes[rest, 2]) - np.maximum(boxes[i, 0], boxes[rest, 0]), 0, None)
        iy = np.clip(np.minimum(boxes[i, 3], boxes[rest, 3]) - np.maximum(boxes[i, 1], boxes[rest, 1]), 0, None)
        area_i = (boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1])
        area_r = (boxes[rest, 2] - boxes[rest, 0]) * (boxes[rest, 3] - boxes[rest, 1])
        order = rest[ix * iy / (area_i + area_r - ix * iy + 1e-9) <= iou]
    return np.array(keep, int)


def decode_yolov8(out: np.ndarray, conf: float = 0.05, iou: float = 0.5) -> list[tuple[int, float, np.ndarray]]:
    """One image's [4 + C, N] → [(class, score, xyxy in frame pixels)] after class-aware NMS,
    with the station's own ``inference.decode`` / ``inference.nms`` where they import."""
    n_cls = out.shape[0] - 4
    try:
        from inference.config import NmsConfig
        from inference.decode import decode
        from inference.nms import nms

        cand = decode("yolov8", out[None], np.full(n_cls, conf, np.float32))[0]
        keep = nms(cand.xyxy, cand.scores, cand.class_id, NmsConfig(iou=iou, max_detections=100))
        return [(int(cand.class_id[k]), float(cand.scores[k]), cand.xyxy[k] / SCALE) for k in keep]
    except ImportError:
        pass
    boxes_c, scores = out[:4].T, out[4:].T
    cls, best = scores.argmax(1), scores.max(1)
    m = best >= conf
    b = boxes_c[m]
    xyxy = np.stack([b[:, 0] - b[:, 2] / 2, b[:, 1] - b[:, 3] / 2, b[:, 0] + b[:, 2] / 2, b[:, 1] + b[:, 3] / 2], 1) / SCALE
    dets = []
    for c in np.unique(cls[m]):
        sel = np.flatnonzero(cls[m] == c)
        for k in _local_nms(xyxy[sel], best[m][sel], iou):
            dets.append((int(c), float(best[m][sel][k]), xyxy[sel][k]))
    return dets


def _iou(a: np.ndarray, b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter + 1e-9)


def run_parts(session, n: int, seed: int, classes: tuple[str, ...]) -> dict:
    """Per part: the best score per class, the truth, and whether each true defect was located."""
    rng = np.random.default_rng(seed)
    best = np.zeros((n, len(classes)), np.float32)
    truth_cls, defective, located = [], np.zeros(n, bool), []
    infer_ms = []
    for i in range(n):
        img, gt = generate_part(rng, 1280, 1024, "Mono8", defect_rate=0.5)
        x = cv2.resize(img, (640, 512), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255.0
        x = np.ascontiguousarray(np.broadcast_to(x, (1, 3, 512, 640)))
        t = time.perf_counter()
        out = session.run(["output0"], {"images": x})[0][0]
        infer_ms.append((time.perf_counter() - t) * 1000)
        dets = decode_yolov8(out)
        for c, s, _ in dets:
            best[i, c] = max(best[i, c], s)
        defective[i] = gt.defective
        truth_cls.append({d.class_name for d in gt.defects})
        for d in gt.defects:
            ci = classes.index(d.class_name)
            located.append(max((s for c, s, b in dets if c == ci and _iou(b, d.box_xyxy) >= 0.3), default=0.0))
    return {"best": best, "defective": defective, "truth": truth_cls, "located": np.array(located),
            "infer_ms": np.array(infer_ms)}


def rates(best: np.ndarray, defective: np.ndarray, thr: np.ndarray) -> tuple[float, float]:
    reject = np.asarray((best >= thr[None]).any(axis=1))
    return float(reject[defective].mean()), float(reject[~defective].mean())


def tune(val: dict, n_classes: int) -> float:
    """One threshold for every class, in the middle of the range meeting both targets (margin
    both ways); if none does, the one with the best recall − false-reject rate."""
    grid = np.round(np.arange(0.05, 0.951, 0.01), 2)
    ok = []
    score = []
    for t in grid:
        rec, frr = rates(val["best"], val["defective"], np.full(n_classes, t))
        score.append(rec - frr)
        if rec >= TARGET_RECALL and frr <= TARGET_FRR:
            ok.append(t)
    if ok:
        return float(np.round(np.median(ok), 2))
    return float(grid[int(np.argmax(score))])


def evaluate_onnx(path: Path, classes: tuple[str, ...] = KNOWN_CLASSES, val_parts: int = 500,
                  test_parts: int = 1000, threads: int = 2) -> dict:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    val = run_parts(session, val_parts, VAL_SEED, classes)
    thr = tune(val, len(classes))
    test = run_parts(session, test_parts, TEST_SEED, classes)
    thr_v = np.full(len(classes), thr)
    rec, frr = rates(test["best"], test["defective"], thr_v)
    reject = np.asarray((test["best"] >= thr_v[None]).any(axis=1))
    per_class = {}
    for c in classes:
        idx = [i for i, t in enumerate(test["truth"]) if c in t]
        per_class[c] = {"parts": len(idx), "recall": float(reject[idx].mean()) if idx else None}
    sweep = {}
    for t in (0.2, 0.3, 0.4, 0.5, 0.6, 0.7):
        r, f = rates(test["best"], test["defective"], np.full(len(classes), t))
        sweep[str(t)] = {"recall": round(r, 4), "false_reject": round(f, 4)}
    result = {
        "model": str(path), "model_mb": round(path.stat().st_size / 1e6, 2),
        "threshold": thr, "val_parts": val_parts, "val_seed": VAL_SEED,
        "test_parts": test_parts, "test_seed": TEST_SEED,
        "test_defective": int(test["defective"].sum()), "test_good": int((~test["defective"]).sum()),
        "recall": rec, "false_reject_rate": frr, "per_class_recall": per_class,
        "defects_located_iou0.3": float((test["located"] >= thr).mean()),
        "threshold_sweep_test": sweep,
        "onnx_ms_512x640_p50": float(np.percentile(test["infer_ms"], 50)),
        "onnx_ms_512x640_p99": float(np.percentile(test["infer_ms"], 99)),
        "threads": threads,
    }
    print(json.dumps(result, indent=2), flush=True)
    out = ROOT / "var" / "demo-train" / "eval.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    evaluate_onnx(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "demo-parts.onnx")
