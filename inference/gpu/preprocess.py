"""GPU preprocessing: camera buffer → letterboxed, normalized NCHW engine input, one kernel.

Why on the GPU: at 1280x1024 the CPU path (demosaic + resize + normalize) costs
milliseconds of a 40 ms cycle and needs the float tensor uploaded (5x the raw bytes). Here the
raw uint8 frame goes up once — by DMA straight from the camera's buffer when that buffer is
registered (``HostRegistry``), so no host copy of pixel data happens per frame — and the
kernel in ``kernels/preprocess.cu`` (compiled once per process by NVRTC) writes the engine
input in place.

The CPU path (``pixels.prepare`` → ``LetterboxCanvas`` → ``to_tensor``) is the reference;
the kernel reproduces OpenCV's arithmetic (see the kernel's header), and tests/gpu compares
every pixel format at several shapes within 1/255.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from inference.gpu import enqueue as cuda_enqueue
from inference.gpu.cuda import BufferPool, Device, GpuError, Stream, check, driver
from inference.gpu.host_register import CopyCounters, HostRegistry
from inference.gpu.kernels import Kernels, launch
from inference.letterbox import LetterboxGeometry

KERNEL_SOURCE = (Path(__file__).parent / "cu" / "preprocess.cu").read_text()

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_GRAY_MEAN, _GRAY_STD = 0.449, 0.226  # as letterbox.to_tensor

# PFNC name → (kernel format code, bytes per pixel, R-site parity (y, x) for Bayer)
FORMATS: dict[str, tuple[int, int, tuple[int, int]]] = {
    "Mono8": (0, 1, (0, 0)),
    "RGB8": (1, 3, (0, 0)),
    "BGR8": (2, 3, (0, 0)),
    "RGBa8": (3, 4, (0, 0)),
    "BayerRG8": (4, 1, (0, 0)),  # PFNC names the 2x2 tile at (0, 0): R at (0, 0)
    "BayerGB8": (4, 1, (1, 0)),
    "BayerGR8": (4, 1, (0, 1)),
    "BayerBG8": (4, 1, (1, 1)),
}


class _Params(ctypes.Structure):
    """Mirror of ``struct Params`` in preprocess.cu (passed by value)."""

    _fields_ = [
        ("src_h", ctypes.c_int),
        ("src_w", ctypes.c_int),
        ("src_pitch", ctypes.c_int),
        ("src_image_stride", ctypes.c_int),
        ("fmt", ctypes.c_int),
        ("r_y", ctypes.c_int),
        ("r_x", ctypes.c_int),
        ("in_h", ctypes.c_int),
        ("in_w", ctypes.c_int),
        ("channels", ctypes.c_int),
        ("out_half", ctypes.c_int),
        ("resized_h", ctypes.c_int),
        ("resized_w", ctypes.c_int),
        ("pad_y", ctypes.c_int),
        ("pad_x", ctypes.c_int),
        ("scale_x", ctypes.c_double),
        ("scale_y", ctypes.c_double),
        ("mean", ctypes.c_float * 3),
        ("inv_std", ctypes.c_float * 3),
    ]


def _opencv_scale(src: int, dst: int) -> float:
    """cv2.resize's source step: ``1 / (dsize / ssize)`` in double, exactly as OpenCV forms it."""
    return 1.0 / (dst / src)


