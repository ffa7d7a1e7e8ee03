"""Build TensorRT engines from a recipe's ONNX, with a cache that knows when to rebuild.

Works with ``tensorrt`` (10+) or ``tensorrt_rtx`` (TensorRT for RTX), whichever imports.
TensorRT-RTX builds ahead of time on a machine without a GPU (portable engines for its
supported compute capabilities), which is how CI and ``linecheck build`` exercise this path.

Cache key: ONNX sha256, precision, profile (min/opt/max H, W, max batch), target GPU (name +
compute capability, or "portable" for an RTX AOT build without a GPU) and the TensorRT module
and version. A cache file is a small header (magic, key JSON, payload sha256) plus the plan:
a changed key, a bad checksum, a truncated file or — at load on a GPU — a failed
deserialization all lead to a rebuild, never to a crash on the line.

Precision: fp32 as is. fp16/int8 with a strongly typed runtime (TensorRT-RTX, or TensorRT
where ``BuilderFlag.FP16`` is gone) start from a converted ONNX: fp16 via
``inference.precision``; int8 needs explicit quantization (a QDQ ONNX: made here from the
recipe's calibration images with onnxruntime's ``quantize_static``, or supplied as the model).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from inference.config import ModelConfig
from inference.engine import EngineLoadError
from inference.letterbox import effective_bounds
from inference.precision import fp16_model_path, quantize_with_images, sha256_file

MAGIC = b"LCENGINE1\n"


def import_tensorrt(prefer: str | None = None) -> ModuleType:
    """``tensorrt`` (10+) if present, else ``tensorrt_rtx``; ``prefer`` picks one explicitly."""
    names = [prefer] if prefer else ["tensorrt", "tensorrt_rtx"]
    errors = []
    for name in names:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            errors.append(f"{name}: {exc}")
            continue
        if name == "tensorrt" and int(module.__version__.split(".")[0]) < 10:
            errors.append(f"tensorrt {module.__version__} < 10")
            continue
        return module
    raise EngineLoadError(
        "no TensorRT: pip install tensorrt (10+) or tensorrt-rtx (" + "; ".join(errors) + ")"
    )


def is_rtx(trt: ModuleType) -> bool:
    return trt.__name__.startswith("tensorrt_rtx")


@dataclass(frozen=True)
class BuildOptions:
    cache_dir: Path = Path("var/engines")
    max_batch: int = 1
    progress: bool = True  # a text progress bar on stderr
    force: bool = False  # rebuild even on a cache hit
    module: str | None = None  # "tensorrt" | "tensorrt_rtx" | None: whichever imports
    workspace_mb: int = 0  # 0: TensorRT's default
    compute_capabilities: tuple[str, ...] = ()  # RTX AOT targets, e.g. ("SM86", "SM89"); () = default


@dataclass(frozen=True)
class EngineKey:
    onnx_sha256: str
    precision: str
    profile: tuple[tuple[int, int, int], tuple[int, int, int], tuple[int, int, int]]  # (B, H, W) min/opt/max
    gpu: str  # device name, or "portable" (RTX AOT without a GPU)
    compute_capability: str
    trt: str  # module name + version

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["profile"] = [list(p) for p in self.profile]
        return data


@dataclass
class BuildResult:
    onnx: Path
    engine_path: Path
    key: EngineKey
    built: bool  # False: cache hit
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def target_gpu(trt: ModuleType, options: BuildOptions) -> tuple[str, str]:
    """(name, compute capability) of the GPU the engine is for; "portable" for RTX AOT."""
    try:
        from inference.gpu.cuda import Device, cuda_available

        ok, _ = cuda_available()
        if ok:
            dev = Device(0)
            return dev.name, f"{dev.compute_capability[0]}.{dev.compute_capability[1]}"
    except Exception:  # noqa: BLE001 - no cuda-python / no driver: AOT target below
        pass
    if not is_rtx(trt):
        raise EngineLoadError(
            "TensorRT (non-RTX) builds need a CUDA GPU; use tensorrt-rtx for ahead-of-time builds"
        )
    return "portable", ",".join(options.compute_capabilities) or "default"


def profile_for(
    model: ModelConfig, max_batch: int
) -> tuple[tuple[int, int, int], tuple[int, int, int], tuple[int, int, int]]:
    """(B, H, W) min/opt/max: the recipe profile snapped to the stride, as the letterbox uses it."""
    (lo_h, lo_w), (hi_h, hi_w) = effective_bounds(model.input, model.stride)
    s = model.stride
    opt_h = min(hi_h, max(lo_h, -(-model.input.opt[0] // s) * s))
    opt_w = min(hi_w, max(lo_w, -(-model.input.opt[1] // s) * s))
    return (1, lo_h, lo_w), (1, opt_h, opt_w), (max_batch, hi_h, hi_w)


def engine_key(model: ModelConfig, options: BuildOptions, trt: ModuleType) -> EngineKey:
    gpu, cc = target_gpu(trt, options)
    return EngineKey(
        onnx_sha256=sha256_file(model.onnx),
        precision=model.precision,
        profile=profile_for(model, options.max_batch),
        gpu=gpu,
        compute_capability=cc,
        trt=f"{trt.__name__} {trt.__version__}",
    )


def cache_path(model: ModelConfig, key: EngineKey, cache_dir: Path) -> Path:
    return Path(cache_dir) / f"{Path(model.onnx).stem}-{key.precision}-{key.digest()[:16]}.engine"


# ------------------------------------------------------------------------------ cache file


def write_cache(path: Path, key: EngineKey, plan: bytes) -> None:
    header = {"key": key.as_json(), "sha256": hashlib.sha256(plan).hexdigest(), "size": len(plan)}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".engine.tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(MAGIC + json.dumps(header, sort_keys=True).encode() + b"\n")
            fh.write(plan)
        os.replace(tmp, path)  # atomic: readers see the old file or the whole new one
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def read_cache(path: Path, key: EngineKey) -> bytes | None:
    """The plan if ``path`` holds a complete, uncorrupted engine for ``key``; else None."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    if not data.startswith(MAGIC):
        return None
    end = data.find(b"\n", len(MAGIC))
    if end < 0:
        return None
    try:
        header = json.loads(data[len(MAGIC) : end])
    except ValueError:
        return None
    plan = data[end + 1 :]
    if header.get("key") != json.loads(json.dumps(key.as_json())) or header.get("size") != len(plan):
        return None
    if header.get("sha256") != hashlib.sha256(plan).hexdigest():
        return None
    return plan


