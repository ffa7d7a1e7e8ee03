"""NMS semantics, hand-computed, for both implementations."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pytest

import inference.nms as nms_module
from inference.config import NmsConfig
from inference.nms import nms, nms_numpy, nms_opencv

BACKENDS = ["numpy", "numpy-rows", "opencv"]  # numpy-rows: the large-n path forced on


@pytest.fixture(autouse=True)
def _restore_matrix_max(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nms_module, "MATRIX_MAX", nms_module.MATRIX_MAX)


def run(backend: str, boxes, scores, classes, iou=0.5, agnostic=False, max_det=100) -> list[int]:  # noqa: ANN001
    config = NmsConfig(iou=iou, class_agnostic=agnostic, max_detections=max_det)
    if backend == "numpy-rows":
        nms_module.MATRIX_MAX = 0
    impl: Literal["numpy", "opencv"] = "opencv" if backend == "opencv" else "numpy"
    kept = nms(np.array(boxes, np.float32).reshape(-1, 4), np.array(scores, np.float32), np.array(classes, np.int32), config, impl)
    assert kept.dtype == np.int64
    return kept.tolist()


A = [0, 0, 10, 10]
A_SHIFTED = [1, 0, 11, 10]  # IoU with A = 90 / 110 = 0.818
FAR = [100, 100, 110, 110]

CASES = [
    # name, boxes, scores, classes, iou, agnostic, max_det, expected indices
    ("different classes, class-aware: both", [A, A_SHIFTED], [0.9, 0.8], [0, 1], 0.5, False, 100, [0, 1]),
    ("different classes, agnostic: one", [A, A_SHIFTED], [0.9, 0.8], [0, 1], 0.5, True, 100, [0]),
    ("same class: the better one", [A_SHIFTED, A], [0.8, 0.9], [0, 0], 0.5, False, 100, [1]),
    ("identical boxes, equal scores: lowest index", [A, A, A], [0.5, 0.5, 0.5], [0, 0, 0], 0.5, False, 100, [0]),
    ("equal scores, disjoint: index order", [FAR, A, [50, 50, 60, 60]], [0.5, 0.5, 0.5], [0, 0, 0], 0.5, False, 100, [0, 1, 2]),
    ("IoU exactly at threshold survives", [[0, 0, 3, 1], [1, 0, 4, 1]], [0.9, 0.8], [0, 0], 0.5, False, 100, [0, 1]),
    ("IoU just above threshold suppressed", [[0, 0, 3, 1], [1, 0, 4, 1]], [0.9, 0.8], [0, 0], 0.49, False, 100, [0]),
    ("iou 1.0 suppresses nothing", [A, A], [0.9, 0.8], [0, 0], 1.0, False, 100, [0, 1]),
    ("iou 0.0 suppresses any overlap", [A, [9, 9, 20, 20], FAR], [0.9, 0.8, 0.7], [0, 0, 0], 0.0, False, 100, [0, 2]),
    ("touching edges do not overlap", [A, [10, 0, 20, 10]], [0.9, 0.8], [0, 0], 0.0, False, 100, [0, 1]),
    # greedy chain: A suppresses B (IoU 1/3), B would suppress C but is gone, so C stays
    ("greedy chain", [[0, 0, 10, 10], [5, 0, 15, 10], [10, 0, 20, 10]], [0.9, 0.8, 0.7], [0, 0, 0], 0.3, False, 100, [0, 2]),
    (
        "max_detections keeps the best",
        [[i * 20, 0, i * 20 + 10, 10] for i in range(5)],
        [0.1, 0.5, 0.3, 0.9, 0.7],
        [0, 1, 0, 1, 0],
        0.5,
        False,
        3,
        [3, 4, 1],
    ),
    ("max_detections agnostic", [A, A_SHIFTED, FAR], [0.9, 0.8, 0.7], [0, 1, 2], 0.5, True, 1, [0]),
    ("degenerate boxes dropped", [[0, 0, 0, 0], [5, 5, 5, 9], A], [0.9, 0.8, 0.7], [0, 0, 0], 0.5, False, 100, [2]),
    ("empty", np.zeros((0, 4)), [], [], 0.5, False, 100, []),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("boxes", "scores", "classes", "iou", "agnostic", "max_det", "want"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_nms_cases(backend: str, boxes, scores, classes, iou, agnostic, max_det, want) -> None:  # noqa: ANN001
    assert run(backend, boxes, scores, classes, iou, agnostic, max_det) == want


@pytest.mark.parametrize("agnostic", [False, True])
def test_backends_agree_on_random_boxes(agnostic: bool) -> None:
    rng = np.random.default_rng(11)
    for _ in range(20):
        n = int(rng.integers(1, 300))
        xy = rng.uniform(0, 200, (n, 2))
        wh = rng.uniform(1, 60, (n, 2))
        boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
        scores = rng.choice(np.linspace(0.3, 1.0, 15), n).astype(np.float32)  # many ties on purpose
        classes = rng.integers(0, 3, n).astype(np.int32)
        a = nms_numpy(boxes, scores, classes, 0.45, agnostic, 50)
        b = nms_opencv(boxes, scores, classes, 0.45, agnostic, 50)
        nms_module.MATRIX_MAX = 0
        c = nms_numpy(boxes, scores, classes, 0.45, agnostic, 50)
        nms_module.MATRIX_MAX = 256
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


def test_mismatched_lengths() -> None:
    with pytest.raises(ValueError):
        nms_numpy(np.zeros((2, 4)), np.zeros(3), np.zeros(2), 0.5)
