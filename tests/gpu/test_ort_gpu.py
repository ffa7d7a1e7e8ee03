"""GPU engines end to end on the GPU host: YOLOv8n-sized model and the demo model.

ONNX Runtime CUDA needs onnxruntime-gpu (CUDAExecutionProvider). The TensorRT backend shares
the end-to-end test; it is skipped with the reason where no TensorRT module is installed or
the runtime refuses the GPU (TensorRT-RTX on compute capability 9.0, the H100).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pytest

from inference.config import EngineOptions, InputProfile, ModelConfig
from inference.engine import DetectorSpec, ImageInput, open_engine

pytestmark = pytest.mark.gpu
ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "recipes" / "demo" / "demo-parts.onnx"


def _need_cuda_ep() -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip(f"onnxruntime {ort.__version__} has no CUDAExecutionProvider (needs onnxruntime-gpu)")


@pytest.fixture(scope="module")
def yolov8n(tmp_path_factory) -> Path:
    _need_cuda_ep()
    pytest.importorskip("torch")
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "export_yolov8n", ROOT / "recipes" / "models" / "export_yolov8n.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.export(tmp_path_factory.mktemp("models") / "yolov8n.onnx", nc=80)


def _spec(path: Path, classes: int, threshold: float) -> DetectorSpec:
    model = ModelConfig(
        onnx=path, layout="yolov8", input=InputProfile(min=(320, 320), opt=(512, 640), max=(640, 640))
    )
    return DetectorSpec(model, tuple(f"c{i}" for i in range(classes)), (threshold,) * classes)


def _options(
    tmp_path: Path, backend: Literal["onnxruntime", "tensorrt"] = "onnxruntime", **kw
) -> EngineOptions:
    return EngineOptions(backend=backend, device="cuda", engine_cache_dir=tmp_path, **kw)


def _open_gpu(spec: DetectorSpec, options: EngineOptions):
    """open_engine, skipping (with the reason) where this host cannot run the backend."""
    from inference.engine import EngineLoadError

    if options.backend == "tensorrt":
        from inference.tensorrt.build import import_tensorrt

        try:
            import_tensorrt()
        except EngineLoadError as exc:
            pytest.skip(f"TensorRT runtime not executed here: {exc}")
        try:
            return open_engine(spec, options)
        except EngineLoadError as exc:
            if "cannot run on" in str(exc):
                pytest.skip(f"TensorRT runtime not executed here: {exc}")
            raise
    return open_engine(spec, options)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda t: (t[:, 2] - t[:, 0]) * (t[:, 3] - t[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter + 1e-9)


def _matched(src, dst, margin: float, threshold: float) -> None:
    """Every confident detection in ``src`` has a same-class twin in ``dst`` (IoU >= 0.8)."""
    strong = src.confidence >= threshold + margin
    if not strong.any():
        return
    ious = _iou(src.xyxy[strong], dst.xyxy) if len(dst) else np.zeros((strong.sum(), 0))
    same = src.class_id[strong][:, None] == dst.class_id[None, :]
    assert ((ious >= 0.8) & same).any(axis=1).all(), "a confident detection has no GPU/CPU twin"


def test_yolov8n_raw_outputs_match_cpu(yolov8n, tmp_path) -> None:
    spec = _spec(yolov8n, 80, 0.25)
    rng = np.random.default_rng()
    x = rng.random((1, 3, 512, 640), dtype=np.float32)
    with open_engine(spec, _options(tmp_path, cuda_graphs=False)) as gpu, open_engine(spec) as cpu:
        got, ref = gpu.infer_raw(x)[0], cpu.infer_raw(x)[0]
    assert got.shape == ref.shape == (1, 84, 6720)
    np.testing.assert_allclose(got[:, 4:], ref[:, 4:], atol=5e-3)
    np.testing.assert_allclose(got[:, :4], ref[:, :4], rtol=5e-3, atol=0.5)


@pytest.mark.parametrize("backend", ["onnxruntime", "tensorrt"])
@pytest.mark.parametrize("fmt", ["Mono8", "BayerRG8", "RGB8"])
def test_yolov8n_detect_end_to_end_with_graphs(yolov8n, tmp_path, fmt, backend) -> None:
    spec = _spec(yolov8n, 80, 0.01)
    rng = np.random.default_rng()
    shape = (1024, 1280) if fmt != "RGB8" else (1024, 1280, 3)
    frames = [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(4)]
    with _open_gpu(spec, _options(tmp_path, backend, cuda_graphs=True)) as gpu, open_engine(spec) as cpu:
        gpu.register_host_buffers(frames)
        for frame in frames:
            image = ImageInput(frame, fmt)
            first = gpu.detect([image])[0]
            again = gpu.detect([image])[0]  # graph replay: identical
            np.testing.assert_array_equal(first.detections.xyxy, again.detections.xyxy)
            assert first.input_shape == (512, 640)
            assert {"preprocess", "engine", "decode", "total"} <= set(first.timings_ms)
            # the host's share: the enqueue and the wait for the device, both inside the call
            t = again.timings_ms
            assert t["launch"] > 0 and t["collect"] > 0 and t["launch"] + t["collect"] <= t["total"]
            ref = cpu.detect([image])[0]
            _matched(ref.detections, first.detections, 0.02, 0.01)
            _matched(first.detections, ref.detections, 0.02, 0.01)
        if backend == "onnxruntime":
            assert gpu.cuda_graphs_active, gpu.cuda_graph_error
        assert gpu.counters.host_copies == 0


def test_yolov8n_fp16_and_batch(yolov8n, tmp_path) -> None:
    spec = _spec(yolov8n, 80, 0.01)
    rng = np.random.default_rng()
    x = rng.random((1, 3, 640, 640), dtype=np.float32)
    with open_engine(spec, _options(tmp_path, fp16=True, max_batch=2)) as gpu16, open_engine(spec) as cpu:
        got, ref = gpu16.infer_raw(x)[0], cpu.infer_raw(x)[0]
        np.testing.assert_allclose(got[:, 4:], ref[:, 4:], atol=3e-2)
        frames = [ImageInput(rng.integers(0, 256, (1024, 1280), dtype=np.uint8), "Mono8") for _ in range(3)]
        results = gpu16.detect(frames)
    assert len(results) == 3


@pytest.mark.skipif(not DEMO.is_file(), reason=f"{DEMO} not trained/committed yet")
@pytest.mark.parametrize("fp16", [False, True])
def test_demo_model_matches_cpu_on_synthetic_parts(tmp_path, fp16) -> None:
    """Trained weights, real defects: the GPU path (NHWC convolutions by default) finds what
    the CPU finds, in fp32 and in fp16."""
    _need_cuda_ep()
    from camera.synthetic_parts import KNOWN_CLASSES, generate_part

    spec = DetectorSpec(
        ModelConfig(
            onnx=DEMO, layout="yolov8", input=InputProfile(min=(320, 320), opt=(512, 640), max=(512, 640))
        ),
        tuple(KNOWN_CLASSES),
        (0.4,) * len(KNOWN_CLASSES),
    )
    rng = np.random.default_rng(7)
    with open_engine(spec, _options(tmp_path, fp16=fp16)) as gpu, open_engine(spec) as cpu:
        assert gpu.nhwc, gpu.nhwc_error
        found = 0
        for _ in range(6):
            img, _truth = generate_part(rng, 1280, 1024, "Mono8", defect_rate=0.8)
            image = ImageInput(img, "Mono8")
            g, c = gpu.detect([image])[0].detections, cpu.detect([image])[0].detections
            _matched(c, g, 0.05, 0.4)
            _matched(g, c, 0.05, 0.4)
            found += len(g)
        assert found > 0, "the demo model found nothing on defective parts"


def _network_output(gpu) -> np.ndarray:
    """The engine's device output buffer (both paths write it), as float32 on the host."""
    from inference.gpu.cuda import check, runtime

    ((key, (_, _, out_ptr)),) = gpu._bindings.items()
    shape = gpu._shapes[key]
    dtype = np.float16 if gpu._half_output else np.float32
    host = np.empty(shape, dtype)
    gpu.stream.synchronize()
    kind = runtime.cudaMemcpyKind.cudaMemcpyDeviceToHost
    check(runtime.cudaMemcpy(host.ctypes.data, out_ptr, host.nbytes, kind), "cudaMemcpy")
    return host.astype(np.float32)


