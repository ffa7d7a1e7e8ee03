"""The torch-free YOLOv8n-sized graph (recipes/models/build_yolov8n_onnx.py) as the station's
ONNX Runtime engine runs it: the YOLOv8 export's I/O names and layout, dynamic H/W, its size."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import onnx
import pytest

from inference import DetectorSpec, EngineOptions, ModelConfig
from inference.config import InputProfile, NmsConfig
from inference.engine import ImageInput, open_engine

BUILDER = Path(__file__).resolve().parents[2] / "recipes" / "models" / "build_yolov8n_onnx.py"
# Ultralytics' summary of YOLOv8n after fusing BN into the convolutions, 80 classes: "3151904
# parameters", the DFL's fixed 16-weight 1x1 convolution included (here a constant, not counted)
YOLOV8N_FUSED_PARAMETERS = 3_151_904


@pytest.fixture(scope="module")
def builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_yolov8n_onnx", BUILDER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def anchors(h: int, w: int) -> int:
    return sum((h // s) * (w // s) for s in (8, 16, 32))


def test_the_graph_has_yolov8n_s_parameters_and_export_io(builder: ModuleType) -> None:
    model, params = builder.build_model(80)
    assert params + builder.REG_MAX == YOLOV8N_FUSED_PARAMETERS
    (image,), (output,) = model.graph.input, model.graph.output
    dims = [d.dim_param or d.dim_value for d in image.type.tensor_type.shape.dim]
    assert (image.name, dims) == ("images", ["batch", 3, "height", "width"])
    dims = [d.dim_param or d.dim_value for d in output.type.tensor_type.shape.dim]
    assert (output.name, dims) == ("output0", ["batch", 84, "anchors"])


def test_the_station_engine_runs_it_at_two_sizes(builder: ModuleType, tmp_path: Path) -> None:
    path, _ = builder.build(tmp_path / "yolov8n-2.onnx", nc=2)
    onnx.checker.check_model(str(path))
    spec = DetectorSpec(
        model=ModelConfig(onnx=path, layout="yolov8", input=InputProfile(min=(64, 64), opt=(128, 160), max=(128, 160))),
        classes=("scratch", "dent"), score_thresholds=(0.0, 0.0), nms=NmsConfig(iou=0.5),
    )  # fmt: skip
    rng = np.random.default_rng(1)
    with open_engine(spec, EngineOptions(intra_op_threads=1)) as engine:
        for (h, w), frame_hw in (((128, 160), (256, 320)), ((64, 96), (64, 96))):
            raw = engine.infer_raw(rng.random((1, 3, h, w), dtype=np.float32))[0]
            assert raw.shape == (1, 4 + 2, anchors(h, w))
            boxes, scores = raw[0, :4], raw[0, 4:]
            assert (boxes[2:] > 0).all()  # w, h from the DFL's distances: positive
            # cell centres per stride: the first anchor of each level sits near (s/2, s/2) plus the
            # DFL offsets (up to 15 strides); the head's bias init keeps every score low
            assert (np.abs(boxes[:2]) < 16 * 32 + max(h, w)).all()
            assert (scores > 0).all() and scores.max() < 0.01
            frame = rng.integers(0, 255, frame_hw, dtype=np.uint8)
            (result,) = engine.detect([ImageInput(frame, "Mono8")])
            assert result.input_shape == (h, w)
            d = result.detections
            assert len(d.class_id) > 0 and set(d.class_id.tolist()) <= {0, 1}
            assert (d.xyxy[:, 2:] >= d.xyxy[:, :2]).all()
