"""Letterbox geometry, the letterboxed image, the NCHW tensor and the way back to frame pixels.

Geometry rules (all pure arithmetic in ``compute_geometry``):

* Effective bounds are the profile rounded to the stride: ``hi = floor(max / stride) * stride``
  and ``lo = min(ceil(min / stride) * stride, hi)`` (identical to the profile when it is made
  of multiples of the stride, as it should be).
* Scale keeps the aspect ratio and is ``min(1, hi_h / H, hi_w / W)``: shrink to fit ``max``,
  never upscale a frame that is already at least ``min`` in one axis. Upscaling adds no
  information but multiplies inference cost inside a fixed cycle budget, and the objects keep
  the pixel scale the recipe's ``max`` defines (set ``max`` to the training size to get the
  training scale). A frame smaller than ``min`` in *both* axes is upscaled to fit ``min``
  (``scale = min(lo_h / H, lo_w / W)``), so tiny ROI crops still reach the model's minimum.
* The network input is the scaled size rounded *up* to a multiple of the stride, clamped into
  ``[lo, hi]``; it is not necessarily square (1280x1024 with max (512, 640) → 512x640, no
  padding). Padding (value 114) is split evenly, top/left getting ``floor(pad / 2)``.

``boxes_to_frame`` inverts the mapping per axis with the exact resized/frame ratios (what
``cv2.resize`` used), so rounding of the resized size does not bias boxes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from inference.config import InputProfile

PAD_VALUE = 114
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_GRAY_MEAN, _GRAY_STD = 0.449, 0.226  # means of the RGB statistics, for 1-channel models
_SRC_PLANE = {"RGB": (0, 1, 2), "RGBA": (0, 1, 2), "BGR": (2, 1, 0)}


@dataclass(frozen=True)
class LetterboxGeometry:
    scale: float  # nominal frame → input scale
    pad_x: int  # left padding in input pixels
    pad_y: int  # top padding in input pixels
    input_h: int
    input_w: int
    frame_h: int
    frame_w: int
    resized_h: int  # size of the scaled frame inside the input
    resized_w: int

    @property
    def input_shape(self) -> tuple[int, int]:
        return (self.input_h, self.input_w)

    @property
    def identity(self) -> bool:
        """True when the frame is the input unchanged (no resize, no padding)."""
        return (self.resized_h, self.resized_w, self.input_h, self.input_w) == (
            self.frame_h,
            self.frame_w,
            self.frame_h,
            self.frame_w,
        )


def effective_bounds(profile: InputProfile, stride: int = 32) -> tuple[tuple[int, int], tuple[int, int]]:
    """(lo, hi) as (H, W): the profile snapped to multiples of ``stride`` (see module docstring)."""
    hi = tuple((m // stride) * stride or m for m in profile.max)
    lo = tuple(min(math.ceil(m / stride) * stride, h) for m, h in zip(profile.min, hi, strict=True))
    return (lo[0], lo[1]), (hi[0], hi[1])


def compute_geometry(frame_h: int, frame_w: int, profile: InputProfile, stride: int = 32) -> LetterboxGeometry:
    if frame_h <= 0 or frame_w <= 0:
        raise ValueError(f"frame size must be positive, got {frame_h}x{frame_w}")
    (lo_h, lo_w), (hi_h, hi_w) = effective_bounds(profile, stride)
    if frame_h <= lo_h and frame_w <= lo_w:
        scale = min(lo_h / frame_h, lo_w / frame_w)
    else:
        scale = min(1.0, hi_h / frame_h, hi_w / frame_w)
    resized_h = min(hi_h, max(1, round(frame_h * scale)))
    resized_w = min(hi_w, max(1, round(frame_w * scale)))
    input_h = min(hi_h, max(lo_h, math.ceil(resized_h / stride) * stride))
    input_w = min(hi_w, max(lo_w, math.ceil(resized_w / stride) * stride))
    return LetterboxGeometry(
        scale=scale,
        pad_x=(input_w - resized_w) // 2,
        pad_y=(input_h - resized_h) // 2,
        input_h=input_h,
        input_w=input_w,
        frame_h=frame_h,
        frame_w=frame_w,
        resized_h=resized_h,
        resized_w=resized_w,
    )


def letterbox(image: np.ndarray, geometry: LetterboxGeometry) -> np.ndarray:
    """Resize (INTER_LINEAR) and pad (114) ``image`` to the geometry's input size.

    Returns ``image`` itself when the geometry is the identity. For per-frame use prefer
    ``LetterboxCanvas``, which pads once and resizes straight into a cached buffer.
    """
    _check_frame(image, geometry)
    if geometry.identity:
        return image
    resized = image
    if (geometry.resized_h, geometry.resized_w) != image.shape[:2]:
        resized = cv2.resize(image, (geometry.resized_w, geometry.resized_h), interpolation=cv2.INTER_LINEAR)
    top, left = geometry.pad_y, geometry.pad_x
    bottom = geometry.input_h - geometry.resized_h - top
    right = geometry.input_w - geometry.resized_w - left
    return cv2.copyMakeBorder(resized, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 4)


class LetterboxCanvas:
    """A cached letterbox buffer for one geometry and channel count: border filled once.

    ``fill`` resizes the frame straight into the interior view (``cv2.resize(dst=view)``), so a
    frame costs one resize and no allocation. The returned array is reused by the next call.
    """

    def __init__(self, geometry: LetterboxGeometry, channels: int) -> None:
        self.geometry = geometry
        self.channels = channels
        shape = (geometry.input_h, geometry.input_w) + ((channels,) if channels > 1 else ())
        self._buffer = np.full(shape, PAD_VALUE, np.uint8)
        g = geometry
        self._interior = self._buffer[g.pad_y : g.pad_y + g.resized_h, g.pad_x : g.pad_x + g.resized_w]

    def fill(self, image: np.ndarray) -> np.ndarray:
        g = self.geometry
        _check_frame(image, g)
        if image.shape[2:] != self._buffer.shape[2:]:
            raise ValueError(f"canvas holds {self.channels} channels, image has shape {image.shape}")
        if g.identity:
            return image
        if (g.resized_h, g.resized_w) == image.shape[:2]:
            np.copyto(self._interior, image)
        else:
            out = cv2.resize(image, (g.resized_w, g.resized_h), dst=self._interior, interpolation=cv2.INTER_LINEAR)
            if out is not self._interior:  # OpenCV reallocated (should not happen): copy over
                np.copyto(self._interior, out)
        return self._buffer


def to_tensor(
    image: np.ndarray,
    *,
    order: Literal["L", "RGB", "BGR", "RGBA"] = "RGB",
    channels: int = 3,
    normalize: Literal["unit", "imagenet", "pixels"] = "unit",
    out: np.ndarray | None = None,
) -> np.ndarray:
    """uint8 HWC (or HW for ``order="L"``) → float32 NCHW ``(1, C, H, W)`` in [0, 1] (``unit``),
    or the pixel values as they are (``pixels``: for a model that scales in its first layer).

    Channel replication (L → 3), reordering (BGR → RGB) and dropping alpha happen here, where
    every output element is written anyway. ``out`` (any float32 ``(1, C, H, W)`` view, e.g.
    one slot of a batch buffer) avoids the allocation. Planes are split with ``cv2.split`` and
    scaled with numpy: ~0.2 ms at 512x640 against ~4 ms for ``cv2.dnn.blobFromImage`` on the
    2-core dev box.
    """
    h, w = image.shape[:2]
    if out is None:
        out = np.empty((1, channels, h, w), np.float32)
    elif out.shape != (1, channels, h, w) or out.dtype != np.float32:
        raise ValueError(f"out must be float32 (1, {channels}, {h}, {w}), got {out.dtype} {out.shape}")
    if order == "L" and image.ndim == 3:
        image = image[:, :, 0]
    raw = normalize == "pixels"
    if channels == 1:
        _write_plane(image if order == "L" else cv2.cvtColor(image, _gray_code(order)), out[0, 0], raw)
    elif order == "L":
        _write_plane(image, out[0, 0], raw)
        out[0, 1] = out[0, 0]
        out[0, 2] = out[0, 0]
    else:
        planes = cv2.split(image)
        for c, src in enumerate(_SRC_PLANE[order]):
            _write_plane(planes[src], out[0, c], raw)
    if normalize == "imagenet":
        means, stds = ((_GRAY_MEAN,), (_GRAY_STD,)) if channels == 1 else (_IMAGENET_MEAN, _IMAGENET_STD)
        for c in range(channels):
            out[0, c] -= np.float32(means[c])
            out[0, c] *= np.float32(1.0 / stds[c])
    return out


_UNIT = np.float32(1.0 / 255.0)


def _write_plane(plane: np.ndarray, dst: np.ndarray, raw: bool) -> None:
    if raw:
        np.copyto(dst, plane)  # a cast alone: one pass less over the largest buffer
    else:
        np.multiply(plane, _UNIT, out=dst, dtype=np.float32)


def boxes_to_frame(xyxy: np.ndarray, geometry: LetterboxGeometry) -> np.ndarray:
    """Map (N, 4) xyxy boxes from input pixels to frame pixels, clipped to [0, W] x [0, H].

    Boxes are continuous coordinates (a box covering the whole frame is ``[0, 0, W, H]``), so
    the clip upper bound is the frame size, not size - 1. Returns a new float32 array.
    """
    g = geometry
    boxes = np.asarray(xyxy, np.float32).reshape(-1, 4)
    sx = np.float32(g.resized_w / g.frame_w)
    sy = np.float32(g.resized_h / g.frame_h)
    out = np.empty_like(boxes)
    out[:, 0::2] = (boxes[:, 0::2] - np.float32(g.pad_x)) / sx
    out[:, 1::2] = (boxes[:, 1::2] - np.float32(g.pad_y)) / sy
    np.clip(out[:, 0::2], 0, g.frame_w, out=out[:, 0::2])
    np.clip(out[:, 1::2], 0, g.frame_h, out=out[:, 1::2])
    return out


def _gray_code(order: str) -> int:
    return {"RGB": cv2.COLOR_RGB2GRAY, "BGR": cv2.COLOR_BGR2GRAY, "RGBA": cv2.COLOR_RGBA2GRAY}[order]


def _check_frame(image: np.ndarray, geometry: LetterboxGeometry) -> None:
    if image.shape[:2] != (geometry.frame_h, geometry.frame_w):
        raise ValueError(f"image is {image.shape[:2]}, geometry expects {(geometry.frame_h, geometry.frame_w)}")
