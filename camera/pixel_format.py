"""Pixel formats by their GenICam PFNC names.

The PFNC name string is the contract between ``camera`` and ``inference`` (neither imports
the other): the description here is exact enough for a GPU kernel to convert the raw buffer
(channels, channel order, Bayer phase).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class PixelFormat(str, Enum):
    MONO8 = "Mono8"
    RGB8 = "RGB8"
    BGR8 = "BGR8"
    RGBA8 = "RGBa8"
    BAYER_RG8 = "BayerRG8"
    BAYER_GB8 = "BayerGB8"
    BAYER_GR8 = "BayerGR8"
    BAYER_BG8 = "BayerBG8"


@dataclass(frozen=True)
class PixelFormatInfo:
    name: str
    channels: int  # channels per pixel in the raw buffer
    bytes_per_pixel: int
    order: str  # channel order in memory, e.g. "RGB", "BGR", "RGBA", "L"; "BAYER" for mosaics
    bayer_phase: str | None  # top-left 2x2 pattern, e.g. "RG" for BayerRG8 (R at (0,0), G at (0,1))


_INFO: dict[str, PixelFormatInfo] = {
    "Mono8": PixelFormatInfo("Mono8", 1, 1, "L", None),
    "RGB8": PixelFormatInfo("RGB8", 3, 3, "RGB", None),
    "BGR8": PixelFormatInfo("BGR8", 3, 3, "BGR", None),
    "RGBa8": PixelFormatInfo("RGBa8", 4, 4, "RGBA", None),
    "BayerRG8": PixelFormatInfo("BayerRG8", 1, 1, "BAYER", "RG"),
    "BayerGB8": PixelFormatInfo("BayerGB8", 1, 1, "BAYER", "GB"),
    "BayerGR8": PixelFormatInfo("BayerGR8", 1, 1, "BAYER", "GR"),
    "BayerBG8": PixelFormatInfo("BayerBG8", 1, 1, "BAYER", "BG"),
}


def describe_pixel_format(name: str) -> PixelFormatInfo:
    try:
        return _INFO[str(PixelFormat(name).value)]
    except ValueError:
        raise ValueError(f"unsupported pixel format {name!r}; supported: {', '.join(_INFO)}") from None


def supported_pixel_formats() -> tuple[str, ...]:
    return tuple(_INFO)
