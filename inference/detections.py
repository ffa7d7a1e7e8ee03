"""Detections as parallel arrays (the shape supervision's ``Detections`` made familiar)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Detections:
    xyxy: np.ndarray  # (N, 4) float32, frame pixels
    confidence: np.ndarray  # (N,) float32
    class_id: np.ndarray  # (N,) int32

    def __post_init__(self) -> None:
        n = len(self.confidence)
        if self.xyxy.shape != (n, 4) or self.class_id.shape != (n,):
            raise ValueError(
                f"inconsistent detections: xyxy {self.xyxy.shape}, conf {self.confidence.shape}, cls {self.class_id.shape}"
            )

    @classmethod
    def empty(cls) -> Detections:
        return _EMPTY  # one shared instance: zero-length read-only arrays, nothing to change

    def __len__(self) -> int:
        return len(self.confidence)

    @property
    def area(self) -> np.ndarray:
        w = np.clip(self.xyxy[:, 2] - self.xyxy[:, 0], 0, None)
        h = np.clip(self.xyxy[:, 3] - self.xyxy[:, 1], 0, None)
        return (w * h).astype(np.float32)

    def __getitem__(self, index: np.ndarray | slice) -> Detections:
        return Detections(self.xyxy[index], self.confidence[index], self.class_id[index])


def _read_only(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


_EMPTY = Detections(
    _read_only(np.zeros((0, 4), np.float32)),
    _read_only(np.zeros((0,), np.float32)),
    _read_only(np.zeros((0,), np.int32)),
)
