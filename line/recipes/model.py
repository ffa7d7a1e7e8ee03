"""The recipe schema (one YAML file per product; docs/configuration.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from camera.config import CameraSettings
from inference.config import ModelConfig, NmsConfig
from inference.engine import DetectorSpec
from line.config_model import ConfigModel
from line.flywheel.policy import CapturePolicy

# Bounds for values that parse but cannot work. The largest frame a GenICam camera reports is
# well under 10^8 pixels; a budget under 0.5 ms fail-safes every part on any engine, one over
# 10 s is no deadline on a moving line.
MAX_AREA_PX = 1e8
MIN_BUDGET_MS = 0.5
MAX_BUDGET_MS = 10_000.0

Rect = tuple[int, int, int, int]  # x, y, w, h in frame pixels


class RejectRule(ConfigModel):
    classes: tuple[str, ...] = Field(min_length=1)
    bin: int = Field(ge=1, le=16)
    min_area_px: float = Field(default=0.0, ge=0.0, le=MAX_AREA_PX)
    min_count: int = Field(default=1, ge=1, le=10_000)


class Recipe(ConfigModel):
    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    code: int = Field(ge=1, le=65535)
    description: str = ""
    model: ModelConfig
    classes: tuple[str, ...] = Field(min_length=1)
    thresholds: dict[str, float] = Field(default_factory=lambda: {"default": 0.5})
    nms: NmsConfig = NmsConfig()
    roi: tuple[Rect, ...] | None = None
    ignore: tuple[Rect, ...] = ()
    reject: tuple[RejectRule, ...] = Field(min_length=1)
    camera: CameraSettings = CameraSettings()
    cycle_budget_ms: float = Field(default=40.0, ge=MIN_BUDGET_MS, le=MAX_BUDGET_MS)
    fail_safe: Literal["reject", "hold"] = "reject"
    capture: CapturePolicy | None = None  # what to keep for review (docs/quality-loop.md)

    @field_validator("thresholds")
    @classmethod
    def _threshold_range(cls, value: dict[str, float]) -> dict[str, float]:
        for name, threshold in value.items():
            if not 0.0 <= threshold <= 1.0:
                raise ValueError(f"threshold for {name!r} must be within [0, 1], got {threshold}")
        return value

    @field_validator("roi", "ignore")
    @classmethod
    def _positive_rects(cls, value: tuple[Rect, ...] | None) -> tuple[Rect, ...] | None:
        for rect in value or ():
            if rect[2] <= 0 or rect[3] <= 0 or rect[0] < 0 or rect[1] < 0:
                raise ValueError(f"rectangle {list(rect)} needs x, y >= 0 and w, h > 0")
        return value

    @model_validator(mode="after")
    def _known_classes(self) -> Recipe:
        if len(set(self.classes)) != len(self.classes):
            raise ValueError("classes: duplicate class names")
        known = set(self.classes)
        unknown = [n for n in self.thresholds if n != "default" and n not in known]
        if unknown:
            raise ValueError(f"thresholds: unknown class name(s) {unknown}; classes are {list(self.classes)}")
        for i, rule in enumerate(self.reject):
            bad = [c for c in rule.classes if c not in known]
            if bad:
                raise ValueError(f"reject.{i + 1}.classes: unknown class name(s) {bad}; classes are {list(self.classes)}")
        return self

    def threshold_for(self, class_name: str) -> float:
        return self.thresholds.get(class_name, self.thresholds.get("default", 0.5))

    def detector_spec(self) -> DetectorSpec:
        return DetectorSpec(
            model=self.model,
            classes=self.classes,
            score_thresholds=tuple(self.threshold_for(c) for c in self.classes),
            nms=self.nms,
        )
