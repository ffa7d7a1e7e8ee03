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
from pathlib import Path

import numpy as np

from inference.decode import Candidates, decode, decode_yolov5, decode_yolov8
from inference.gpu import BufferPool, Device, KernelArgs, Kernels, Stream, check, driver, launch, runtime

KERNEL_SOURCE = (Path(__file__).parent / "kernels" / "decode.cu").read_text()
_KERNELS = {"yolov8": "filter_yolov8", "yolov5": "filter_yolov5"}
PREFETCH_ROWS = 256  # candidates per image fetched with the counts (86 KB at 84 columns)


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
        batch, a, b = shape
        if self.layout == "end2end":
            return self._decode_whole(output_ptr, shape, half)
        num_classes = len(self.thresholds)
        if self.layout == "yolov8":
            width, count = a, b
        else:
            count, width = a, b
        expect = 4 + num_classes if self.layout == "yolov8" else 5 + num_classes
        if width != expect:
            raise ValueError(f"{self.layout} output {list(shape)} does not fit {num_classes} classes")
        counts = self.pool.device("decode:counts", 4 * batch)
        indices = self.pool.device("decode:indices", 4 * batch * count)
        rows = self.pool.device("decode:rows", 4 * batch * count * width)
        check(runtime.cudaMemsetAsync(counts.ptr, 0, 4 * batch, self.stream.raw), "cudaMemsetAsync")
        self._args.set(
            output_ptr, int(half), batch, num_classes, count, self._min_thr, counts.ptr, indices.ptr, rows.ptr
        )
        launch(self._function, (-(-count // 256), batch, 1), (256, 1, 1), self._args, self.stream)
        host_counts = self.pool.pinned("decode:counts", 4 * batch).view(np.int32, (batch,))
        host_idx = self.pool.pinned("decode:indices", 4 * batch * count)
        host_rows = self.pool.pinned("decode:rows", 4 * batch * count * width)
        # One round trip in the common case: the counts and the first ``cap`` rows of every
        # image come back together (one 2-D copy each), before we know how many there are;
        # only an image with more candidates than that costs a second copy and sync.
        cap = min(count, PREFETCH_ROWS)
        counts.download(host_counts, self.stream)
        _dtoh_2d(host_idx.ptr, indices.ptr, 4 * count, 4 * cap, batch, self.stream)
        _dtoh_2d(host_rows.ptr, rows.ptr, 4 * count * width, 4 * cap * width, batch, self.stream)
        self.stream.synchronize()
        ks = [int(k) for k in host_counts]
        if max(ks) > cap:
            for i, k in enumerate(ks):
                if k > cap:
                    rest = k - cap
                    _dtoh(
                        host_idx.ptr + 4 * (i * count + cap),
                        indices.ptr + 4 * (i * count + cap),
                        4 * rest,
                        self.stream,
                    )
                    _dtoh(
                        host_rows.ptr + 4 * (i * count + cap) * width,
                        rows.ptr + 4 * (i * count + cap) * width,
                        4 * rest * width,
                        self.stream,
                    )
            self.stream.synchronize()
        all_idx = host_idx.view(np.int32, (batch, count))
        all_rows = host_rows.view(np.float32, (batch, count, width))
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
    kind = runtime.cudaMemcpyKind.cudaMemcpyDeviceToHost
    check(
        runtime.cudaMemcpy2DAsync(dst, pitch, src, pitch, width_bytes, height, kind, stream.raw),
        "cudaMemcpy2DAsync",
    )


def _dtoh(dst: int, src: int, nbytes: int, stream: Stream) -> None:
    check(driver.cuMemcpyDtoHAsync(dst, src, nbytes, stream.handle), "cuMemcpyDtoHAsync")
