"""Decode on the GPU: confidence prefilter and compaction, so few bytes cross PCIe.

A YOLOv8 output at 640x640 is [1, 84, 8400] float32 (2.8 MB); typically a few dozen
candidates clear the lowest class threshold. ``kernels/decode.cu`` keeps those rows (box +
all class scores) with their candidate index; the host sorts them by index and hands them to
``inference.decode`` — the very CPU decoder — so labels and scores are identical to the CPU
path's and NMS (``inference.nms``, on the host) sees the same candidates in the same order.
``end2end`` outputs are already tiny ([B, K, 6]) and are copied back whole.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inference.decode import Candidates, decode, decode_yolov5, decode_yolov8
from inference.gpu import enqueue as cuda_enqueue
from inference.gpu.cuda import BufferPool, Device, PinnedBuffer, Stream, check, driver, runtime
from inference.gpu.kernels import KernelArgs, Kernels, launch

KERNEL_SOURCE = (Path(__file__).parent / "cu" / "decode.cu").read_text()
_KERNELS = {"yolov8": "filter_yolov8", "yolov5": "filter_yolov5"}
PREFETCH_ROWS = 256  # candidates per image fetched with the counts (86 KB at 84 columns)


@dataclass(frozen=True)
class DecodePlan:
    """What :meth:`GpuDecoder.enqueue` set in motion and :meth:`GpuDecoder.collect` reads."""

    batch: int
    count: int
    width: int
    cap: int
    counts_ptr: int
    indices_ptr: int
    rows_ptr: int
    host_counts: np.ndarray
    host_idx: PinnedBuffer
    host_rows: PinnedBuffer
    idx_view: np.ndarray  # (batch, count) int32 over host_idx: made once, a graph's plan is reused
    rows_view: np.ndarray  # (batch, count, width) float32 over host_rows


class GpuDecoder:
    """Prefilter on the device, exact decode of the survivors on the host."""

    def __init__(
        self, device: Device, stream: Stream, pool: BufferPool, layout: str, thresholds: np.ndarray
    ) -> None:
        if layout not in ("yolov5", "yolov8", "end2end"):
            raise ValueError(f"unknown layout {layout!r}")
        self.layout = layout
        self.stream, self.pool = stream, pool
        self.thresholds = np.asarray(thresholds, np.float32).reshape(-1)
        # A hair under the lowest threshold: the prefilter must keep a superset; the host
        # decoder applies the exact per-class test afterwards.
        self._min_thr = float(np.nextafter(self.thresholds.min(), np.float32(-np.inf)))
        self._function = None
        if layout in _KERNELS:
            kernels = Kernels.get(KERNEL_SOURCE, list(_KERNELS.values()), device)
            self._function = kernels.functions[_KERNELS[layout]]
        types = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_float]
        self._args = KernelArgs(types + [ctypes.c_void_p] * 3)
        self.candidates_copied = 0  # rows that crossed to the host (for the report)

    def decode(self, output_ptr: int, shape: tuple[int, int, int], half: bool) -> list[Candidates]:
        """Decode a device output of ``shape`` ([B, a, b], fp16 if ``half``); synchronizes."""
        if self.layout == "end2end":
            return self._decode_whole(output_ptr, shape, half)
        return self.collect(self.enqueue(output_ptr, shape, half))

    def enqueue(self, output_ptr: int, shape: tuple[int, int, int], half: bool) -> DecodePlan:
        """The device half, stream-ordered and without a host wait (so it can be captured in a
        CUDA graph): prefilter kernel, then the counts and the first ``cap`` rows per image
        come back together, before we know how many there are."""
        batch, a, b = shape
        num_classes = len(self.thresholds)
        if self.layout == "yolov8":
            width, count = a, b
        else:
            count, width = a, b
        expect = 4 + num_classes if self.layout == "yolov8" else 5 + num_classes
        if self.layout == "end2end" or width != expect:
            raise ValueError(f"{self.layout} output {list(shape)} does not fit {num_classes} classes")
        counts = self.pool.device("decode:counts", 4 * batch)
        indices = self.pool.device("decode:indices", 4 * batch * count)
        rows = self.pool.device("decode:rows", 4 * batch * count * width)
        if not cuda_enqueue.memset_d8(counts.ptr, 0, 4 * batch, self.stream.handle):
            check(runtime.cudaMemsetAsync(counts.ptr, 0, 4 * batch, self.stream.raw), "cudaMemsetAsync")
        self._args.set(
            output_ptr, int(half), batch, num_classes, count, self._min_thr, counts.ptr, indices.ptr, rows.ptr
        )
        launch(self._function, (-(-count // 256), batch, 1), (256, 1, 1), self._args, self.stream)
        host_idx = self.pool.pinned("decode:indices", 4 * batch * count)
        host_rows = self.pool.pinned("decode:rows", 4 * batch * count * width)
        plan = DecodePlan(
            batch, count, width, min(count, PREFETCH_ROWS), counts.ptr, indices.ptr, rows.ptr,
            self.pool.pinned("decode:counts", 4 * batch).view(np.int32, (batch,)), host_idx, host_rows,
            host_idx.view(np.int32, (batch, count)), host_rows.view(np.float32, (batch, count, width)),
        )  # fmt: skip
        fetched = cuda_enqueue.memcpy_dtoh(
            plan.host_counts.ctypes.data, counts.ptr, 4 * batch, self.stream.handle
        )
        if not fetched:
            counts.download(plan.host_counts, self.stream)
        _dtoh_2d(plan.host_idx.ptr, indices.ptr, 4 * count, 4 * plan.cap, batch, self.stream)
        _dtoh_2d(plan.host_rows.ptr, rows.ptr, 4 * count * width, 4 * plan.cap * width, batch, self.stream)
        return plan

    def collect(self, plan: DecodePlan, synchronized: bool = False) -> list[Candidates]:
        """The host half: wait (unless the caller did), fetch overflow rows, exact decode."""
        if not synchronized:
            self.stream.synchronize()
        if not plan.host_counts.any():  # the common case on a line: nothing near a threshold
            return [Candidates.empty()] * plan.batch
        count, width, cap = plan.count, plan.width, plan.cap
        ks: list[int] = plan.host_counts.tolist()
        if max(ks) > cap:  # only an image with more candidates than the prefetch: a second copy
            for i, k in enumerate(ks):
                if k > cap:
                    rest = k - cap
                    _dtoh(
                        plan.host_idx.ptr + 4 * (i * count + cap),
                        plan.indices_ptr + 4 * (i * count + cap),
                        4 * rest,
                        self.stream,
                    )
                    _dtoh(
                        plan.host_rows.ptr + 4 * (i * count + cap) * width,
                        plan.rows_ptr + 4 * (i * count + cap) * width,
                        4 * rest * width,
                        self.stream,
                    )
            self.stream.synchronize()
        all_idx, all_rows = plan.idx_view, plan.rows_view
        results = []
        for i, k in enumerate(ks):
            self.candidates_copied += k
            if k == 0:
                results.append(Candidates.empty())
                continue
            order = np.argsort(all_idx[i, :k], kind="stable")
            sel = all_rows[i, :k][order]
            if self.layout == "yolov8":
                results.extend(decode_yolov8(np.ascontiguousarray(sel.T)[None], self.thresholds))
            else:
                results.extend(decode_yolov5(sel[None], self.thresholds))
        return results

    def _decode_whole(self, output_ptr: int, shape: tuple[int, int, int], half: bool) -> list[Candidates]:
        dtype = np.float16 if half else np.float32
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        host = self.pool.pinned("decode:whole", nbytes).view(dtype, shape)
        _dtoh(host.ctypes.data, output_ptr, nbytes, self.stream)
        self.stream.synchronize()
        return decode("end2end", host.astype(np.float32), self.thresholds)


def _dtoh_2d(dst: int, src: int, pitch: int, width_bytes: int, height: int, stream: Stream) -> None:
    """``height`` rows of ``width_bytes`` each, ``pitch`` apart on both sides (per-image slices)."""
    if cuda_enqueue.available():  # row by row, holding the GIL: cheaper than one GIL round trip
        for row in range(height):
            cuda_enqueue.memcpy_dtoh(dst + row * pitch, src + row * pitch, width_bytes, stream.handle)
        return
    kind = runtime.cudaMemcpyKind.cudaMemcpyDeviceToHost
    check(
        runtime.cudaMemcpy2DAsync(dst, pitch, src, pitch, width_bytes, height, kind, stream.raw),
        "cudaMemcpy2DAsync",
    )


def _dtoh(dst: int, src: int, nbytes: int, stream: Stream) -> None:
    if cuda_enqueue.memcpy_dtoh(dst, src, nbytes, stream.handle):
        return
    check(driver.cuMemcpyDtoHAsync(dst, src, nbytes, stream.handle), "cuMemcpyDtoHAsync")
