"""ONNX Runtime on the GPU (``backend=onnxruntime, device=cuda``): CUDA (+TensorRT) provider.

Needs the ``onnxruntime-gpu`` wheel (not the CPU ``onnxruntime``). ORT runs on *our* stream
(CUDA provider option ``user_compute_stream``) and reads/writes *our* device buffers through
IOBinding, so the preprocess kernel, the network and the decode kernel are one ordered
stream with no host round trip in between. With ``EngineOptions.cuda_graphs`` each input
shape gets its own session with ``enable_cuda_graph`` and the symbolic dims pinned
(``add_free_dimension_override_by_name``), so shape arithmetic folds away and every node runs
on the CUDA EP, as ORT's graph capture requires; the plain session discovers each new shape's
output size first (the capture needs every address fixed from its first run).
``EngineOptions.fp16`` runs an fp16 copy of the model (``inference.precision``).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from inference.config import EngineOptions
from inference.engine import DetectorSpec, EngineLoadError
from inference.gpu.fused import CapturableNetwork
from inference.gpu.pipeline import GpuPipelineEngine
from inference.model_check import inspect_session, output_problems

_PRELOADED = False
log = logging.getLogger(__name__)


def _ort() -> Any:
    """onnxruntime, with CUDA/cuDNN from the nvidia-* wheels preloaded once where ORT can."""
    global _PRELOADED
    import onnxruntime as ort

    if not _PRELOADED and hasattr(ort, "preload_dlls"):
        _PRELOADED = True
        with contextlib.suppress(Exception):  # system libraries (LD_LIBRARY_PATH) may serve instead
            ort.preload_dlls()
    return ort


def tensorrt_provider_usable() -> bool:
    """The TensorRT EP is listed by every onnxruntime-gpu wheel; usable only with libnvinfer."""
    if "TensorrtExecutionProvider" not in _ort().get_available_providers():
        return False
    for name in ("libnvinfer.so.10", "libnvinfer.so"):
        try:
            ctypes.CDLL(name)
            return True
        except OSError:
            continue
    return False


class OnnxRuntimeCudaEngine(GpuPipelineEngine):
    backend = "onnxruntime-cuda"

    def __init__(
        self, spec: DetectorSpec, options: EngineOptions, *, use_tensorrt_provider: bool | None = None
    ) -> None:
        ort = _ort()
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise EngineLoadError(
                f"onnxruntime {ort.__version__} has no CUDAExecutionProvider (install onnxruntime-gpu, not onnxruntime)"
            )
        path = spec.model.onnx
        if not path.is_file():
            raise EngineLoadError(f"{path}: model file not found")
        super().__init__(spec, options)
        try:
            if options.fp16:
                from inference.precision import fp16_model_path

                path = fp16_model_path(path, options.engine_cache_dir)
            self.model_path = path
            # TensorRT EP where libnvinfer exists (None: auto); CUDA EP alone if it fails to load.
            usable = tensorrt_provider_usable()
            self.use_tensorrt_provider = (
                usable if use_tensorrt_provider is None else use_tensorrt_provider and usable
            )
            self.tensorrt_provider_error: str | None = None
            self.nhwc = options.cuda_nhwc
            self.nhwc_error: str | None = None
            try:
                self._plain = self._open_plain()
            except Exception as exc:
                raise EngineLoadError(
                    f"{path}: ONNX Runtime CUDA could not load the model: {_first_line(exc)}"
                ) from exc
            info, problems = inspect_session(self._plain, spec)
            if info is None or problems:
                raise EngineLoadError("; ".join(problems) or f"{path}: unusable model")
            self._info = info
            self._profile = info.profile(spec.model.input)
            self._static_batch = info.static_batch
            self._half_input = info.input_dtype is np.float16
            out_types = {o.name: o.type for o in self._plain.get_outputs()}
            self._half_output = out_types[info.output_name] == "tensor(float16)"
            self.cuda_graph_error: str | None = None
            self._graph_sessions: dict[tuple[int, int, int], Any] = {}  # per input shape; None: failed
            self._shapes: dict[tuple[int, int, int], tuple[int, int, int]] = {}  # input → output shape
            # whole-graph networks (session, binding, input ptr) per input shape; replaced ones are
            # kept until close: a graph captured earlier may replay their memory
            self._capture_sessions: dict[tuple[int, int, int], tuple[Any, Any, int]] = {}
            self._retired_sessions: list[tuple[Any, Any, int]] = []
            self._bindings: dict[
                tuple[int, int, int], tuple[Any, Any, int]
            ] = {}  # → (binding, run_options, out ptr)
            self._setup()
        except BaseException:
            GpuPipelineEngine.close(self)  # stream, buffers: nothing leaks on a failed load
            raise

    def _open_plain(self) -> Any:
        """The plain session; without the TensorRT EP if that fails to load, then without NHWC."""
        try:
            return self._session(graphs=False)
        except Exception as exc:
            if self.use_tensorrt_provider:
                self.tensorrt_provider_error = _first_line(exc)
                self.use_tensorrt_provider = False
                return self._open_plain()
            if not self.nhwc:
                raise
            # an ORT build without the NHWC kernels: the model still runs, in NCHW
            self.nhwc, self.nhwc_error = False, _first_line(exc)
            log.warning("%s: NHWC convolutions unavailable, running NCHW: %s", self.model_path, self.nhwc_error)
            return self._session(graphs=False)

    @property
    def cuda_graphs_active(self) -> bool:
        """True once a graph session serves a shape (and none failed)."""
        return any(s is not None for s in self._graph_sessions.values()) and self.cuda_graph_error is None

    def _graph_session(self, key: tuple[int, int, int]) -> Any:
        """A session fixed to one input shape, with ``enable_cuda_graph``.

        ORT captures one graph per session and needs every node on the CUDA EP. With dynamic
        H/W, shape arithmetic (anchor grids...) runs on the CPU EP; pinning the symbolic
        dims (``add_free_dimension_override_by_name``) lets ORT constant-fold it away.
        """
        if key in self._graph_sessions:
            return self._graph_sessions[key]
        try:
            session = self._session(graphs=True, dims=self._pinned_dims(key))
        except Exception as exc:  # noqa: BLE001 - graphs are an optimisation: run without
            self.cuda_graph_error = _first_line(exc)
            session = None
        self._graph_sessions[key] = session
        return session

    def _session(self, graphs: bool, dims: dict[str, int] | None = None) -> Any:
        ort = _ort()
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        for name, value in (dims or {}).items():
            so.add_free_dimension_override_by_name(name, value)
        cuda = {
            "device_id": str(self.options.device_id),
            "has_user_compute_stream": "1",
            "user_compute_stream": str(self.stream.handle),
            "cudnn_conv_algo_search": "EXHAUSTIVE",
            "do_copy_in_default_stream": "0",
            "enable_cuda_graph": "1" if graphs else "0",
            "prefer_nhwc": "1" if self.nhwc else "0",
            **self.options.cuda_provider_options,
        }
        providers: list[Any] = [("CUDAExecutionProvider", cuda)]
        if self.use_tensorrt_provider:
            trt = {
                "device_id": str(self.options.device_id),
                "has_user_compute_stream": "1",
                "user_compute_stream": str(self.stream.handle),
                "trt_fp16_enable": "1" if self.options.fp16 else "0",
                "trt_engine_cache_enable": "1",
                "trt_engine_cache_path": str(self.options.engine_cache_dir),
                "trt_cuda_graph_enable": "1" if graphs else "0",
                **self._trt_profile(),
            }
            providers.insert(0, ("TensorrtExecutionProvider", trt))
        if graphs:
            so.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
        return ort.InferenceSession(str(self.model_path), sess_options=so, providers=providers)

    def _pinned_dims(self, key: tuple[int, int, int]) -> dict[str, int]:
        dims = {}
        for axis, value in zip(
            self._plain.get_inputs()[0].shape, (key[0], self.spec.model.channels, key[1], key[2]), strict=True
        ):
            if isinstance(axis, str) and axis:
                dims[axis] = value
        return dims

    def _capture_network(self, input_ptr: int, batch: int, height: int, width: int) -> CapturableNetwork | None:
        """A plain session with the dims pinned, bound to our buffers, warmed (cuDNN's algorithm
        search, its arena) so that a capture records only kernels. It serves this one capture:
        the graph replays the addresses its arena handed out, so nothing else may run on it."""
        if self.use_tensorrt_provider:
            return None  # the TensorRT EP captures its own graphs
        key = (batch, height, width)
        _, _, out_ptr = self._binding(input_ptr, key)
        out_shape = self._shapes[key]
        run_options = _ort().RunOptions()
        run_options.add_run_config_entry("disable_synchronize_execution_providers", "1")
        cached = self._capture_sessions.get(key)
        if cached is not None and cached[2] == input_ptr:
            # graphs of other frame layouts may replay this session's memory: share it (all
            # replays are ordered on our one stream)
            session, binding = cached[0], cached[1]
        else:
            if cached is not None:
                self._retired_sessions.append(cached)  # older graphs may still point into it
            session = self._session(graphs=False, dims=self._pinned_dims(key))
            binding = session.io_binding()
            in_dtype = np.float16 if self._half_input else np.float32
            out_dtype = np.float16 if self._half_output else np.float32
            shape = [batch, self.spec.model.channels, height, width]
            binding.bind_input(self._info.input_name, "cuda", self.options.device_id, in_dtype, shape, input_ptr)
            binding.bind_output(
                self._info.output_name, "cuda", self.options.device_id, out_dtype, list(out_shape), out_ptr
            )
            for _ in range(3):
                session.run_with_iobinding(binding, run_options)
                self.stream.synchronize()
            self._capture_sessions[key] = (session, binding, input_ptr)

        def enqueue() -> None:
            session.run_with_iobinding(binding, run_options)

        return CapturableNetwork(enqueue, out_ptr, out_shape, self._half_output)

    def _trt_profile(self) -> dict[str, str]:
        """The recipe's dynamic-shape range as TensorRT EP profile options (no rebuild per shape)."""
        from inference.tensorrt.build import profile_for

        ort = _ort()
        cpu = ort.InferenceSession(str(self.model_path), providers=["CPUExecutionProvider"])
        name = cpu.get_inputs()[0].name  # the name only; a CPU session is the portable way to read it
        c = self.spec.model.channels
        shapes = [
            f"{name}:{b}x{c}x{h}x{w}" for b, h, w in profile_for(self.spec.model, self.options.max_batch)
        ]
        return {
            "trt_profile_min_shapes": shapes[0],
            "trt_profile_opt_shapes": shapes[1],
            "trt_profile_max_shapes": shapes[2],
        }

    # -- network -------------------------------------------------------------------------------

    def _output_shape(self, input_ptr: int, key: tuple[int, int, int]) -> tuple[int, int, int]:
        """Run the plain session once at a new input shape to learn the output shape."""
        shape = self._shapes.get(key)
        if shape is not None:
            return shape
        binding = self._plain.io_binding()
        dtype = np.float16 if self._half_input else np.float32
        binding.bind_input(
            self._info.input_name,
            "cuda",
            self.options.device_id,
            dtype,
            [key[0], self.spec.model.channels, key[1], key[2]],
            input_ptr,
        )
        binding.bind_output(self._info.output_name, "cuda", self.options.device_id)
        self._plain.run_with_iobinding(binding)
        out_shape = tuple(int(d) for d in binding.get_outputs()[0].shape())
        problems = output_problems(
            self.model_path, self.spec.model.layout, len(self.spec.classes), out_shape, self._info.output_name
        )
        if problems or len(out_shape) != 3:
            raise EngineLoadError("; ".join(problems) or f"output shape {out_shape} is not [B, a, b]")
        shape = self._shapes[key] = (out_shape[0], out_shape[1], out_shape[2])
        return shape

    def _binding(self, input_ptr: int, key: tuple[int, int, int]) -> tuple[Any, Any, int]:
        cached = self._bindings.get(key)
        if cached is not None:
            if cached[0]._lc_input_ptr == input_ptr:
                return cached
            # The input moved (pool regrown): a captured graph would replay stale pointers.
            self._graph_sessions.pop(key, None)
        ort = _ort()
        out_shape = self._output_shape(input_ptr, key)
        out_dtype = np.float16 if self._half_output else np.float32
        out_buf = self.pool.device(f"output:{key}", int(np.prod(out_shape)) * np.dtype(out_dtype).itemsize)
        graph = self._graph_session(key) if self.options.cuda_graphs else None
        session = graph if graph is not None else self._plain
        binding = session.io_binding()
        in_dtype = np.float16 if self._half_input else np.float32
        binding.bind_input(
            self._info.input_name,
            "cuda",
            self.options.device_id,
            in_dtype,
            [key[0], self.spec.model.channels, key[1], key[2]],
            input_ptr,
        )
        binding.bind_output(
            self._info.output_name, "cuda", self.options.device_id, out_dtype, list(out_shape), out_buf.ptr
        )
        binding._lc_input_ptr = input_ptr  # type: ignore[attr-defined]
        binding._lc_session = session  # type: ignore[attr-defined]
        run_options = ort.RunOptions()
        # Our decode kernel follows on the same stream: no need for ORT to block the host.
        run_options.add_run_config_entry("disable_synchronize_execution_providers", "1")
        # the default graph id, spelled out: ORT's Python wrapper looks it up on every run and an
        # unset key costs a raised-and-caught C++ exception per call (measured 2 % of the GIL at 8 cameras)
        run_options.add_run_config_entry("gpu_graph_id", "0")
        entry = (binding, run_options, out_buf.ptr)
        self._bindings[key] = entry
        return entry

    def _run(
        self, input_ptr: int, batch: int, height: int, width: int
    ) -> tuple[int, tuple[int, int, int], bool]:
        key = (batch, height, width)
        binding, run_options, out_ptr = self._binding(input_ptr, key)
        binding._lc_session.run_with_iobinding(binding, run_options)
        return out_ptr, self._shapes[key], self._half_output

    def infer_device(self, input_ptr: int, batch: int, height: int, width: int) -> None:
        """Network only, on device buffers (bench: engine time with/without graphs)."""
        self._run(input_ptr, batch, height, width)

    def close(self) -> None:
        self._drop_fused()  # the graphs go first: they replay the capture sessions' memory
        self._bindings.clear()
        self._graph_sessions.clear()
        self._capture_sessions.clear()
        self._retired_sessions.clear()
        self._plain = None
        super().close()


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else type(exc).__name__


__all__: Sequence[str] = ["OnnxRuntimeCudaEngine", "tensorrt_provider_usable"]
