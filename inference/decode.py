"""Raw network outputs → candidate boxes (xyxy, input pixels), scores and class ids.

Layouts (B = batch, N = anchors/candidates, C = classes, K = kept detections):

* ``yolov5``  ``[B, N, 5 + C]``: cx, cy, w, h, objectness, C class probabilities;
  score = objectness * class probability.
* ``yolov8``  ``[B, 4 + C, N]``: cx, cy, w, h, then C class scores (YOLOv8/11).
* ``end2end`` ``[B, K, 6]``: x1, y1, x2, y2, score, class id (NMS already in the graph);
  rows with score <= 0 are padding and dropped, as are class ids outside [0, C).

Thresholds are per class: a candidate survives when ``score >= thresholds[class]``.

One label per candidate: each candidate reports the highest-scoring class *among those that
pass their own threshold*. With a single threshold this is the usual argmax; with per-class
thresholds it never drops a candidate that a multi-label decoder would keep, while still
giving one box per region (the decision step counts defects, and duplicates of the same
region under two labels would double-count). For end2end outputs the class is given.

Pure numpy, vectorized; ``decode(layout, output, thresholds)`` is the registry entry point.
The cheap ``max over classes >= min threshold`` prefilter runs first, so the per-class work
only touches the few candidates that can survive.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np


class Candidates(NamedTuple):
    xyxy: np.ndarray  # (N, 4) float32, input pixels
    scores: np.ndarray  # (N,) float32
    class_id: np.ndarray  # (N,) int32

    @staticmethod
    def empty() -> Candidates:
        return _EMPTY_CANDIDATES  # shared: zero-length read-only arrays (an allocation less per frame)


def _frozen_empty(shape: tuple[int, ...], dtype: type) -> np.ndarray:
    a: np.ndarray = np.zeros(shape, dtype)
    a.flags.writeable = False
    return a


_EMPTY_CANDIDATES = Candidates(
    _frozen_empty((0, 4), np.float32), _frozen_empty((0,), np.float32), _frozen_empty((0,), np.int32)
)

Decoder = Callable[[np.ndarray, np.ndarray, "float | None"], list[Candidates]]


def expected_width(layout: str, num_classes: int) -> tuple[int, int]:
    """(axis, size) the layout fixes in a ``[B, a, b]`` output: the class-count check."""
    if layout == "yolov5":
        return 2, 5 + num_classes
    if layout == "yolov8":
        return 1, 4 + num_classes
    if layout == "end2end":
        return 2, 6
    raise ValueError(f"unknown layout {layout!r}; known: {', '.join(DECODERS)}")


def decode_yolov5(output: np.ndarray, thresholds: np.ndarray, floor: float | None = None) -> list[Candidates]:
    out = _check(output, "yolov5", thresholds)
    floor = thresholds.min() if floor is None else floor
    results = []
    for item in out:  # (N, 5 + C)
        obj = item[:, 4]
        cls = item[:, 5:]
        keep = obj * cls.max(axis=1) >= floor
        rows = item[keep]
        scores = rows[:, 5:] * rows[:, 4:5]
        results.append(_best_class(_cxcywh_to_xyxy(rows[:, :4]), scores, thresholds))
    return results


def decode_yolov8(output: np.ndarray, thresholds: np.ndarray, floor: float | None = None) -> list[Candidates]:
    out = _check(output, "yolov8", thresholds)
    floor = thresholds.min() if floor is None else floor
    scores = out[:, 4:]
    if scores.size == 0 or scores.max() < floor:
        # most parts are good: one reduction and no candidate. Right after the network has run,
        # the caches are cold and every numpy call costs 30-40 us (2-core CI box): this path
        # took 0.05 ms there against 0.12 ms for the per-item one (0.01 ms either, warm). The
        # engine passes ``floor`` (thresholds.min(), another cold call) worked out once
        return [Candidates.empty() for _ in range(len(out))]
    results = []
    for item in out:  # (4 + C, N): reduce over rows, vectorized over N
        keep = item[4:].max(axis=0) >= floor
        if not keep.any():
            results.append(Candidates.empty())
            continue
        cols = item[:, keep]
        results.append(_best_class(_cxcywh_to_xyxy(cols[:4].T), cols[4:].T, thresholds))
    return results


def decode_end2end(output: np.ndarray, thresholds: np.ndarray, floor: float | None = None) -> list[Candidates]:
    del floor  # each row has its class: its own threshold applies
    out = _check(output, "end2end", thresholds)
    num_classes = len(thresholds)
    results = []
    for item in out:  # (K, 6)
        scores = item[:, 4]
        cls_f = item[:, 5]
        valid = (scores > 0) & (cls_f >= 0) & (cls_f < num_classes) & np.isfinite(cls_f)
        cls = np.where(valid, cls_f, 0).astype(np.int32)
        keep = valid & (scores >= thresholds[cls])
        results.append(
            Candidates(
                np.ascontiguousarray(item[keep, :4], np.float32),
                scores[keep].astype(np.float32),
                cls[keep],
            )
        )
    return results


DECODERS: dict[str, Decoder] = {
    "yolov5": decode_yolov5,
    "yolov8": decode_yolov8,
    "end2end": decode_end2end,
}


def decode(
    layout: str, output: np.ndarray, thresholds: Sequence[float] | np.ndarray, floor: float | None = None
) -> list[Candidates]:
    """Decode a ``[B, ., .]`` output into one ``Candidates`` per batch item.

    ``floor``: the lowest threshold, for a caller that decodes every frame with the same ones
    (the engines): worked out once there, not per frame here."""
    try:
        decoder = DECODERS[layout]
    except KeyError:
        raise ValueError(f"unknown layout {layout!r}; known: {', '.join(DECODERS)}") from None
    if not (type(thresholds) is np.ndarray and thresholds.dtype == np.float32 and thresholds.ndim == 1):
        thresholds = np.asarray(thresholds, np.float32).reshape(-1)
    return decoder(output, thresholds, floor)


def _check(output: np.ndarray, layout: str, thresholds: np.ndarray) -> np.ndarray:
    if len(thresholds) == 0:
        raise ValueError("need at least one class threshold")
    out = output if type(output) is np.ndarray else np.asarray(output)
    if out.ndim == 2:  # tolerate a squeezed batch of one
        out = out[None]
    axis, size = expected_width(layout, len(thresholds))
    if out.ndim != 3 or out.shape[axis] != size:
        raise ValueError(
            f"{layout} output for {len(thresholds)} classes must be [B, {'N, ' + str(size) if axis == 2 else str(size) + ', N'}], got {list(out.shape)}"
        )
    if out.dtype != np.float32:
        out = out.astype(np.float32)
    return out


def _cxcywh_to_xyxy(cxcywh: np.ndarray) -> np.ndarray:
    xyxy = np.empty((len(cxcywh), 4), np.float32)
    half_w = cxcywh[:, 2] * np.float32(0.5)
    half_h = cxcywh[:, 3] * np.float32(0.5)
    xyxy[:, 0] = cxcywh[:, 0] - half_w
    xyxy[:, 1] = cxcywh[:, 1] - half_h
    xyxy[:, 2] = cxcywh[:, 0] + half_w
    xyxy[:, 3] = cxcywh[:, 1] + half_h
    return xyxy


def _best_class(xyxy: np.ndarray, scores: np.ndarray, thresholds: np.ndarray) -> Candidates:
    """Per row: the highest score among classes at/above their own threshold (see docstring)."""
    if len(scores) == 0:
        return Candidates.empty()
    passing = scores >= thresholds[None, :]
    masked = np.where(passing, scores, -np.inf)
    cls = masked.argmax(axis=1)
    best = masked[np.arange(len(cls)), cls]
    keep = np.isfinite(best)
    return Candidates(xyxy[keep], best[keep].astype(np.float32), cls[keep].astype(np.int32))
