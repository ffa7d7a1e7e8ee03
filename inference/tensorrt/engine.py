"""TensorRT runtime (``backend=tensorrt, device=cuda``): TensorRT 10+ or TensorRT-RTX.

Written to the TensorRT 10 Python API: ``Runtime.deserialize_cuda_engine`` →
``ICudaEngine.create_execution_context`` (one context for our one stream) → per batch
``set_input_shape`` (only when the shape changes), ``set_tensor_address`` on our device
buffers (input written by the preprocess kernel, output read by the decode kernel) and
``execute_async_v3(stream)``. After one plain run per input shape (TensorRT allocates and
tunes lazily on a new shape) the enqueue is captured into a CUDA graph and replayed.

The plan comes from ``tensorrt_build.get_or_build`` (cache keyed by ONNX, precision,
profile, GPU and TensorRT version); a plan that fails to deserialize is rebuilt once.

Not executed on the H100 or H200 test machines: TensorRT-RTX's runtime refuses compute
capability 9.0, and full TensorRT is not installed on that host. The shared pipeline (preprocess, decode, NMS)
is the one the ONNX Runtime CUDA engine runs there.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from inference.config import EngineOptions
from inference.engine import DetectorSpec, EngineLoadError
from inference.gpu.cuda import CudaGraph
from inference.gpu.pipeline import GpuPipelineEngine
from inference.tensorrt.build import BuildOptions, get_or_build, import_tensorrt, plan_problems


class TensorRTEngine(GpuPipelineEngine):
    backend = "tensorrt"

    def __init__(self, spec: DetectorSpec, options: EngineOptions) -> None:
        self._trt = import_tensorrt()
        super().__init__(spec, options)
        try:
            build_options = BuildOptions(cache_dir=options.engine_cache_dir, max_batch=options.max_batch)
            self.build, plan = get_or_build(spec.model, build_options, self._trt)
            problems = plan_problems(self._trt, plan)
            if "UNSUPPORTED_CC" in problems or "OLD_CUDA_DRIVER" in problems:
                raise EngineLoadError(
                    f"{spec.model.onnx}: {self._trt.__name__} cannot run on {self.device.name} "
                    f"(compute capability {self.device.compute_capability}): {', '.join(problems)}"
                )
            self._logger = self._trt.Logger(self._trt.Logger.WARNING)
            self._runtime = self._trt.Runtime(self._logger)
            engine = self._runtime.deserialize_cuda_engine(plan)
            if engine is None:  # stale/incompatible plan that passed the checksum: rebuild once
                build_options = BuildOptions(
                    cache_dir=options.engine_cache_dir, max_batch=options.max_batch, force=True
                )
                self.build, plan = get_or_build(spec.model, build_options, self._trt)
                engine = self._runtime.deserialize_cuda_engine(plan)
            if engine is None:
                raise EngineLoadError(
                    f"{spec.model.onnx}: TensorRT could not deserialize a freshly built engine"
                )
            self._engine = engine
            self._context = engine.create_execution_context()
            if self._context is None:
                raise EngineLoadError(f"{spec.model.onnx}: could not create a TensorRT execution context")
            inputs: list[str] = []
            outputs: list[str] = []
            for i in range(engine.num_io_tensors):
                name = engine.get_tensor_name(i)
                is_input = engine.get_tensor_mode(name) == self._trt.TensorIOMode.INPUT
                (inputs if is_input else outputs).append(name)
            if len(inputs) != 1 or not outputs:
                raise EngineLoadError(
                    f"{spec.model.onnx}: need 1 input and >= 1 output, got {inputs} / {outputs}"
                )
            self._input, self._output = inputs[0], outputs[0]
            self._half_input = engine.get_tensor_dtype(self._input) == self._trt.DataType.HALF
            self._half_output = engine.get_tensor_dtype(self._output) == self._trt.DataType.HALF
            self._profile = spec.model.input
            self._shape: tuple[int, ...] | None = None
            self._outputs: dict[tuple[int, int, int], tuple[int, tuple[int, int, int]]] = {}
            self._runs: dict[tuple[int, int, int], int] = {}
            self._graphs: dict[tuple[int, int, int], CudaGraph] = {}
            self._graph_inputs: dict[tuple[int, int, int], int] = {}
            self._addresses: tuple[int, int] = (0, 0)
            self._setup()
        except BaseException:
            GpuPipelineEngine.close(self)  # stream, buffers: nothing leaks on a failed load
            raise

    def _enqueue(self) -> None:
        if not self._context.execute_async_v3(self.stream.handle):
            raise EngineLoadError("TensorRT execute_async_v3 failed (see the TensorRT log)")

    def _run(
        self, input_ptr: int, batch: int, height: int, width: int
    ) -> tuple[int, tuple[int, int, int], bool]:
        key = (batch, height, width)
        graph = self._graphs.get(key)
        if graph is not None and self._graph_inputs.get(key) == input_ptr:
            graph.replay()  # shape and addresses are baked into the graph
            out_ptr, out_shape = self._outputs[key]
            return out_ptr, out_shape, self._half_output
        shape = (batch, self.spec.model.channels, height, width)
        if self._shape != shape:
            if not self._context.set_input_shape(self._input, shape):
                raise EngineLoadError(f"input shape {shape} is outside the engine's optimization profile")
            self._shape = shape
        if key not in self._outputs:
            dims = tuple(int(d) for d in self._context.get_tensor_shape(self._output))
            if len(dims) != 3 or min(dims) < 0:
                raise EngineLoadError(
                    f"output {self._output} has shape {dims}, need a static [B, a, b] per input shape"
                )
            itemsize = 2 if self._half_output else 4
            buf = self.pool.device(f"trt-output:{key}", int(np.prod(dims)) * itemsize)
            self._outputs[key] = (buf.ptr, (dims[0], dims[1], dims[2]))
        out_ptr, out_shape = self._outputs[key]
        if self._addresses != (input_ptr, out_ptr):
            self._context.set_tensor_address(self._input, input_ptr)
            self._context.set_tensor_address(self._output, out_ptr)
            self._addresses = (input_ptr, out_ptr)
        if self.options.cuda_graphs and self._runs.get(key, 0) >= 1 and self._capturable():
            if graph is not None:
                graph.close()
            graph = CudaGraph(self.stream)
            graph.begin()
            try:
                self._enqueue()
            finally:
                graph.end()
            self._graphs[key] = graph
            self._graph_inputs[key] = input_ptr
            graph.replay()
        else:
            self._enqueue()
        self._runs[key] = self._runs.get(key, 0) + 1
        return out_ptr, out_shape, self._half_output

    def _capturable(self) -> bool:
        check_fn: Any = getattr(self._context, "is_stream_capturable", None)
        return bool(check_fn(self.stream.handle)) if check_fn is not None else True

    def close(self) -> None:
        for g in self._graphs.values():
            g.close()
        self._graphs.clear()
        self._context = None
        self._engine = None
        super().close()


__all__ = ["EngineOptions", "TensorRTEngine"]
