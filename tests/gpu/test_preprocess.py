"""GPU letterbox kernel vs the CPU reference (pixels.prepare → LetterboxCanvas → to_tensor).

Every PFNC format, several geometries (exact 0.5 downscale, padding, upscale, odd sizes,
identity, a cropped view with row pitch > width), fp32 and fp16 output, unit and imagenet
normalization, 3- and 1-channel models. Fresh random frames per case; the output buffer is
poisoned (NaN) first so an unwritten element fails.
"""

from __future__ import annotations

import numpy as np
import pytest

from inference.config import InputProfile
from inference.gpu.preprocess import FORMATS, GpuPreprocessor
from inference.letterbox import LetterboxCanvas, compute_geometry, to_tensor
from inference.pixels import prepare

pytestmark = pytest.mark.gpu

RAW_CHANNELS = {"Mono8": 1, "RGB8": 3, "BGR8": 3, "RGBa8": 4}
CASES = [  # frame (H, W), profile (min, max)
    ((1024, 1280), ((320, 320), (512, 640))),  # exact 0.5 (OpenCV switches to INTER_AREA)
    ((1000, 1300), ((320, 320), (640, 640))),  # scale 0.49, padding top/bottom
    ((300, 400), ((640, 640), (1024, 1024))),  # upscale x1.6
    ((37, 53), ((32, 32), (64, 64))),  # odd sizes, tiny
    ((512, 640), ((320, 320), (1024, 1280))),  # identity geometry
]


def random_frame(rng: np.random.Generator, fmt: str, h: int, w: int, pitch_pad: int = 0) -> np.ndarray:
    c = RAW_CHANNELS.get(fmt, 1)
    base = rng.integers(0, 256, (h, w + pitch_pad, c), dtype=np.uint8)
    view = base[:, :w]
    return view[:, :, 0] if c == 1 else view


def cpu_reference(frame: np.ndarray, fmt: str, geometry, channels: int, normalize) -> np.ndarray:
    prepared = prepare(frame, fmt, channels)
    img = prepared.image
    canvas = LetterboxCanvas(geometry, img.shape[2] if img.ndim == 3 else 1)
    return to_tensor(canvas.fill(img), order=prepared.order, channels=channels, normalize=normalize).copy()


def gpu_output(cuda, frames, fmt, geometry, channels, normalize, half) -> np.ndarray:
    device, stream, pool, registry = cuda
    pre = GpuPreprocessor(device, stream, pool, registry, channels=channels, normalize=normalize, half=half)
    nbytes = pre.output_nbytes(geometry, len(frames))
    dst = pool.device(f"test-out:{nbytes}", nbytes)
    dtype = np.float16 if half else np.float32
    shape = (len(frames), channels, geometry.input_h, geometry.input_w)
    poison = np.full(shape, np.nan, dtype)
    dst.upload(poison, stream)
    pre.run(frames, fmt, geometry, dst.ptr)
    host = np.empty(shape, dtype)
    dst.download(host, stream)
    stream.synchronize()
    return host.astype(np.float32)


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("case", CASES, ids=[f"{c[0][0]}x{c[0][1]}" for c in CASES])
def test_matches_cpu_fp32_rgb(cuda, fmt, case) -> None:
    rng = np.random.default_rng()
    (h, w), (lo, hi) = case
    geometry = compute_geometry(h, w, InputProfile(min=lo, opt=lo, max=hi))
    frames = [random_frame(rng, fmt, h, w) for _ in range(2)]
    got = gpu_output(cuda, frames, fmt, geometry, 3, "unit", half=False)
    assert np.isfinite(got).all(), "unwritten output elements"
    for i, frame in enumerate(frames):
        ref = cpu_reference(frame, fmt, geometry, 3, "unit")[0]
        diff = np.abs(got[i] - ref)
        assert diff.max() <= 1 / 255 + 1e-6, f"{fmt} {case}: max diff {diff.max() * 255:.3f}/255"


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_fp16_gray_imagenet_and_pitched_views(cuda, fmt) -> None:
    rng = np.random.default_rng()
    h, w = 721, 963
    geometry = compute_geometry(h, w, InputProfile(min=(320, 320), opt=(480, 640), max=(480, 640)))
    frame = random_frame(rng, fmt, h, w, pitch_pad=37)  # a crop: row pitch > row bytes
    for channels, normalize, half, tol in (
        (3, "unit", True, 1 / 255 + 2e-3),
        (1, "unit", False, 1 / 255 + 1e-6),
        (3, "imagenet", False, (1 / 255) / 0.224 + 1e-5),
        (1, "imagenet", True, (1 / 255) / 0.226 + 1e-2),
    ):
        got = gpu_output(cuda, [frame], fmt, geometry, channels, normalize, half)[0]
        ref = cpu_reference(frame, fmt, geometry, channels, normalize)[0]
        diff = np.abs(got - ref)
        assert np.isfinite(got).all()
        assert diff.max() <= tol, f"{fmt} C={channels} {normalize} half={half}: max diff {diff.max():.5f}"


def test_kernel_compiled_once(cuda) -> None:
    from inference.gpu.kernels import Kernels
    from inference.gpu.preprocess import KERNEL_SOURCE

    device = cuda[0]
    a = Kernels.get(KERNEL_SOURCE, ["letterbox_normalize"], device)
    b = Kernels.get(KERNEL_SOURCE, ["letterbox_normalize"], device)
    assert a is b
