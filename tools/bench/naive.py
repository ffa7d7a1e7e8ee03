"""The loop a user writes first — the shape of Ultralytics' predictor — kept as the bench's
yardstick: OpenCV letterbox on the CPU, the runtime's plain ``run`` on host arrays, NumPy
decode and NMS, one thread, one frame at a time. Deliberately straightforward: it must stay
what a reasonable first attempt looks like, not a tuned copy of the pipeline."""

from __future__ import annotations

import time
from typing import Any

import cv2
import numpy as np

from line.loop.decision import DecisionPolicy
from line.recipes.model import Recipe


def _letterbox(image: np.ndarray, new_shape: tuple[int, int]) -> tuple[np.ndarray, float, tuple[int, int]]:
    h, w = image.shape[:2]
    r = min(new_shape[0] / h, new_shape[1] / w)
    nh, nw = round(h * r), round(w * r)
    resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    top, left = (new_shape[0] - nh) // 2, (new_shape[1] - nw) // 2
    out = cv2.copyMakeBorder(resized, top, new_shape[0] - nh - top, left, new_shape[1] - nw - left,
                             cv2.BORDER_CONSTANT, value=(114, 114, 114))  # fmt: skip
    return out, r, (left, top)


def _nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    order = scores.argsort()[::-1]
    keep = []
    while order.size:
        i = order[0]
        keep.append(int(i))
        xx1 = np.maximum(boxes[i, 0], boxes[order[1:], 0])
        yy1 = np.maximum(boxes[i, 1], boxes[order[1:], 1])
        xx2 = np.minimum(boxes[i, 2], boxes[order[1:], 2])
        yy2 = np.minimum(boxes[i, 3], boxes[order[1:], 3])
        inter = np.clip(xx2 - xx1, 0, None) * np.clip(yy2 - yy1, 0, None)
        area_i = (boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1])
        area_o = (boxes[order[1:], 2] - boxes[order[1:], 0]) * (boxes[order[1:], 3] - boxes[order[1:], 1])
        order = order[1:][inter / (area_i + area_o - inter + 1e-9) <= iou]
    return keep


class NaiveLoop:
    def __init__(self, session: Any, recipe: Recipe, input_hw: tuple[int, int]) -> None:
        self.session = session
        self.recipe = recipe
        self.input_hw = input_hw
        self.input_name = session.get_inputs()[0].name
        self.policy = DecisionPolicy(recipe)
        self.thresholds = np.array([recipe.threshold_for(c) for c in recipe.classes], np.float32)

    def run_one(self, frame: np.ndarray) -> float:
        """Returns the latency (ms) of one frame: from 'frame in host memory' to verdict."""
        from inference.detections import Detections

        t0 = time.perf_counter()
        image = cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB) if frame.ndim == 2 else frame
        padded, r, (dx, dy) = _letterbox(image, self.input_hw)
        blob = padded.transpose(2, 0, 1)[None].astype(np.float32) / 255.0
        (pred,) = self.session.run(None, {self.input_name: blob})
        pred = pred[0].T  # [N, 4 + C]
        scores = pred[:, 4:]
        cls = scores.argmax(1)
        conf = scores[np.arange(len(cls)), cls]
        mask = conf >= self.thresholds[cls]
        boxes = pred[mask, :4]
        xyxy = np.concatenate([boxes[:, :2] - boxes[:, 2:] / 2, boxes[:, :2] + boxes[:, 2:] / 2], 1)
        conf, cls = conf[mask], cls[mask]
        keep: list[int] = []
        for c in np.unique(cls):  # class-aware NMS, one class at a time
            idx = np.where(cls == c)[0]
            keep += [int(idx[k]) for k in _nms(xyxy[idx], conf[idx], self.recipe.nms.iou)]
        keep = keep[: self.recipe.nms.max_detections]
        xyxy = (xyxy[keep] - np.array([dx, dy, dx, dy])) / r
        self.policy.decide(Detections(xyxy.astype(np.float32), conf[keep].astype(np.float32), cls[keep].astype(np.int32)))
        return (time.perf_counter() - t0) * 1000
