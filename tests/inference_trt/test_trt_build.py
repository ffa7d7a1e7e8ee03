"""TensorRT engine build + cache with TensorRT-RTX, ahead of time on a CPU-only machine.

What runs here: ONNX parse, dynamic optimization profile, fp32/fp16 builds, the cache (hit,
miss on ONNX bytes / precision / profile, corrupt file rebuilt) and the progress bar. What
cannot run here: deserializing and executing the plan (needs a GPU RTX supports); we check
the plan header with TensorRT-RTX's own ``get_engine_validity`` instead.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from inference.config import InputProfile, ModelConfig
from inference.engine import DetectorSpec, EngineLoadError
from inference.tensorrt.build import (
    BuildOptions,
    build_engines,
    cache_path,
    engine_key,
    get_or_build,
    import_tensorrt,
    plan_problems,
    read_cache,
)

trt = pytest.importorskip("tensorrt_rtx", reason="tensorrt-rtx not installed (pip install tensorrt-rtx)")
ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "recipes" / "demo" / "demo-parts.onnx"
PROFILE = InputProfile(min=(320, 320), opt=(512, 640), max=(640, 640))


def tiny_yolov8(path: Path, classes: int = 2, seed: int = 0) -> Path:
    """[N,3,H,W] → Conv k8 s8 → [N, 4 + C, H/8 * W/8]: the yolov8 layout, dynamic H/W."""
    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array(rng.standard_normal((4 + classes, 3, 8, 8)).astype(np.float32) * 0.05, "w")
    b = numpy_helper.from_array(np.zeros(4 + classes, np.float32), "b")
    shape = numpy_helper.from_array(np.array([0, 4 + classes, -1], np.int64), "shape")
    nodes = [
        helper.make_node("Conv", ["images", "w", "b"], ["c"], strides=[8, 8]),
        helper.make_node("Sigmoid", ["c"], ["s"]),
        helper.make_node("Reshape", ["s", "shape"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["N", 4 + classes, "A"])],
        [w, b, shape],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return path


@pytest.fixture()
def model(tmp_path: Path) -> ModelConfig:
    return ModelConfig(onnx=tiny_yolov8(tmp_path / "tiny.onnx"), layout="yolov8", input=PROFILE)


def opts(tmp_path: Path, **kw) -> BuildOptions:
    return BuildOptions(cache_dir=tmp_path / "engines", module="tensorrt_rtx", progress=False, **kw)


def test_imports_whichever_tensorrt_exists() -> None:
    assert import_tensorrt().__name__ in ("tensorrt", "tensorrt_rtx")


def test_dynamic_profile_build_and_cache_hit(model, tmp_path) -> None:
    o = opts(tmp_path, max_batch=2)
    first, plan = get_or_build(model, o)
    assert first.built and first.engine_path.is_file()
    assert first.key.profile == ((1, 320, 320), (1, 512, 640), (2, 640, 640))
    assert first.key.trt.startswith("tensorrt_rtx ")
    assert plan_problems(trt, plan) in ([], ["CUDA_ERROR"]) or "MALFORMED_ENGINE" not in plan_problems(
        trt, plan
    )
    mtime = first.engine_path.stat().st_mtime_ns
    second, plan2 = get_or_build(model, o)
    assert not second.built and plan2 == plan
    assert second.engine_path == first.engine_path and first.engine_path.stat().st_mtime_ns == mtime


def test_cache_miss_when_onnx_precision_or_profile_change(model, tmp_path) -> None:
    o = opts(tmp_path)
    base, _ = get_or_build(model, o)
    tiny_yolov8(Path(model.onnx), seed=1)  # same graph, other weights: other bytes
    changed_bytes, _ = get_or_build(model, o)
    assert changed_bytes.built and changed_bytes.key.onnx_sha256 != base.key.onnx_sha256
    fp16, _ = get_or_build(model.model_copy(update={"precision": "fp16"}), o)
    assert fp16.built and fp16.engine_path != changed_bytes.engine_path
    assert any("converted to fp16" in n for n in fp16.notes)
    other_profile = model.model_copy(
        update={"input": InputProfile(min=(320, 320), opt=(640, 640), max=(1024, 1024))}
    )
    prof, _ = get_or_build(other_profile, o)
    assert prof.built and prof.key.profile[2] == (1, 1024, 1024)
    batch, _ = get_or_build(model, opts(tmp_path, max_batch=4))
    assert batch.built and batch.key.profile[2][0] == 4
    assert len(list((tmp_path / "engines").glob("*.engine"))) == 5


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "empty"])
def test_corrupt_cache_is_rebuilt(model, tmp_path, damage) -> None:
    o = opts(tmp_path)
    first, plan = get_or_build(model, o)
    data = first.engine_path.read_bytes()
    if damage == "truncate":
        first.engine_path.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        first.engine_path.write_bytes(data[:-100] + bytes([data[-100] ^ 0xFF]) + data[-99:])
    elif damage == "garbage":
        first.engine_path.write_bytes(b"not an engine" * 100)
    else:
        first.engine_path.write_bytes(b"")
    assert read_cache(first.engine_path, first.key) is None
    again, plan2 = get_or_build(model, o)
    assert again.built and read_cache(again.engine_path, again.key) == plan2


def test_progress_bar_on_stderr(model, tmp_path, capsys) -> None:
    get_or_build(model, BuildOptions(cache_dir=tmp_path / "e", module="tensorrt_rtx", progress=True))
    err = capsys.readouterr().err
    assert "[####################]" in err and "Building engine" in err


def test_build_engines_dedupes_models(model, tmp_path, capsys) -> None:
    specs = [
        DetectorSpec(model, ("a", "b"), (0.5, 0.5)),
        DetectorSpec(model, ("a", "b"), (0.3, 0.3)),  # another recipe, same model
        model.model_copy(update={"precision": "fp16"}),
    ]
    results = build_engines(specs, opts(tmp_path))
    assert [r.built for r in results] == [True, True]
    results = build_engines(specs, opts(tmp_path))
    assert [r.built for r in results] == [False, False]
    assert "cached" in capsys.readouterr().err


def test_key_names_the_target(model, tmp_path) -> None:
    key = engine_key(model, opts(tmp_path, compute_capabilities=("SM86", "SM89")), trt)
    assert key.gpu == "portable" and key.compute_capability == "SM86,SM89"
    assert cache_path(model, key, tmp_path).suffix == ".engine"
    result, _ = get_or_build(model, opts(tmp_path, compute_capabilities=("SM86",)))
    assert result.built


def test_missing_model_and_int8_without_calibration(tmp_path) -> None:
    with pytest.raises(EngineLoadError, match="not found"):
        get_or_build(ModelConfig(onnx=tmp_path / "nope.onnx"), opts(tmp_path))
    m = ModelConfig(onnx=tiny_yolov8(tmp_path / "t.onnx"), precision="int8", input=PROFILE)
    with pytest.raises(EngineLoadError, match="calibration"):
        get_or_build(m, opts(tmp_path))


def test_int8_by_explicit_quantization(tmp_path) -> None:
    """Calibration images → QDQ ONNX (onnxruntime quantize_static) → strongly typed build."""
    import cv2

    calib = tmp_path / "calib"
    calib.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        cv2.imwrite(str(calib / f"{i}.png"), rng.integers(0, 256, (400, 500, 3), dtype=np.uint8))
    m = ModelConfig(onnx=tiny_yolov8(tmp_path / "t.onnx"), precision="int8", calibration=calib, input=PROFILE)
    try:
        result, plan = get_or_build(m, opts(tmp_path))
    except EngineLoadError as exc:  # RTX's INT8 covers weight-only GEMM; a QDQ conv may be refused
        pytest.xfail(f"TensorRT-RTX refused the QDQ conv network: {exc}")
    assert result.built and any("int8" in n for n in result.notes)
    qdq = list((tmp_path / "engines").glob("*-int8-qdq.onnx"))
    assert qdq and any(n.op_type == "QuantizeLinear" for n in onnx.load(str(qdq[0])).graph.node)


@pytest.mark.skipif(not DEMO.is_file(), reason=f"{DEMO} not trained/committed yet")
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_demo_model_builds(tmp_path, precision) -> None:
    m = ModelConfig(
        onnx=DEMO,
        layout="yolov8",
        input=InputProfile(min=(320, 320), opt=(512, 640), max=(1024, 1280)),
        precision=precision,
    )
    result, plan = get_or_build(m, opts(tmp_path))
    assert result.built and len(plan) > 10_000
    assert "MALFORMED_ENGINE" not in plan_problems(trt, plan)
