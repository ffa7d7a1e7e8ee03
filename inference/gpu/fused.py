"""One CUDA graph per frame layout: letterbox kernel → network → decode prefilter → candidate
copies back to pinned memory.

Why: on one camera the network is ~1 ms of device time, and the step-by-step path adds host
enqueues between the steps (the preprocess kernel, ORT's ``run_with_iobinding``, the decode
kernel and its copies): the GPU waits on Python between them. Captured once as one graph, the
device runs the steps back to back after a single launch. Only the frame upload stays outside
the graph: its source (the camera buffer) changes from frame to frame, its destination (the
staging buffer) does not.

The network must be enqueued capture-safely by the backend (``GpuPipelineEngine.
_capture_network``: for ONNX Runtime a plain session with the dims pinned, run on our stream;
ORT's own ``enable_cuda_graph`` cannot be nested in another capture). A backend or model that
cannot be captured keeps the step-by-step path: the graph is an optimisation, never required.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from inference.gpu.cuda import CudaGraph, Event, Stream
from inference.gpu.decode import DecodePlan, GpuDecoder
from inference.gpu.preprocess import GpuPreprocessor
from inference.letterbox import LetterboxGeometry

# (images, batch, frame h, frame w, row pitch, pixel format): what fixes the captured kernels
FusedKey = tuple[int, int, int, int, int, str]


@dataclass(frozen=True)
class CapturableNetwork:
    """The backend's network, ready to be recorded into a graph on the engine's stream."""

    enqueue: Callable[[], None]
    output_ptr: int
    output_shape: tuple[int, int, int]
    half: bool


@dataclass
class FusedGraph:
    graph: CudaGraph
    plan: DecodePlan
    geometry: LetterboxGeometry
    epoch: int  # the buffer pool's allocation count at capture: a regrown buffer invalidates
    timed: bool  # stage events e1, e2, e3 recorded inside the graph (per-stage device timings)

    def close(self) -> None:
        self.graph.close()


def capture(
    key: FusedKey,
    staging_ptr: int,
    input_ptr: int,
    geometry: LetterboxGeometry,
    network: CapturableNetwork,
    preprocessor: GpuPreprocessor,
    decoder: GpuDecoder,
    stream: Stream,
    stage_events: tuple[Event, Event, Event],
) -> FusedGraph:
    """Record kernel, network and decode as one graph (nothing runs while capturing).

    First with the stage events inside the graph (external event nodes, so the per-stage
    timings survive); where the driver refuses those, without them. Raises what the capture
    raised when neither works.
    """
    n, _, h, w, pitch, pixel_format = key
    error: Exception | None = None
    stream.synchronize()
    for timed in (True, False):
        graph = CudaGraph(stream)
        try:
            graph.begin()
            try:
                preprocessor.launch_kernel(staging_ptr, (h, w, pitch), n, pixel_format, geometry, input_ptr)
                if timed:
                    stage_events[0].record_in_capture(stream)
                network.enqueue()
                if timed:
                    stage_events[1].record_in_capture(stream)
                plan = decoder.enqueue(network.output_ptr, network.output_shape, network.half)
                if timed:  # the end stamp too: one host call less per frame
                    stage_events[2].record_in_capture(stream)
            except BaseException:
                graph.abort()
                raise
            graph.end()
        except Exception as exc:  # noqa: BLE001 - retried without events, then raised
            graph.close()
            error = exc
            continue
        return FusedGraph(graph, plan, geometry, 0, timed)
    assert error is not None  # noqa: S101
    raise error