def test_whole_graph_and_early_launch_give_the_step_path_results(yolov8n, tmp_path) -> None:
    """One graph for kernel + network + decode, and a launch finished on another thread,
    compute what the step-by-step path computes; a launch reserves the engine until finished."""
    import threading

    spec = _spec(yolov8n, 80, 0.01)
    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 256, (1024, 1280), dtype=np.uint8) for _ in range(3)]
    with open_engine(spec, _options(tmp_path, fp16=True)) as gpu:
        gpu.register_host_buffers(frames)
        gpu.whole_graph = False
        ref = []
        for f in frames:
            ref.append((gpu.detect([ImageInput(f, "Mono8")])[0], _network_output(gpu)))
        gpu.whole_graph = True
        for _ in range(2):  # the first call sizes the buffers, the second captures
            gpu.detect([ImageInput(frames[0], "Mono8")])
        assert gpu._fused, gpu.whole_graph_error
        assert all(f.timed for f in gpu._fused.values()), "stage events inside the graph"
        for frame, (want, want_out) in zip(frames, ref, strict=True):
            got = gpu.detect([ImageInput(frame, "Mono8")])[0]
            got_out = _network_output(gpu)
            assert np.ptp(want_out) > 0
            np.testing.assert_allclose(got_out, want_out, atol=2e-2, rtol=2e-2)
            assert len(got.detections) == len(want.detections)
            _matched(want.detections, got.detections, 0.01, 0.01)
            assert {"preprocess", "engine", "decode"} <= set(got.timings_ms)
            assert 0 < got.timings_ms["engine"] < got.timings_ms["total"]
            launched = gpu.try_launch([ImageInput(frame, "Mono8")])
            assert launched is not None
            assert gpu.try_launch([ImageInput(frame, "Mono8")]) is None, "a launch reserves the engine"
            box: list = []
            finisher = threading.Thread(target=lambda box=box, launched=launched: box.append(gpu.finish(launched)))
            finisher.start()
            finisher.join(10)
            early = box[0][0]
            np.testing.assert_array_equal(_network_output(gpu), got_out)
            np.testing.assert_array_equal(early.detections.xyxy, got.detections.xyxy)
            np.testing.assert_array_equal(early.detections.class_id, got.detections.class_id)
        last = gpu.try_launch([ImageInput(frames[0], "Mono8")])
        assert last is not None, "finishing gave the engine back"
        gpu.finish(last)


