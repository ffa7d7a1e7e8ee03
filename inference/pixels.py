"""Camera buffer → model colour (RGB or gray) on the CPU, by PFNC pixel-format name.

``inference`` never imports ``camera``: the PFNC name string is the contract, and the small
table below repeats what we need from ``camera.pixel_format`` (raw channels, channel order,
Bayer phase).

Two entry points:

* ``to_model_colour`` converts fully to what the model eats (``(H, W, 3)`` RGB or ``(H, W)``
  gray) and returns the input itself (a view, no copy) when it already is that.
* ``prepare`` does only the work that must happen at full frame resolution (demosaicing,
  colour → gray) and leaves channel replication (Mono8 → 3 channels), reordering (BGR) and
  dropping alpha to the tensor step, which writes every output element anyway. Resizing one
  gray plane instead of three replicated ones is ~5x cheaper, and the reorder is free there.

Bayer naming: OpenCV's legacy ``COLOR_Bayer<XY>2RGB`` constants name the 2x2 pattern that
starts at pixel (1, 1), PFNC names the one at (0, 0). So a PFNC ``BayerRG8`` mosaic (R at
(0, 0)) is ``cv2.COLOR_BayerBG2RGB``. (OpenCV ≥ 4.10 also has ``COLOR_BayerRGGB2RGB`` with
the same value; we use the legacy names so older 4.x wheels work.) The tests verify each phase
on a synthetic mosaic with known colours.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

ChannelOrder = Literal["L", "RGB", "BGR", "RGBA"]

# PFNC name → (raw channels, channel order in memory or "BAYER")
_FORMATS: dict[str, tuple[int, str]] = {
    "Mono8": (1, "L"),
    "RGB8": (3, "RGB"),
    "BGR8": (3, "BGR"),
    "RGBa8": (4, "RGBA"),
    "BayerRG8": (1, "BAYER"),
    "BayerGB8": (1, "BAYER"),
    "BayerGR8": (1, "BAYER"),
    "BayerBG8": (1, "BAYER"),
}

# PFNC phase (pattern at (0, 0)) → OpenCV legacy code (pattern at (1, 1)).
_BAYER_TO_RGB: dict[str, int] = {
    "BayerRG8": cv2.COLOR_BayerBG2RGB,
    "BayerGB8": cv2.COLOR_BayerGR2RGB,
    "BayerGR8": cv2.COLOR_BayerGB2RGB,
    "BayerBG8": cv2.COLOR_BayerRG2RGB,
}
_BAYER_TO_GRAY: dict[str, int] = {
    "BayerRG8": cv2.COLOR_BayerBG2GRAY,
    "BayerGB8": cv2.COLOR_BayerGR2GRAY,
    "BayerGR8": cv2.COLOR_BayerGB2GRAY,
    "BayerBG8": cv2.COLOR_BayerRG2GRAY,
}
_TO_GRAY: dict[str, int] = {"RGB": cv2.COLOR_RGB2GRAY, "BGR": cv2.COLOR_BGR2GRAY, "RGBA": cv2.COLOR_RGBA2GRAY}
_TO_RGB: dict[str, int] = {"BGR": cv2.COLOR_BGR2RGB, "RGBA": cv2.COLOR_RGBA2RGB, "L": cv2.COLOR_GRAY2RGB}


def supported_formats() -> tuple[str, ...]:
    return tuple(_FORMATS)


def raw_channels(pixel_format: str) -> int:
    """Channels per pixel in the raw camera buffer."""
    return _lookup(pixel_format)[0]


@dataclass(frozen=True)
class Prepared:
    """A full-resolution image plus the channel order the tensor step must turn into RGB/gray."""

    image: np.ndarray  # (H, W) for "L", (H, W, 3|4) otherwise; uint8
    order: ChannelOrder


def prepare(data: np.ndarray, pixel_format: str, channels: int = 3) -> Prepared:
    """Do the full-resolution part of the colour conversion only (see the module docstring)."""
    _, order = _lookup(pixel_format)
    image = _checked(data, pixel_format)
    if order == "BAYER":
        table = _BAYER_TO_GRAY if channels == 1 else _BAYER_TO_RGB
        converted = cv2.cvtColor(image, table[pixel_format])
        return Prepared(converted, "L" if channels == 1 else "RGB")
    if channels == 1 and order != "L":
        return Prepared(cv2.cvtColor(image, _TO_GRAY[order]), "L")
    return Prepared(image, order)  # type: ignore[arg-type]


def to_model_colour(data: np.ndarray, pixel_format: str, channels: int = 3) -> np.ndarray:
    """Convert a camera buffer to RGB ``(H, W, 3)`` (channels=3) or gray ``(H, W)`` (channels=1).

    Returns the input (as a view) when no conversion is needed: RGB8 for an RGB model, Mono8
    for a gray model.
    """
    if channels not in (1, 3):
        raise ValueError(f"model channels must be 1 or 3, got {channels}")
    prepared = prepare(data, pixel_format, channels)
    if channels == 1 or prepared.order == "RGB":
        return prepared.image
    return cv2.cvtColor(prepared.image, _TO_RGB[prepared.order])


def _lookup(pixel_format: str) -> tuple[int, str]:
    try:
        return _FORMATS[pixel_format]
    except KeyError:
        raise ValueError(f"unsupported pixel format {pixel_format!r}; supported: {', '.join(_FORMATS)}") from None


def _checked(data: np.ndarray, pixel_format: str) -> np.ndarray:
    """Validate dtype/shape against the format; squeeze (H, W, 1) to (H, W) as a view."""
    raw, _ = _lookup(pixel_format)
    if data.dtype != np.uint8:
        raise ValueError(f"{pixel_format}: expected a uint8 buffer, got {data.dtype}")
    if raw == 1 and data.ndim == 3 and data.shape[2] == 1:
        data = data[:, :, 0]
    ok = data.ndim == 2 if raw == 1 else (data.ndim == 3 and data.shape[2] == raw)
    if not ok or data.shape[0] == 0 or data.shape[1] == 0:
        want = "(H, W)" if raw == 1 else f"(H, W, {raw})"
        raise ValueError(f"{pixel_format}: expected shape {want}, got {data.shape}")
    return data
