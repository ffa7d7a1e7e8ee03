"""GPU prefilter + host decode equals the CPU decoder on the same engine outputs."""

from __future__ import annotations

import numpy as np
import pytest

from inference.decode import decode
from inference.gpu.decode import GpuDecoder

pytestmark = pytest.mark.gpu


def _equal(a, b) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.xyxy, y.xyxy)
        np.testing.assert_array_equal(x.scores, y.scores)
        np.testing.assert_array_equal(x.class_id, y.class_id)


def _output(rng, layout: str, batch: int, classes: int, n: int) -> np.ndarray:
    if layout == "yolov8":
        out = rng.random((batch, 4 + classes, n), dtype=np.float32)
        out[:, :4] *= 640
        out[:, 4:] **= 12  # mostly low scores, a few hundred above 0.3
        return out
    out = rng.random((batch, n, 5 + classes), dtype=np.float32)
    out[..., :4] *= 640
    out[..., 4:] **= 6
    return out


@pytest.mark.parametrize("layout", ["yolov8", "yolov5"])
@pytest.mark.parametrize("half", [False, True])
def test_same_candidates_as_cpu(cuda, layout, half) -> None:
    device, stream, pool, _ = cuda
    rng = np.random.default_rng()
    thresholds = np.array([0.3, 0.5, 0.25, 0.9], np.float32)
    for batch, n in ((1, 8400), (3, 6720), (2, 7)):
        out = _output(rng, layout, batch, len(thresholds), n)
        if half:
            out = out.astype(np.float16)
        dev = pool.device("test-decode-in", out.nbytes)
        dev.upload(np.ascontiguousarray(out), stream)
        dec = GpuDecoder(device, stream, pool, layout, thresholds)
        got = dec.decode(dev.ptr, out.shape, half)
        _equal(got, decode(layout, out.astype(np.float32), thresholds))
        assert sum(len(c.scores) for c in got) > 0 or n < 10


def test_end2end_passthrough(cuda) -> None:
    device, stream, pool, _ = cuda
    rng = np.random.default_rng()
    out = rng.random((2, 100, 6), dtype=np.float32)
    out[..., 5] = rng.integers(-1, 5, (2, 100))
    thresholds = np.array([0.2, 0.4, 0.6], np.float32)
    dev = pool.device("test-decode-e2e", out.nbytes)
    dev.upload(out, stream)
    got = GpuDecoder(device, stream, pool, "end2end", thresholds).decode(dev.ptr, out.shape, False)
    _equal(got, decode("end2end", out, thresholds))


def test_no_candidates(cuda) -> None:
    device, stream, pool, _ = cuda
    out = np.zeros((1, 6, 100), np.float32)
    dev = pool.device("test-decode-zero", out.nbytes)
    dev.upload(out, stream)
    got = GpuDecoder(device, stream, pool, "yolov8", np.array([0.5, 0.5], np.float32)).decode(
        dev.ptr, out.shape, False
    )
    assert len(got) == 1 and len(got[0].scores) == 0


def test_counts_either_side_of_the_prefetch(cuda) -> None:
    """Images with none, a few and more candidates than the rows fetched with the counts."""
    from inference.gpu.decode import PREFETCH_ROWS

    device, stream, pool, _ = cuda
    rng = np.random.default_rng(3)
    thresholds = np.array([0.5, 0.5], np.float32)
    out = rng.random((3, 6, 6720), dtype=np.float32) * np.float32(0.4)  # all below 0.5
    out[:, :4] *= 1600
    out[1, 4, rng.choice(6720, 40, replace=False)] = 0.9
    out[2, 5, rng.choice(6720, PREFETCH_ROWS + 300, replace=False)] = 0.8
    dev = pool.device("test-decode-prefetch", out.nbytes)
    dev.upload(out, stream)
    got = GpuDecoder(device, stream, pool, "yolov8", thresholds).decode(dev.ptr, out.shape, False)
    assert [len(c.scores) for c in got] == [0, 40, PREFETCH_ROWS + 300]
    _equal(got, decode("yolov8", out, thresholds))
