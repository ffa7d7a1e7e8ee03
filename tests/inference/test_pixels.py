"""Pixel-format conversion, every PFNC format, Bayer phases on synthetic mosaics."""

from __future__ import annotations

import numpy as np
import pytest

from inference.config import InputProfile
from inference.letterbox import LetterboxCanvas, compute_geometry, letterbox, to_tensor
from inference.pixels import prepare, raw_channels, supported_formats, to_model_colour

RGB = (200, 100, 30)  # distinct values: a wrong phase or a swap shows at once
GRAY = round(0.299 * RGB[0] + 0.587 * RGB[1] + 0.114 * RGB[2])  # 122

# PFNC phase: the colour (0=R, 1=G, 2=B) at (0,0), (0,1), (1,0), (1,1)
PHASES = {
    "BayerRG8": (0, 1, 1, 2),
    "BayerGB8": (1, 2, 0, 1),
    "BayerGR8": (1, 0, 2, 1),
    "BayerBG8": (2, 1, 1, 0),
}


def mosaic(fmt: str, rgb: tuple[int, int, int], h: int = 16, w: int = 20) -> np.ndarray:
    """What a sensor with this colour filter array records of a uniform ``rgb`` scene."""
    out = np.zeros((h, w), np.uint8)
    for (dy, dx), channel in zip(((0, 0), (0, 1), (1, 0), (1, 1)), PHASES[fmt], strict=True):
        out[dy::2, dx::2] = rgb[channel]
    return out


@pytest.mark.parametrize("fmt", sorted(PHASES))
def test_bayer_phase_gives_the_scene_colour(fmt: str) -> None:
    rgb = to_model_colour(mosaic(fmt, RGB), fmt, channels=3)
    assert rgb.shape == (16, 20, 3)
    interior = rgb[2:-2, 2:-2].reshape(-1, 3)
    assert (interior == np.array(RGB, np.uint8)).all(), f"{fmt}: got {np.unique(interior, axis=0)}"


@pytest.mark.parametrize("fmt", sorted(PHASES))
def test_bayer_phase_each_primary(fmt: str) -> None:
    for channel in range(3):
        colour = [0, 0, 0]
        colour[channel] = 255
        rgb = to_model_colour(mosaic(fmt, (colour[0], colour[1], colour[2])), fmt)
        assert (rgb[2:-2, 2:-2, channel] == 255).all()
        assert (np.delete(rgb[2:-2, 2:-2], channel, axis=2) == 0).all()


@pytest.mark.parametrize("fmt", sorted(PHASES))
def test_bayer_to_gray(fmt: str) -> None:
    gray = to_model_colour(mosaic(fmt, RGB), fmt, channels=1)
    assert gray.shape == (16, 20)
    assert np.abs(gray[2:-2, 2:-2].astype(int) - GRAY).max() <= 1


def colour_frame(fmt: str) -> np.ndarray:
    r, g, b = RGB
    layouts = {"RGB8": (r, g, b), "BGR8": (b, g, r), "RGBa8": (r, g, b, 7)}
    return np.tile(np.array(layouts[fmt], np.uint8), (4, 5, 1))


@pytest.mark.parametrize("fmt", ["RGB8", "BGR8", "RGBa8"])
def test_colour_formats_to_rgb_and_gray(fmt: str) -> None:
    frame = colour_frame(fmt)
    rgb = to_model_colour(frame, fmt, channels=3)
    assert rgb.shape == (4, 5, 3) and (rgb == np.array(RGB, np.uint8)).all()
    gray = to_model_colour(frame, fmt, channels=1)
    assert gray.shape == (4, 5) and (gray == GRAY).all()


def test_rgb8_for_rgb_model_is_the_same_buffer() -> None:
    frame = colour_frame("RGB8")
    assert to_model_colour(frame, "RGB8") is frame


def test_mono8() -> None:
    frame = np.arange(20, dtype=np.uint8).reshape(4, 5)
    gray = to_model_colour(frame, "Mono8", channels=1)
    assert np.shares_memory(gray, frame) and gray.shape == (4, 5)
    rgb = to_model_colour(frame, "Mono8", channels=3)
    assert rgb.shape == (4, 5, 3) and all((rgb[:, :, c] == frame).all() for c in range(3))
    squeezed = to_model_colour(frame[:, :, None], "Mono8", channels=1)  # (H, W, 1) accepted as a view
    assert squeezed.shape == (4, 5) and np.shares_memory(squeezed, frame)


def test_prepare_defers_cheap_work() -> None:
    mono = np.zeros((4, 5), np.uint8)
    assert prepare(mono, "Mono8", 3).order == "L" and prepare(mono, "Mono8", 3).image is mono
    bgr = colour_frame("BGR8")
    assert prepare(bgr, "BGR8", 3).order == "BGR" and prepare(bgr, "BGR8", 3).image is bgr
    assert prepare(mosaic("BayerRG8", RGB), "BayerRG8", 3).order == "RGB"
    assert prepare(mosaic("BayerRG8", RGB), "BayerRG8", 1).order == "L"


@pytest.mark.parametrize("fmt", supported_formats())
@pytest.mark.parametrize("channels", [1, 3])
def test_fast_path_equals_reference(fmt: str, channels: int) -> None:
    """prepare → canvas → to_tensor (engine) == to_model_colour → letterbox → to_tensor."""
    rng = np.random.default_rng(3)
    raw = raw_channels(fmt)
    frame = rng.integers(0, 256, (50, 70) if raw == 1 else (50, 70, raw), dtype=np.uint8)
    geometry = compute_geometry(50, 70, InputProfile(min=(32, 32), opt=(32, 64), max=(32, 64)))
    reference = to_tensor(letterbox(to_model_colour(frame, fmt, channels), geometry), order="L" if channels == 1 else "RGB", channels=channels)
    prepared = prepare(frame, fmt, channels)
    canvas = LetterboxCanvas(geometry, prepared.image.shape[2] if prepared.image.ndim == 3 else 1)
    fast = to_tensor(canvas.fill(prepared.image), order=prepared.order, channels=channels)
    np.testing.assert_array_equal(fast, reference)


@pytest.mark.parametrize(
    ("fmt", "shape", "dtype"),
    [
        ("RGB8", (4, 5), np.uint8),
        ("Mono8", (4, 5, 3), np.uint8),
        ("RGBa8", (4, 5, 3), np.uint8),
        ("BayerRG8", (4, 5, 2), np.uint8),
        ("Mono8", (4, 5), np.uint16),
        ("Mono8", (0, 5), np.uint8),
        ("Mono12", (4, 5), np.uint8),
    ],
)
def test_rejects_mismatched_buffers(fmt: str, shape: tuple[int, ...], dtype: type) -> None:
    with pytest.raises(ValueError, match=fmt):
        to_model_colour(np.zeros(shape, dtype), fmt)


def test_opencv_bayer_naming_is_shifted_from_pfnc() -> None:
    """OpenCV's legacy BayerBG is the PFNC RG mosaic; its newer 4-letter aliases say so openly."""
    import cv2

    if hasattr(cv2, "COLOR_BayerRGGB2RGB"):
        assert cv2.COLOR_BayerRGGB2RGB == cv2.COLOR_BayerBG2RGB
        assert cv2.COLOR_BayerGBRG2RGB == cv2.COLOR_BayerGR2RGB
        assert cv2.COLOR_BayerGRBG2RGB == cv2.COLOR_BayerGB2RGB
        assert cv2.COLOR_BayerBGGR2RGB == cv2.COLOR_BayerRG2RGB
