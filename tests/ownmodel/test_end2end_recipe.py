"""An end-to-end (NMS-free) export through a recipe file: the model's own overlapping detections
reach the reject rules as the model gave them, unless the recipe's nms block asks for NMS again."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inference import EngineOptions, ImageInput, open_engine
from line.loop.decision import DecisionPolicy
from line.recipes.book import load_recipe
from plc.vocabulary import ResultCode
from tests.inference.onnx_models import constant_model

# two dents the model reports side by side (IoU 0.6: one NMS at iou 0.5 would merge them), and padding
DETECTIONS = np.array([[[100, 100, 200, 200, 0.9, 1], [125, 100, 225, 200, 0.8, 1], [0, 0, 0, 0, 0, 0]]], np.float32)

RECIPE = """\
id: e2e
code: 1
model:
  onnx: model.onnx
  layout: end2end           # YOLOv10 / YOLO26 export: [B, K, 6], NMS in the graph
  input: {min: [320, 320], opt: [320, 320], max: [320, 320]}
classes: [scratch, dent]
thresholds: {default: 0.5}
nms: {iou: 0.5%s}
reject:
  - {classes: [dent], bin: 1, min_count: 2}   # two dents or more: reject
"""


@pytest.mark.parametrize(("nms_extra", "want_count", "want_code"), [
    ("", 2, ResultCode.REJECT),  # default: the graph's detections stand
    (", rerun_on_end2end: true", 1, ResultCode.PASS),  # asked for: merged to one dent
])  # fmt: skip
def test_min_count_sees_the_models_own_detections(
    tmp_path: Path, nms_extra: str, want_count: int, want_code: ResultCode
) -> None:
    constant_model(tmp_path / "model.onnx", DETECTIONS)
    path = tmp_path / "e2e.yaml"
    path.write_text(RECIPE % nms_extra)
    recipe = load_recipe(path)  # what validate runs: the model is checked against the recipe
    with open_engine(recipe.detector_spec(), EngineOptions(intra_op_threads=1)) as engine:
        (result,) = engine.detect([ImageInput(np.zeros((320, 320), np.uint8), "Mono8")])
    verdict = DecisionPolicy(recipe).decide(result.detections)
    assert verdict.defect_counts() == (("dent", want_count),)
    assert verdict.result_code is want_code
