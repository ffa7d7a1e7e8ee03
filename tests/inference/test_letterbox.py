"""Letterbox geometry table, padding pixels, tensors, and boxes back to frame pixels."""

from __future__ import annotations

import numpy as np
import pytest

from inference.config import InputProfile
from inference.letterbox import (
    PAD_VALUE,
    LetterboxCanvas,
    LetterboxGeometry,
    boxes_to_frame,
    compute_geometry,
    letterbox,
    to_tensor,
)

DEFAULT = InputProfile()  # min (320, 320), opt (512, 640), max (1024, 1280)
SMALL = InputProfile(min=(320, 320), opt=(512, 640), max=(512, 640))
SQUARE = InputProfile(min=(320, 320), opt=(640, 640), max=(640, 640))
ODD_MAX = InputProfile(min=(300, 300), opt=(320, 320), max=(1000, 1000))


FIELDS = ("scale", "pad_x", "pad_y", "input_h", "input_w", "frame_h", "frame_w", "resized_h", "resized_w")


def geo(scale, pad_x, pad_y, ih, iw, fh, fw, rh, rw) -> LetterboxGeometry:  # noqa: ANN001
    return LetterboxGeometry(scale, pad_x, pad_y, ih, iw, fh, fw, rh, rw)


# (frame H, W), profile → expected geometry; worked out by hand in the comments
GEOMETRY_TABLE = [
    # 1280x1024 into max 512x640: scale 0.5 exactly, no padding, not square
    ((1024, 1280), SMALL, geo(0.5, 0, 0, 512, 640, 1024, 1280, 512, 640)),
    # 1000x700 (W x H): scale min(512/700, 640/1000) = 0.64 → 448x640, 448 = 14 * 32, no padding
    ((700, 1000), SMALL, geo(0.64, 0, 0, 448, 640, 700, 1000, 448, 640)),
    # portrait 700x1000: scale 0.512 → 512 x round(358.4)=358 → width 384, pad (384-358)//2 = 13
    ((1000, 700), SMALL, geo(0.512, 13, 0, 512, 384, 1000, 700, 512, 358)),
    # smaller than min in both axes: upscale to fit min, scale min(3.2, 1.6) = 1.6 → 160x320, pad_y 80
    ((100, 200), DEFAULT, geo(1.6, 0, 80, 320, 320, 100, 200, 160, 320)),
    # inside [min, max]: no upscaling, width 600 → 608, pad 4 left / 4 right
    ((480, 600), DEFAULT, geo(1.0, 4, 0, 480, 608, 480, 600, 480, 600)),
    # odd padding: 501 → 512 (11: 5 top, 6 bottom), 301 → 320 (19: 9 left, 10 right)
    ((501, 301), DEFAULT, geo(1.0, 9, 5, 512, 320, 501, 301, 501, 301)),
    # exact fit: identity
    ((512, 640), DEFAULT, geo(1.0, 0, 0, 512, 640, 512, 640, 512, 640)),
    # below min in one axis only: no upscale, height padded up to min 320 (pad 110), width 1000 → 1024
    ((100, 1000), DEFAULT, geo(1.0, 12, 110, 320, 1024, 100, 1000, 100, 1000)),
    # square profile, landscape frame: scale 0.5 → 512x640, input not square
    ((1024, 1280), SQUARE, geo(0.5, 0, 0, 512, 640, 1024, 1280, 512, 640)),
    # max not a multiple of 32: effective max 992, min 300 → 320; scale 992/2000
    ((2000, 2000), ODD_MAX, geo(0.496, 0, 0, 992, 992, 2000, 2000, 992, 992)),
    # frame exactly min: no scaling, no padding
    ((320, 320), DEFAULT, geo(1.0, 0, 0, 320, 320, 320, 320, 320, 320)),
]


@pytest.mark.parametrize(("frame", "profile", "expected"), GEOMETRY_TABLE)
def test_geometry_table(frame: tuple[int, int], profile: InputProfile, expected: LetterboxGeometry) -> None:
    got = compute_geometry(*frame, profile)
    assert got.scale == pytest.approx(expected.scale)
    assert got == LetterboxGeometry(got.scale, *[getattr(expected, f) for f in FIELDS[1:]])
    assert got.input_h % 32 == 0 and got.input_w % 32 == 0


def test_geometry_rejects_empty_frame() -> None:
    with pytest.raises(ValueError):
        compute_geometry(0, 10, DEFAULT)


def test_padded_border_pixels() -> None:
    g = compute_geometry(100, 200, DEFAULT)  # pad_y 80 above and below a 160x320 image
    image = np.full((100, 200, 3), 200, np.uint8)
    out = letterbox(image, g)
    assert out.shape == (320, 320, 3)
    assert (out[:80] == PAD_VALUE).all() and (out[240:] == PAD_VALUE).all()
    assert (out[80:240] == 200).all()
    canvas = LetterboxCanvas(g, 3)
    np.testing.assert_array_equal(canvas.fill(image), out)
    second = np.full((100, 200, 3), 9, np.uint8)  # reuse: border stays, interior replaced
    filled = canvas.fill(second)
    assert (filled[:80] == PAD_VALUE).all() and (filled[80:240] == 9).all()