def frame_layout(data: np.ndarray, pixel_format: str) -> tuple[int, int, int]:
    """(height, width, row pitch in bytes) of a camera buffer; raises on layouts DMA cannot take."""
    try:
        _, bpp, _ = FORMATS[pixel_format]
    except KeyError:
        raise ValueError(
            f"unsupported pixel format {pixel_format!r}; supported: {', '.join(FORMATS)}"
        ) from None
    if data.dtype != np.uint8:
        raise ValueError(f"{pixel_format}: expected a uint8 buffer, got {data.dtype}")
    if bpp == 1 and data.ndim == 3 and data.shape[2] == 1:
        data = data[:, :, 0]
    ok = data.ndim == 2 if bpp == 1 else (data.ndim == 3 and data.shape[2] == bpp)
    if not ok:
        want = "(H, W)" if bpp == 1 else f"(H, W, {bpp})"
        raise ValueError(f"{pixel_format}: expected shape {want}, got {data.shape}")
    h, w = data.shape[:2]
    pixel_stride = data.strides[1]
    inner_ok = bpp == 1 or data.strides[2] == 1
    if pixel_stride != bpp or not inner_ok or data.strides[0] < w * bpp:
        raise ValueError(
            f"{pixel_format}: rows must be packed pixels with positive row pitch, strides {data.strides}"
        )
    return h, w, int(data.strides[0])