def plan_problems(trt: ModuleType, plan: bytes) -> list[str]:
    """Why this machine cannot run ``plan`` (header check, no full load); [] if fine or unknown.

    TensorRT-RTX's ``get_engine_validity`` reads only the header: a malformed plan, a
    version mismatch or an unsupported compute capability (e.g. 9.0, the H100) is reported
    before any deserialization. Plain TensorRT has no such call; there the deserialization
    is the check.
    """
    runtime = trt.Runtime(trt.Logger(trt.Logger.ERROR))
    check_fn = getattr(runtime, "get_engine_validity", None)
    if check_fn is None:
        return []
    validity, diagnostics = check_fn(plan[: max(runtime.engine_header_size, 64)])
    if validity == trt.EngineValidity.VALID:
        return []
    names = [n for n, v in trt.EngineInvalidityDiagnostics.__members__.items() if int(diagnostics) & int(v)]
    return names or ["INVALID"]


# ------------------------------------------------------------------------------ building


def _progress_monitor(trt: ModuleType) -> Any:
    """An IProgressMonitor printing one updating bar line per phase to stderr."""

    class _Bar(trt.IProgressMonitor):  # type: ignore[name-defined,misc]
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self._steps: dict[str, int] = {}
            self._depth: dict[str, int] = {}

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            self._steps[phase_name] = max(num_steps, 1)
            self._depth[phase_name] = self._depth.get(parent_phase, -1) + 1 if parent_phase else 0
            self._draw(phase_name, 0)

        def step_complete(self, phase_name: str, step: int) -> bool:
            self._draw(phase_name, step + 1)
            return True  # False would cancel the build

        def phase_finish(self, phase_name: str) -> None:
            self._draw(phase_name, self._steps.get(phase_name, 1), done=True)
            self._steps.pop(phase_name, None)

        def _draw(self, phase: str, step: int, done: bool = False) -> None:
            total = self._steps.get(phase, 1)
            filled = int(20 * min(step, total) / total)
            indent = "  " * self._depth.get(phase, 0)
            line = f"\r{indent}[{'#' * filled}{'.' * (20 - filled)}] {phase} {min(step, total)}/{total}"
            sys.stderr.write(
                line[:100].ljust(100) + ("\n" if done and self._depth.get(phase, 0) == 0 else "")
            )
            sys.stderr.flush()

    return _Bar()


def _source_onnx(
    model: ModelConfig, trt: ModuleType, cache_dir: Path, notes: list[str]
) -> tuple[Path, bool, bool]:
    """(ONNX to parse, strongly typed network?, set BuilderFlag.FP16?) for the wanted precision."""
    rtx = is_rtx(trt)
    weak_fp16 = not rtx and hasattr(trt.BuilderFlag, "FP16")
    if model.precision == "fp32":
        return Path(model.onnx), False, False
    if model.precision == "fp16":
        if weak_fp16:
            notes.append("fp16 via BuilderFlag.FP16 on the fp32 ONNX")
            return Path(model.onnx), False, True
        notes.append("fp16: strongly typed runtime, ONNX converted to fp16 first (inference.precision)")
        return fp16_model_path(Path(model.onnx), cache_dir), True, False
    notes.append("int8: explicit quantization (QDQ ONNX)")
    return qdq_model_path(model, cache_dir), True, False