def test_nhwc_convolutions_give_the_nchw_results(yolov8n, tmp_path) -> None:
    """The default ``cuda_nhwc`` (ORT ``prefer_nhwc``) is really on in this ORT build, and the
    network and the detections match the NCHW engine's: a layout choice, not a different model."""
    spec = _spec(yolov8n, 80, 0.01)
    rng = np.random.default_rng(5)
    frames = [rng.integers(0, 256, (1024, 1280), dtype=np.uint8) for _ in range(3)]
    with open_engine(spec, _options(tmp_path, fp16=True)) as nhwc, open_engine(
        spec, _options(tmp_path, fp16=True, cuda_nhwc=False)
    ) as nchw:
        assert nhwc.nhwc and nhwc.nhwc_error is None, nhwc.nhwc_error
        assert not nchw.nhwc
        for engine in (nhwc, nchw):
            engine.register_host_buffers(frames)
        for frame in frames:
            image = ImageInput(frame, "Mono8")
            for _ in range(2):  # sizes, then captures the whole graph
                a = nhwc.detect([image])[0]
                b = nchw.detect([image])[0]
            out_a, out_b = _network_output(nhwc), _network_output(nchw)
            assert np.ptp(out_b) > 0
            np.testing.assert_allclose(out_a, out_b, atol=3e-2, rtol=3e-2)
            _matched(b.detections, a.detections, 0.02, 0.01)
            _matched(a.detections, b.detections, 0.02, 0.01)



def test_blocking_wait_sets_the_context_flag_and_changes_no_result(yolov8n, tmp_path) -> None:
    """``cuda_wait="block"`` really switches the process's CUDA context to blocking sync (the
    bench's A/B would measure nothing otherwise) and the detections stay those of the default."""
    from cuda.bindings import runtime

    from inference.gpu.cuda import check

    spec = _spec(yolov8n, 80, 0.01)
    frame = np.random.default_rng(9).integers(0, 256, (1024, 1280), dtype=np.uint8)
    image = ImageInput(frame, "Mono8")
    mask = int(runtime.cudaDeviceScheduleMask)
    with open_engine(spec, _options(tmp_path, fp16=True)) as default:
        before = int(check(runtime.cudaGetDeviceFlags(), "cudaGetDeviceFlags"))
        a = [default.detect([image])[0] for _ in range(2)][-1]
        out_a = _network_output(default)
    try:
        with open_engine(spec, _options(tmp_path, fp16=True, cuda_wait="block")) as blocking:
            flags = int(check(runtime.cudaGetDeviceFlags(), "cudaGetDeviceFlags"))
            assert flags & mask == int(runtime.cudaDeviceScheduleBlockingSync)
            # the flags set before are kept (the runtime may report implicit ones besides: on
            # the H100, cudaDeviceLmemResizeToMax appeared next to cudaDeviceMapHost)
            assert flags & before & ~mask == before & ~mask
            b = [blocking.detect([image])[0] for _ in range(2)][-1]
            out_b = _network_output(blocking)
    finally:  # process-wide: the next tests get the default back
        check(runtime.cudaSetDeviceFlags(before), "cudaSetDeviceFlags")
    assert np.ptp(out_a) > 0
    np.testing.assert_allclose(out_a, out_b, atol=3e-2, rtol=3e-2)
    _matched(a.detections, b.detections, 0.02, 0.01)
    _matched(b.detections, a.detections, 0.02, 0.01)