class GpuPreprocessor:
    """Uploads frames and runs the letterbox kernel into a caller-owned device tensor."""

    def __init__(
        self,
        device: Device,
        stream: Stream,
        pool: BufferPool,
        registry: HostRegistry,
        *,
        channels: int = 3,
        normalize: str = "unit",
        half: bool = False,
    ) -> None:
        if channels not in (1, 3):
            raise ValueError(f"model channels must be 1 or 3, got {channels}")
        self.device, self.stream, self.pool, self.registry = device, stream, pool, registry
        self.channels, self.half = channels, half
        self.counters = CopyCounters()
        # registered camera buffers seen before → (h, w, pitch, span, image stride): the checks
        # run once per buffer, not per frame (a paced line's thread wakes cold: each µs counts)
        self._known: dict[tuple[int, tuple[int, ...], tuple[int, ...], str], tuple[int, int, int, int, int]] = {}
        self._known_epoch = registry.epoch
        kernels = Kernels.get(KERNEL_SOURCE, ["letterbox_normalize"], device)
        self._function = kernels.functions["letterbox_normalize"]
        self._params = _Params()
        if normalize == "imagenet":
            means, stds = (
                ((_GRAY_MEAN,) * 3, (_GRAY_STD,) * 3) if channels == 1 else (_IMAGENET_MEAN, _IMAGENET_STD)
            )
        else:
            means, stds = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
        for c in range(3):
            self._params.mean[c] = np.float32(means[c])
            self._params.inv_std[c] = np.float32(1.0 / stds[c])
        # cuLaunchKernel's void**: src and dst pointers, then the struct (passed by value).
        self._argv = (ctypes.c_void_p * 3)()
        self._src = ctypes.c_void_p()
        self._dst = ctypes.c_void_p()
        self._argv[0] = ctypes.addressof(self._src)
        self._argv[1] = ctypes.addressof(self._dst)
        self._argv[2] = ctypes.addressof(self._params)

    def output_nbytes(self, geometry: LetterboxGeometry, batch: int) -> int:
        return batch * self.channels * geometry.input_h * geometry.input_w * (2 if self.half else 4)

    def upload(self, images: Sequence[np.ndarray], pixel_format: str) -> tuple[int, int, int, int]:
        """Stage a batch of same-shape frames on the device; returns (ptr, h, w, pitch).

        Registered (or registrable) buffers go by DMA straight from the camera's memory;
        anything else is copied once into pinned memory first and counted as a host copy.
        """
        key = None
        if len(images) == 1:
            image = images[0]
            key = (int(image.ctypes.data), image.shape, image.strides, pixel_format)
            if self._known_epoch != self.registry.epoch or len(self._known) > 1024:
                self._known.clear()
                self._known_epoch = self.registry.epoch
            known = self._known.get(key)
            if known is not None:
                h, w, pitch, span, image_stride = known
                staging = self.pool.device(f"frames:{pixel_format}", image_stride)
                self.counters.dma_uploads += 1
                _memcpy_htod(staging.ptr, key[0], span, self.stream)
                return staging.ptr, h, w, pitch
        h, w, pitch = frame_layout(images[0], pixel_format)
        span = (h - 1) * pitch + w * FORMATS[pixel_format][1]
        image_stride = -(-span // 256) * 256
        staging = self.pool.device(f"frames:{pixel_format}", image_stride * len(images))
        for i, image in enumerate(images):
            if i and frame_layout(image, pixel_format) != (h, w, pitch):
                raise ValueError("a batch must hold frames of one shape and layout")
            dst = staging.ptr + i * image_stride
            if self.registry.ensure(image):
                src_ptr = int(image.ctypes.data)
                self.counters.dma_uploads += 1
                if key is not None:
                    self._known[key] = (h, w, pitch, span, image_stride)
            else:
                pinned = self.pool.pinned(f"stage:{i}", span)
                self.stream.synchronize()  # the previous frame's DMA may still read this buffer
                flat = np.lib.stride_tricks.as_strided(image, shape=(span,), strides=(1,))
                np.copyto(pinned.array[:span], flat)
                src_ptr = pinned.ptr
                self.counters.host_copies += 1
            _memcpy_htod(dst, src_ptr, span, self.stream)
        return staging.ptr, h, w, pitch

    def run(
        self,
        images: Sequence[np.ndarray],
        pixel_format: str,
        geometry: LetterboxGeometry,
        dst_ptr: int,
    ) -> None:
        """Upload ``images`` and write the (len(images), C, H, W) tensor at ``dst_ptr`` (async)."""
        src_ptr, h, w, pitch = self.upload(images, pixel_format)
        self.launch_kernel(src_ptr, (h, w, pitch), len(images), pixel_format, geometry, dst_ptr)

    def launch_kernel(
        self,
        src_ptr: int,
        layout: tuple[int, int, int],
        batch: int,
        pixel_format: str,
        geometry: LetterboxGeometry,
        dst_ptr: int,
    ) -> None:
        """The kernel alone, on frames already staged by :meth:`upload` (``layout`` is its
        (h, w, pitch)): a whole-graph capture records this and replays it per frame."""
        h, w, pitch = layout
        if (h, w) != (geometry.frame_h, geometry.frame_w):
            raise ValueError(f"frames are {h}x{w}, geometry expects {geometry.frame_h}x{geometry.frame_w}")
        fmt, bpp, (r_y, r_x) = FORMATS[pixel_format]
        if fmt == 4 and (h < 3 or w < 3):
            raise ValueError(f"{pixel_format}: Bayer frames need at least 3x3 pixels, got {h}x{w}")
        span = (h - 1) * pitch + w * bpp
        p = self._params
        p.src_h, p.src_w, p.src_pitch, p.src_image_stride = h, w, pitch, -(-span // 256) * 256
        p.fmt, p.r_y, p.r_x = fmt, r_y, r_x
        p.in_h, p.in_w, p.channels, p.out_half = (
            geometry.input_h,
            geometry.input_w,
            self.channels,
            int(self.half),
        )
        p.resized_h, p.resized_w, p.pad_y, p.pad_x = (
            geometry.resized_h,
            geometry.resized_w,
            geometry.pad_y,
            geometry.pad_x,
        )
        p.scale_x = _opencv_scale(w, geometry.resized_w)
        p.scale_y = _opencv_scale(h, geometry.resized_h)
        self._src.value, self._dst.value = src_ptr, dst_ptr
        block = (32, 8, 1)
        grid = (-(-geometry.input_w // 32), -(-geometry.input_h // 8), batch)
        launch(self._function, grid, block, ctypes.addressof(self._argv), self.stream)


def _memcpy_htod(dst: int, src: int, nbytes: int, stream: Stream) -> None:
    if not cuda_enqueue.memcpy_htod(dst, src, nbytes, stream.handle):
        check(driver.cuMemcpyHtoDAsync(dst, src, nbytes, stream.handle), "cuMemcpyHtoDAsync")


__all__ = ["FORMATS", "GpuError", "GpuPreprocessor", "frame_layout"]