def qdq_model_path(model: ModelConfig, cache_dir: Path) -> Path:
    """The model itself if it already has Q/DQ nodes, else a QDQ copy from calibration images."""
    import onnx

    proto = onnx.load(str(model.onnx), load_external_data=False)
    if any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in proto.graph.node):
        return Path(model.onnx)
    if model.calibration is None or not Path(model.calibration).is_dir():
        raise EngineLoadError(
            f"{model.onnx}: int8 needs calibration images (model.calibration) or a QDQ-quantized ONNX"
        )
    return quantize_with_images(model, cache_dir)


def build_plan(model: ModelConfig, options: BuildOptions, trt: ModuleType, notes: list[str]) -> bytes:
    source, strongly_typed, fp16_flag = _source_onnx(model, trt, options.cache_dir, notes)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if strongly_typed and not is_rtx(trt) and hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(source.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineLoadError(f"{source}: TensorRT could not parse the ONNX: {errors[:500]}")
    if network.num_inputs != 1:
        raise EngineLoadError(f"{source}: expected 1 input, the network has {network.num_inputs}")
    inp = network.get_input(0)
    mins, opts, maxs = profile_for(model, options.max_batch)
    dims = list(inp.shape)
    channels = dims[1] if dims[1] > 0 else model.channels

    def shape(bhw: tuple[int, int, int]) -> tuple[int, int, int, int]:
        b, h, w = bhw
        return (
            dims[0] if dims[0] > 0 else b,
            channels,
            dims[2] if dims[2] > 0 else h,
            dims[3] if dims[3] > 0 else w,
        )

    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    profile.set_shape(inp.name, shape(mins), shape(opts), shape(maxs))
    config.add_optimization_profile(profile)
    if fp16_flag:
        config.set_flag(trt.BuilderFlag.FP16)
    if options.workspace_mb:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mb << 20)
    if options.compute_capabilities and is_rtx(trt):
        config.num_compute_capabilities = len(options.compute_capabilities)
        for i, cc in enumerate(options.compute_capabilities):
            config.set_compute_capability(getattr(trt.ComputeCapability, cc), i)
    if options.progress:
        config.progress_monitor = _progress_monitor(trt)
    plan = builder.build_serialized_network(network, config)
    if options.progress:
        sys.stderr.write("\n")
    if plan is None:
        raise EngineLoadError(f"{source}: TensorRT engine build failed (see the TensorRT log above)")
    return bytes(memoryview(plan))


def get_or_build(
    model: ModelConfig, options: BuildOptions, trt: ModuleType | None = None
) -> tuple[BuildResult, bytes]:
    """Cached plan for ``model`` (built and stored on a miss or a corrupt cache file)."""
    trt = trt or import_tensorrt(options.module)
    if not Path(model.onnx).is_file():
        raise EngineLoadError(f"{model.onnx}: model file not found")
    key = engine_key(model, options, trt)
    path = cache_path(model, key, options.cache_dir)
    if not options.force:
        plan = read_cache(path, key)
        if plan is not None:
            return BuildResult(Path(model.onnx), path, key, built=False), plan
    notes: list[str] = []
    t0 = time.perf_counter()
    plan = build_plan(model, options, trt, notes)
    write_cache(path, key, plan)
    return BuildResult(
        Path(model.onnx), path, key, built=True, seconds=time.perf_counter() - t0, notes=notes
    ), plan


def build_engines(recipes_specs: Iterable[Any], options: BuildOptions) -> list[BuildResult]:
    """Build (or find cached) engines for recipes; what ``linecheck build`` calls.

    ``recipes_specs`` yields ``ModelConfig``s or objects with a ``.model`` (``DetectorSpec``,
    a recipe). Models shared by several recipes are built once.
    """
    trt = import_tensorrt(options.module)
    results: list[BuildResult] = []
    seen: set[tuple[str, str]] = set()
    for item in recipes_specs:
        model: ModelConfig = item if isinstance(item, ModelConfig) else item.model
        ident = (str(Path(model.onnx).resolve()), model.precision)
        if ident in seen:
            continue
        seen.add(ident)
        result, _ = get_or_build(model, options, trt)
        state = f"built in {result.seconds:.1f} s" if result.built else "cached"
        print(f"{model.onnx} [{model.precision}] -> {result.engine_path} ({state})", file=sys.stderr)
        results.append(result)
    return results


__all__: Sequence[str] = [
    "BuildOptions",
    "BuildResult",
    "EngineKey",
    "build_engines",
    "get_or_build",
    "import_tensorrt",
    "read_cache",
    "write_cache",
]