def test_odd_padding_split_top_left_floor() -> None:
    g = compute_geometry(501, 301, DEFAULT)
    out = letterbox(np.zeros((501, 301), np.uint8), g)
    assert out.shape == (512, 320)
    rows = np.flatnonzero((out == PAD_VALUE).all(axis=1))
    cols = np.flatnonzero((out == PAD_VALUE).all(axis=0))
    assert list(rows) == [0, 1, 2, 3, 4, 506, 507, 508, 509, 510, 511]
    assert list(cols) == list(range(9)) + list(range(310, 320))


def test_identity_geometry_returns_the_frame() -> None:
    g = compute_geometry(512, 640, DEFAULT)
    frame = np.zeros((512, 640), np.uint8)
    assert letterbox(frame, g) is frame and LetterboxCanvas(g, 1).fill(frame) is frame


def test_letterbox_rejects_wrong_frame() -> None:
    with pytest.raises(ValueError):
        letterbox(np.zeros((10, 10), np.uint8), compute_geometry(100, 200, DEFAULT))


# input-pixel box → frame-pixel box for the 100x200 frame (scale 1.6, pad_y 80)
BOX_TABLE = [
    ([16, 96, 32, 112], [10, 10, 20, 20]),
    ([0, 80, 320, 240], [0, 0, 200, 100]),  # the whole image area
    ([-5, 70, 40, 100], [0, 0, 25, 12.5]),  # crosses the top padding and the left edge: clipped
    ([300, 230, 340, 250], [187.5, 93.75, 200, 100]),  # crosses the bottom padding: clipped
    ([0, 0, 320, 40], [0, 0, 200, 0]),  # entirely in the padding: collapses to zero height
]


@pytest.mark.parametrize(("box", "expected"), BOX_TABLE)
def test_boxes_to_frame(box: list[float], expected: list[float]) -> None:
    g = compute_geometry(100, 200, DEFAULT)
    got = boxes_to_frame(np.array([box], np.float32), g)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got[0], expected, atol=1e-4)


@pytest.mark.parametrize(("frame", "profile", "_"), GEOMETRY_TABLE)
def test_round_trip(frame: tuple[int, int], profile: InputProfile, _: object) -> None:
    g = compute_geometry(*frame, profile)
    h, w = frame
    boxes = np.array([[0, 0, w, h], [w * 0.1, h * 0.2, w * 0.5, h * 0.9]], np.float32)
    sx, sy = g.resized_w / w, g.resized_h / h
    to_input = boxes * np.array([sx, sy, sx, sy], np.float32) + np.array([g.pad_x, g.pad_y] * 2, np.float32)
    np.testing.assert_allclose(boxes_to_frame(to_input, g), boxes, rtol=1e-5, atol=1e-3)


def test_boxes_to_frame_empty() -> None:
    assert boxes_to_frame(np.zeros((0, 4), np.float32), compute_geometry(100, 200, DEFAULT)).shape == (0, 4)


def test_to_tensor_orders() -> None:
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 255, 51, 0
    t = to_tensor(rgb, order="RGB")
    assert t.shape == (1, 3, 2, 3) and t.dtype == np.float32
    np.testing.assert_allclose(t[0, :, 0, 0], [1.0, 0.2, 0.0])
    np.testing.assert_allclose(to_tensor(rgb[..., ::-1].copy(), order="BGR")[0, :, 1, 2], [1.0, 0.2, 0.0])
    rgba = np.concatenate([rgb, np.full((2, 3, 1), 77, np.uint8)], axis=2)
    np.testing.assert_allclose(to_tensor(rgba, order="RGBA")[0, :, 1, 1], [1.0, 0.2, 0.0])
    gray = np.full((2, 3), 102, np.uint8)
    np.testing.assert_allclose(to_tensor(gray, order="L")[0, :, 0, 0], [0.4, 0.4, 0.4])
    one = to_tensor(gray, order="L", channels=1)
    assert one.shape == (1, 1, 2, 3) and one[0, 0, 0, 0] == pytest.approx(0.4)
    from_rgb = to_tensor(rgb, order="RGB", channels=1)  # RGB → gray for a 1-channel model
    assert from_rgb[0, 0, 0, 0] == pytest.approx(round(0.299 * 255 + 0.587 * 51) / 255)
    pixels = to_tensor(gray, order="L", channels=1, normalize="pixels")  # a model that scales itself
    assert pixels.dtype == np.float32 and (pixels == 102.0).all()
    np.testing.assert_array_equal(to_tensor(rgb, order="BGR", normalize="pixels")[0, :, 0, 0], [0.0, 51.0, 255.0])


def test_to_tensor_into_batch_slot_and_imagenet() -> None:
    batch = np.zeros((2, 3, 2, 2), np.float32)
    image = np.full((2, 2, 3), 255, np.uint8)
    out = to_tensor(image, out=batch[1:2], normalize="imagenet")
    assert np.shares_memory(out, batch) and (batch[0] == 0).all()
    np.testing.assert_allclose(batch[1, :, 0, 0], [(1 - 0.485) / 0.229, (1 - 0.456) / 0.224, (1 - 0.406) / 0.225], rtol=1e-5)
    with pytest.raises(ValueError):
        to_tensor(image, out=np.zeros((1, 3, 3, 3), np.float32))
