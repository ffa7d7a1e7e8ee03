"""Zero host copies of pixel data per frame: camera pool registered, DMA'd, converted on GPU.

The host conversion path (``pixels.prepare``, ``cv2.cvtColor``/``resize``, ``to_tensor``) is
replaced by a function that fails the test, and the copy counters must show only DMA
uploads. The buffer pool must not allocate after warm-up.
"""

from __future__ import annotations

import numpy as np
import pytest

from inference.config import InputProfile
from inference.gpu.preprocess import GpuPreprocessor
from inference.letterbox import compute_geometry

pytestmark = pytest.mark.gpu


def _forbidden(*args, **kwargs):
    raise AssertionError("host pixel conversion called on the GPU path")


def test_registered_pool_is_dmad_without_host_copies(cuda, monkeypatch) -> None:
    import cv2

    import inference.letterbox as letterbox
    import inference.pixels as pixels

    for mod, name in (
        (pixels, "prepare"),
        (pixels, "to_model_colour"),
        (letterbox, "to_tensor"),
        (cv2, "cvtColor"),
        (cv2, "resize"),
    ):
        monkeypatch.setattr(mod, name, _forbidden)
    device, stream, pool, registry = cuda
    camera_pool = [np.zeros((1024, 1280), np.uint8) for _ in range(4)]  # like a GenTL buffer pool
    registry.register(camera_pool)
    pre = GpuPreprocessor(device, stream, pool, registry, channels=3, half=True)
    geometry = compute_geometry(1024, 1280, InputProfile(min=(320, 320), opt=(512, 640), max=(512, 640)))
    out = pool.device("zc-out", pre.output_nbytes(geometry, 1))
    rng = np.random.default_rng()
    for i in range(3):  # warm-up
        pre.run([camera_pool[i % 4]], "BayerRG8", geometry, out.ptr)
    stream.synchronize()
    allocations = pool.allocations
    registered = registry.registered
    for i in range(40):
        buf = camera_pool[i % 4]
        buf[::97, ::89] = rng.integers(0, 256, buf[::97, ::89].shape, dtype=np.uint8)  # "camera writes"
        pre.run([buf[:, :]], "BayerRG8", geometry, out.ptr)  # a view, as Frame hands out
        stream.synchronize()  # the buffer goes back to the camera only after the DMA
    assert pre.counters.host_copies == 0
    assert pre.counters.dma_uploads == 43
    assert pool.allocations == allocations, "device/pinned buffers allocated per frame"
    assert registry.registered == registered, "pool buffers re-registered per frame"


def test_unregistrable_memory_falls_back_to_a_counted_copy(cuda) -> None:
    device, stream, pool, registry = cuda
    pre = GpuPreprocessor(device, stream, pool, registry, channels=3)
    registry.enabled = False  # as for memory cudaHostRegister refuses: staged and counted
    try:
        geometry = compute_geometry(64, 64, InputProfile(min=(32, 32), opt=(64, 64), max=(64, 64)))
        out = pool.device("zc-out2", pre.output_nbytes(geometry, 1))
        frame = np.ones((64, 64, 3), np.uint8)
        pre.run([frame], "RGB8", geometry, out.ptr)
        stream.synchronize()
        assert (pre.counters.host_copies, pre.counters.dma_uploads) == (1, 0)
    finally:
        registry.enabled = True


def test_eight_camera_pools_stay_registered(cuda) -> None:
    """8 cameras x 16 buffers cycle through the registry without re-registration (an LRU bound
    below the buffers in flight registered and unregistered on every frame: 114 fps at 8 cams)."""
    from inference.gpu.host_register import HostRegistry

    registry = HostRegistry()
    buffers = [np.zeros((64, 64), np.uint8) for _ in range(8 * 16)]
    try:
        for _ in range(3):
            for b in buffers:
                registry.ensure(b)
        assert registry.registered == len(buffers)  # each once, on its second sight
        assert all(registry.ensure(b) for b in buffers)
        assert registry.registered == len(buffers)
    finally:
        registry.close()


def test_engines_on_one_device_share_the_registry(cuda) -> None:
    from inference.gpu.host_register import HostRegistry

    a = HostRegistry.shared(0)
    b = HostRegistry.shared(0)
    try:
        assert a is b
        frame = np.zeros((64, 64), np.uint8)
        assert a.ensure(frame, eager=True)
        assert b.ensure(frame)  # no second cudaHostRegister of the same memory
        assert a.registered == 1
    finally:
        HostRegistry.release_shared(0)
        assert HostRegistry.shared(0) is a  # one user left: the registry lives on
        HostRegistry.release_shared(0)
        HostRegistry.release_shared(0)
    assert HostRegistry.shared(0) is not a  # the last user gone: a fresh one
    HostRegistry.release_shared(0)
