"""The capture decision and its quotas, with chosen random draws and an injected clock."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from line.flywheel.policy import CapturePolicy, Quota, capture_reason
from line.recipes.model import Recipe
from plc.vocabulary import ResultCode

NONE = np.zeros(0, np.float32)


def test_reasons() -> None:
    policy = CapturePolicy(uncertain_band=0.1, pass_share=0.2)
    assert capture_reason(policy, ResultCode.REJECT, np.array([0.9]), np.array([0.5]), 0.99) == "reject"
    assert capture_reason(policy.model_copy(update={"rejects": False}), ResultCode.REJECT, np.array([0.55]), np.array([0.5]), 0.99) == "uncertain"
    assert capture_reason(policy.model_copy(update={"rejects": False}), ResultCode.REJECT, np.array([0.9]), np.array([0.5]), 0.99) is None
    assert capture_reason(policy, ResultCode.PASS, np.array([0.52]), np.array([0.5]), 0.99) == "uncertain"  # a class no rule rejects
    assert capture_reason(policy, ResultCode.PASS, NONE, NONE, 0.1) == "sample"
    assert capture_reason(policy, ResultCode.PASS, NONE, NONE, 0.3) is None
    assert capture_reason(policy, ResultCode.FAIL_SAFE_REJECT, NONE, NONE, 0.0) is None  # the model never saw it


def test_quota_windows_with_an_injected_clock() -> None:
    now = [0.0]
    quota = Quota((2, 3, 100), clock=lambda: now[0])
    assert [quota.take() for _ in range(3)] == [True, True, False]
    now[0] = 61.0  # a new minute, same hour
    assert [quota.take(), quota.take()] == [True, False]  # the hour's 3 are spent
    now[0] = 3601.0
    assert quota.take() and quota.refused == 2


def test_capture_block_is_part_of_the_recipe_and_checked() -> None:
    base = {"id": "r", "code": 1, "model": {"onnx": "m.onnx"}, "classes": ["a"], "reject": [{"classes": ["a"], "bin": 1}]}
    recipe = Recipe.model_validate({**base, "capture": {"pass_share": 0.05, "per_minute": 10}})
    assert recipe.capture is not None and recipe.capture.pass_share == 0.05 and recipe.capture.disk_budget_mb == 2048
    with pytest.raises(ValidationError, match="pass_share"):
        Recipe.model_validate({**base, "capture": {"pass_share": 1.5}})
    with pytest.raises(ValidationError, match="quota_per_minute|Extra inputs"):
        Recipe.model_validate({**base, "capture": {"quota_per_minute": 5}})
