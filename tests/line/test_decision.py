"""Decision tables: ROI / ignore masks, minimum area, rule order, fail-safe codes."""

from __future__ import annotations

import numpy as np
import pytest

from inference.detections import Detections
from line.loop.decision import DecisionPolicy
from line.recipes.model import Recipe
from plc.vocabulary import FailSafeReason, ResultCode

BASE = {
    "id": "t", "code": 1, "model": {"onnx": "m.onnx"}, "classes": ["scratch", "dent", "missing_cap"],
    "reject": [{"classes": ["missing_cap"], "bin": 1}, {"classes": ["scratch", "dent"], "min_area_px": 40, "bin": 2}],
}  # fmt: skip


def dets(*rows: tuple[float, float, float, float, float, int]) -> Detections:
    arr = np.array(rows, np.float32).reshape(-1, 6)
    return Detections(arr[:, :4], arr[:, 4], arr[:, 5].astype(np.int32))


@pytest.mark.parametrize(
    ("extra", "detections", "code", "bin_", "counted"),
    [
        ({}, dets(), ResultCode.PASS, 0, 0),
        # a 10x10 scratch (area 100 >= 40) -> bin 2
        ({}, dets((0, 0, 10, 10, 0.9, 0)), ResultCode.REJECT, 2, 1),
        # a 5x5 dent (area 25 < 40) counts as a defect but matches no rule -> pass
        ({}, dets((0, 0, 5, 5, 0.9, 1)), ResultCode.PASS, 0, 1),
        # missing cap and scratch: the first matching rule (bin 1) decides
        ({}, dets((0, 0, 10, 10, 0.9, 0), (50, 50, 60, 60, 0.8, 2)), ResultCode.REJECT, 1, 2),
        # ROI: centre (105, 105) outside roi [0,0,100,100] -> not counted
        ({"roi": [[0, 0, 100, 100]]}, dets((100, 100, 110, 110, 0.9, 2)), ResultCode.PASS, 0, 0),
        # centre exactly on the ROI's right edge (x + w) is outside (half-open)
        ({"roi": [[0, 0, 100, 100]]}, dets((95, 10, 105, 20, 0.9, 2)), ResultCode.PASS, 0, 0),
        ({"roi": [[0, 0, 100, 100]]}, dets((94, 10, 104, 20, 0.9, 2)), ResultCode.REJECT, 1, 1),
        # ignore mask wins over ROI
        ({"roi": [[0, 0, 100, 100]], "ignore": [[0, 0, 20, 20]]}, dets((0, 0, 10, 10, 0.9, 2)), ResultCode.PASS, 0, 0),
        # two ROIs: the second one contains it
        ({"roi": [[0, 0, 10, 10], [200, 200, 50, 50]]}, dets((210, 210, 220, 220, 0.9, 2)), ResultCode.REJECT, 1, 1),
        # min_count 2: one scratch is not enough
        ({"reject": [{"classes": ["scratch"], "bin": 3, "min_count": 2}]}, dets((0, 0, 10, 10, 0.9, 0)), ResultCode.PASS, 0, 1),
        ({"reject": [{"classes": ["scratch"], "bin": 3, "min_count": 2}]},
         dets((0, 0, 10, 10, 0.9, 0), (20, 20, 30, 30, 0.9, 0)), ResultCode.REJECT, 3, 2),  # fmt: skip
    ],
)
def test_decision_table(extra: dict, detections: Detections, code: ResultCode, bin_: int, counted: int) -> None:
    recipe = Recipe.model_validate({**BASE, **extra})
    verdict = DecisionPolicy(recipe).decide(detections)
    assert (verdict.result_code, verdict.reject_bin, verdict.defect_count) == (code, bin_, counted)
    assert verdict.reject_mask == (1 << (bin_ - 1) if bin_ else 0)


@pytest.mark.parametrize(("policy", "code"), [("reject", ResultCode.FAIL_SAFE_REJECT), ("hold", ResultCode.HOLD)])
def test_fail_safe_code_follows_recipe(policy: str, code: ResultCode) -> None:
    verdict = DecisionPolicy(Recipe.model_validate({**BASE, "fail_safe": policy})).fail_safe("timeout")
    assert verdict.result_code is code and verdict.reason == "timeout" and verdict.defect_count == 0


def test_fail_safe_reasons_are_the_vocabulary_s() -> None:
    policy = DecisionPolicy(Recipe.model_validate(BASE))
    verdict = policy.fail_safe("camera_error")
    assert verdict.reason is FailSafeReason.CAMERA_ERROR and verdict.reason == "camera_error"
    with pytest.raises(ValueError, match="camera_eror"):
        policy.fail_safe("camera_eror")


def test_defect_counts_by_class() -> None:
    verdict = DecisionPolicy(Recipe.model_validate(BASE)).decide(
        dets((0, 0, 10, 10, 0.9, 0), (20, 20, 30, 30, 0.9, 0), (40, 40, 50, 50, 0.9, 1))
    )
    assert verdict.defect_counts() == (("dent", 1), ("scratch", 2))
