"""Greedy non-maximum suppression: class-aware or class-agnostic, with a detection cap.

Semantics (both implementations below, tested against the same hand-computed cases):

* Candidates are visited by descending score; equal scores keep input order (lower index
  first), i.e. a stable sort.
* A candidate is suppressed by an already kept one when ``IoU > iou`` (strictly greater: an
  IoU exactly at the threshold survives; ``iou=1.0`` suppresses nothing, ``iou=0.0`` suppresses
  anything that overlaps at all). Class-aware: only boxes of the same class suppress each other.
* At most ``max_detections`` are returned, the first ones in that visiting order.
* Degenerate boxes (x2 <= x1 or y2 <= y1) are not detections and are dropped first (OpenCV
  and a plain IoU formula disagree about 0/0 for them).
* Result: indices into the inputs, ordered by descending score (ties: lower index first).

Implementations:

* ``nms_numpy`` (the default and the reference): IoU in float64 on the original coordinates,
  a same-class mask instead of the coordinate-offset trick (offsets round coordinates and can
  flip decisions at the threshold). Up to ``MATRIX_MAX`` candidates it builds the whole
  boolean suppression matrix at once and walks it; beyond that it computes one vectorized IoU
  row per *kept* box and stops at ``max_detections``, so the work stays bounded even when a
  threshold lets all 8400 candidates through.
* ``nms_opencv``: ``cv2.dnn.NMSBoxes`` per class (exact class separation; not
  ``NMSBoxesBatched``, which offsets coordinates). Scores are replaced by their stable ranks
  (OpenCV needs ``score_threshold >= 0`` and keeps only ``score > threshold``, which would
  lose 0.0 scores), and ``top_k`` is not used (it cuts *candidates* before NMS, not results).
  OpenCV compares ``1 - float32(1 - IoU)``, so it may differ from the reference for IoUs within
  ~1e-7 of the threshold. Faster for a few hundred candidates, but quadratic without an early
  stop: ~200 ms for 8400 overlapping candidates against ~8 ms for ``nms_numpy`` (2-core box).
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

from inference.config import NmsConfig


def nms(
    xyxy: np.ndarray,
    scores: np.ndarray,
    class_id: np.ndarray,
    config: NmsConfig,
    backend: Literal["numpy", "opencv"] = "numpy",
) -> np.ndarray:
    """Indices of the kept candidates, best first (see the module docstring)."""
    impl = nms_numpy if backend == "numpy" else nms_opencv
    return impl(xyxy, scores, class_id, config.iou, config.class_agnostic, config.max_detections)


def nms_numpy(
    xyxy: np.ndarray,
    scores: np.ndarray,
    class_id: np.ndarray,
    iou: float,
    class_agnostic: bool = False,
    max_detections: int = 100,
) -> np.ndarray:
    boxes, scores, class_id, valid = _prepare(xyxy, scores, class_id)
    if len(valid) == 0 or max_detections <= 0:
        return np.zeros((0,), np.int64)
    order = valid[np.argsort(-scores[valid], kind="stable")]
    b = boxes[order]
    cls = class_id[order]
    if len(order) <= MATRIX_MAX:
        kept = _greedy_matrix(b, cls, iou, class_agnostic, max_detections)
    else:
        kept = _greedy_rows(b, cls, iou, class_agnostic, max_detections)
    return order[kept].astype(np.int64)


MATRIX_MAX = 256  # up to here one (n, n) IoU matrix beats a numpy call chain per kept box (measured)


def _greedy_matrix(b: np.ndarray, cls: np.ndarray, iou: float, agnostic: bool, max_detections: int) -> list[int]:
    """All pairwise IoUs at once, then a cheap walk over boolean rows."""
    x1, y1, x2, y2 = (b[:, i : i + 1] for i in range(4))
    iw = np.clip(np.minimum(x2, x2.T) - np.maximum(x1, x1.T), 0, None)
    ih = np.clip(np.minimum(y2, y2.T) - np.maximum(y1, y1.T), 0, None)
    inter = iw * ih
    areas = (x2 - x1) * (y2 - y1)
    suppress = inter / (areas + areas.T - inter) > iou
    if not agnostic:
        suppress &= cls[:, None] == cls[None, :]
    n = len(b)
    alive = np.ones(n, bool)
    kept: list[int] = []
    pos = 0
    while True:
        kept.append(pos)
        if len(kept) >= max_detections or pos + 1 >= n:
            return kept
        rest = alive[pos + 1 :]
        rest &= ~suppress[pos, pos + 1 :]
        if not rest.any():
            return kept
        pos = pos + 1 + int(rest.argmax())


def _greedy_rows(b: np.ndarray, cls: np.ndarray, iou: float, agnostic: bool, max_detections: int) -> list[int]:
    """One vectorized IoU row per kept box; stops at ``max_detections`` (bounded work for huge n)."""
    x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    areas = (x2 - x1) * (y2 - y1)
    alive = np.ones(len(b), bool)
    kept: list[int] = []
    for pos in range(len(b)):
        if not alive[pos]:
            continue
        kept.append(pos)
        if len(kept) >= max_detections:
            break
        rest = np.flatnonzero(alive[pos + 1 :]) + pos + 1
        if len(rest) == 0:
            break
        if not agnostic:
            rest = rest[cls[rest] == cls[pos]]
        iw = np.minimum(x2[pos], x2[rest]) - np.maximum(x1[pos], x1[rest])
        ih = np.minimum(y2[pos], y2[rest]) - np.maximum(y1[pos], y1[rest])
        inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
        alive[rest[inter / (areas[pos] + areas[rest] - inter) > iou]] = False
    return kept


def nms_opencv(
    xyxy: np.ndarray,
    scores: np.ndarray,
    class_id: np.ndarray,
    iou: float,
    class_agnostic: bool = False,
    max_detections: int = 100,
) -> np.ndarray:
    boxes, scores, class_id, valid = _prepare(xyxy, scores, class_id)
    if len(valid) == 0 or max_detections <= 0:
        return np.zeros((0,), np.int64)
    xywh = boxes.copy()
    xywh[:, 2:] -= xywh[:, :2]
    # OpenCV needs score_threshold >= 0 and keeps score > threshold, so a 0.0 score would be
    # lost: hand it positive ranks instead (stable order, so ties stay lower-index-first).
    ranks = np.zeros(len(scores), np.float32)
    ranks[valid[np.argsort(-scores[valid], kind="stable")]] = np.arange(len(valid), 0, -1, dtype=np.float32)
    groups = [valid] if class_agnostic else [valid[class_id[valid] == c] for c in np.unique(class_id[valid])]
    kept_parts = []
    for idx in groups:
        k = cv2.dnn.NMSBoxes(xywh[idx], ranks[idx], 0.0, float(iou))  # top_k would cut candidates, not results
        kept_parts.append(idx[np.asarray(k, np.int64).reshape(-1)])
    kept = np.sort(np.concatenate(kept_parts))
    kept = kept[np.argsort(-scores[kept], kind="stable")]
    return kept[:max_detections].astype(np.int64)


def _prepare(
    xyxy: np.ndarray, scores: np.ndarray, class_id: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    boxes = np.asarray(xyxy, np.float64).reshape(-1, 4)
    scores = np.asarray(scores, np.float64).reshape(-1)
    class_id = np.asarray(class_id).reshape(-1)
    if not (len(boxes) == len(scores) == len(class_id)):
        raise ValueError(f"nms: {len(boxes)} boxes, {len(scores)} scores, {len(class_id)} class ids")
    valid = np.flatnonzero((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1]) & np.isfinite(scores))
    return boxes, scores, class_id, valid
