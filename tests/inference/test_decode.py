"""Decoders with hand-built outputs: per-class thresholds, empty outputs, batches."""

from __future__ import annotations

import numpy as np
import pytest

from inference.decode import decode

THRESHOLDS = [0.5, 0.3]  # class 0, class 1

# candidates as (cx, cy, w, h), objectness, class probabilities → expected (xyxy, score, class) or None
CASES = [
    ((10, 20, 4, 6), 0.9, (0.8, 0.1), ([8, 17, 12, 23], 0.72, 0)),
    # class 0 scores 0.45 < 0.5, class 1 scores 0.35 >= 0.3: the best *passing* class wins
    ((50, 50, 10, 10), 0.5, (0.9, 0.7), ([45, 45, 55, 55], 0.35, 1)),
    ((30, 30, 2, 2), 0.2, (1.0, 1.0), None),  # 0.2 passes neither
    ((5, 5, 2, 4), 1.0, (0.5, 0.2), ([4, 3, 6, 7], 0.5, 0)),  # exactly at the threshold: kept
]


def yolov5_output(cases=CASES) -> np.ndarray:  # noqa: ANN001
    rows = [[*box, obj, *cls] for box, obj, cls, _ in cases]
    return np.array(rows, np.float32).reshape(1, len(rows), 7)


def yolov8_output(cases=CASES) -> np.ndarray:  # noqa: ANN001
    # YOLOv8 has no objectness: fold it into the class scores
    rows = [[*box, *(obj * c for c in cls)] for box, obj, cls, _ in cases]
    return np.array(rows, np.float32).reshape(len(rows), 6).T[None].copy()


def expected(cases=CASES) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # noqa: ANN001
    kept = [e for *_, e in cases if e is not None]
    return (
        np.array([k[0] for k in kept], np.float32).reshape(-1, 4),
        np.array([k[1] for k in kept], np.float32),
        np.array([k[2] for k in kept], np.int32),
    )


@pytest.mark.parametrize(("layout", "build"), [("yolov5", yolov5_output), ("yolov8", yolov8_output)])
def test_anchor_layouts(layout: str, build) -> None:  # noqa: ANN001
    (got,) = decode(layout, build(), THRESHOLDS)
    xyxy, scores, cls = expected()
    np.testing.assert_allclose(got.xyxy, xyxy)
    np.testing.assert_allclose(got.scores, scores, rtol=1e-6)
    np.testing.assert_array_equal(got.class_id, cls)
    assert got.xyxy.dtype == np.float32 and got.scores.dtype == np.float32 and got.class_id.dtype == np.int32


@pytest.mark.parametrize(("layout", "build"), [("yolov5", yolov5_output), ("yolov8", yolov8_output)])
def test_a_given_floor_is_the_lowest_threshold_worked_out_once(layout: str, build) -> None:  # noqa: ANN001
    (got,) = decode(layout, build(), np.asarray(THRESHOLDS, np.float32), floor=min(THRESHOLDS))
    (want,) = decode(layout, build(), THRESHOLDS)
    np.testing.assert_array_equal(got.xyxy, want.xyxy)
    np.testing.assert_array_equal(got.class_id, want.class_id)
    assert len(want.scores) == 3


def test_yolov8_batch_with_nothing_above_the_floor_gives_one_empty_result_per_image() -> None:
    out = np.repeat(yolov8_output(), 3, axis=0)
    out[:, 4:] = 0.29  # below both thresholds, everywhere
    got = decode("yolov8", out, THRESHOLDS)
    assert len(got) == 3 and all(len(c.scores) == 0 for c in got)
    out[2, 5, 1] = 0.3  # one class-1 score of the last image reaches its threshold
    got = decode("yolov8", out, THRESHOLDS)
    assert [len(c.scores) for c in got] == [0, 0, 1] and got[2].class_id.tolist() == [1]


def test_end2end() -> None:
    out = np.array(
        [
            [
                [1, 2, 3, 4, 0.9, 0],
                [5, 6, 7, 8, 0.4, 0],  # below class 0's 0.5
                [5, 6, 7, 8, 0.4, 1],  # above class 1's 0.3
                [0, 0, 9, 9, 0.8, 5],  # class out of range
                [0, 0, 9, 9, 0.8, -1],  # class out of range
                [0, 0, 0, 0, 0.0, 0],  # padding row
            ]
        ],
        np.float32,
    )
    (got,) = decode("end2end", out, THRESHOLDS)
    np.testing.assert_allclose(got.xyxy, [[1, 2, 3, 4], [5, 6, 7, 8]])
    np.testing.assert_allclose(got.scores, [0.9, 0.4])
    np.testing.assert_array_equal(got.class_id, [0, 1])


def test_end2end_padding_dropped_even_with_zero_threshold() -> None:
    out = np.zeros((1, 3, 6), np.float32)
    (got,) = decode("end2end", out, [0.0, 0.0])
    assert len(got.scores) == 0


@pytest.mark.parametrize(
    ("layout", "shape"), [("yolov5", (1, 0, 7)), ("yolov8", (1, 6, 0)), ("yolov8", (2, 6, 5)), ("end2end", (1, 0, 6))]
)
def test_empty_outputs(layout: str, shape: tuple[int, ...]) -> None:
    got = decode(layout, np.zeros(shape, np.float32), THRESHOLDS)  # zeros: nothing passes (or nothing there)
    assert len(got) == shape[0]
    assert all(g.xyxy.shape == (0, 4) and g.scores.shape == (0,) and g.class_id.shape == (0,) for g in got)


@pytest.mark.parametrize(("layout", "build"), [("yolov5", yolov5_output), ("yolov8", yolov8_output)])
def test_batch_items_decoded_separately(layout: str, build) -> None:  # noqa: ANN001
    first, second = build(CASES[:2]), build(CASES[2:])
    got = decode(layout, np.concatenate([first, second]), THRESHOLDS)
    assert len(got) == 2
    for item, cases in zip(got, (CASES[:2], CASES[2:]), strict=True):
        xyxy, scores, cls = expected(cases)
        np.testing.assert_allclose(item.xyxy, xyxy)
        np.testing.assert_array_equal(item.class_id, cls)


def test_end2end_batch() -> None:
    out = np.zeros((2, 2, 6), np.float32)
    out[1, 1] = [1, 1, 2, 2, 0.6, 1]
    got = decode("end2end", out, THRESHOLDS)
    assert [len(g.scores) for g in got] == [0, 1] and got[1].class_id[0] == 1


def test_fp16_output_accepted() -> None:
    (got,) = decode("yolov8", yolov8_output().astype(np.float16), THRESHOLDS)
    assert len(got.scores) == 3 and got.scores.dtype == np.float32


@pytest.mark.parametrize(
    ("layout", "shape"),
    [("yolov5", (1, 4, 8)), ("yolov8", (1, 7, 4)), ("end2end", (1, 4, 7)), ("yolov8", (1, 2, 6, 4))],
)
def test_shape_not_fitting_class_count(layout: str, shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=layout):
        decode(layout, np.zeros(shape, np.float32), THRESHOLDS)


def test_unknown_layout() -> None:
    with pytest.raises(ValueError, match="unknown layout"):
        decode("yolox", np.zeros((1, 1, 6), np.float32), THRESHOLDS)
