"""``SyntheticSource`` (kind ``synthetic``): a simulated camera over a conveyor of bottle caps
with known defects, so the station can be run and scored end to end without hardware.

Images come from :func:`camera.synthetic_parts.generate_part` with a per-part rng
(``default_rng([seed, part_id])``): part *n* looks the same whatever was dropped before it,
and the ground truth travels with the frame (``Frame.ground_truth``). The belt advances a
fixed step per part. Pacing, buffer pool, drop policy, software trigger and fault injection
are :class:`camera.paced.PacedSource`'s (read its docstring for the policies).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from camera.config import CameraSettings
from camera.frame import GroundTruth
from camera.paced import MAX_SIDE, PacedSource
from camera.source import CameraState
from camera.synthetic_parts import KNOWN_CLASSES, _textures, generate_part

__all__ = ["KNOWN_CLASSES", "SyntheticSource", "generate_part"]

_BELT_STEP_PX = 37  # belt travel between two parts (the texture wraps at its seam period)


class SyntheticSource(PacedSource):
    class Options(BaseModel):
        model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

        width: int = Field(default=1280, ge=64, le=MAX_SIDE)
        height: int = Field(default=1024, ge=64, le=MAX_SIDE)
        pixel_format: Literal["Mono8", "RGB8"] = "Mono8"
        rate_hz: float = Field(default=20.0, ge=0.0, description="parts per second; 0 = as fast as possible")
        defect_rate: float = Field(default=0.3, ge=0.0, le=1.0, description="share of defective parts")
        seed: int = 0
        max_parts: int | None = Field(default=None, ge=1, description="then the belt stops (fetch times out)")
        pool_size: int = Field(default=8, ge=1, le=256)
        classes: tuple[str, ...] = KNOWN_CLASSES
        incomplete_rate: float = Field(default=0.0, ge=0.0, le=1.0, description="share of INCOMPLETE frames")

        @field_validator("classes")
        @classmethod
        def _known(cls, value: tuple[str, ...]) -> tuple[str, ...]:
            bad = [c for c in value if c not in KNOWN_CLASSES]
            if bad:
                raise ValueError(f"unknown defect classes {bad}; the generator knows {list(KNOWN_CLASSES)}")
            return value

    def __init__(self, camera_id: str, options: SyntheticSource.Options, settings: CameraSettings | None = None) -> None:
        super().__init__(
            camera_id,
            width=options.width,
            height=options.height,
            pixel_format=options.pixel_format,
            rate_hz=options.rate_hz,
            pool_size=options.pool_size,
            seed=options.seed,
            max_parts=options.max_parts,
            incomplete_rate=options.incomplete_rate,
        )
        self.options = options
        if settings is not None:
            self.apply_settings(settings)
        self._set_state(CameraState.CONNECTED)

    def start(self) -> None:
        # the scene's static textures take ~0.3 s to render: do it before the first part is due,
        # not on the acquisition thread while parts pile up behind it
        _textures(self.options.width, self.options.height)
        super().start()

    def _render(self, buf: np.ndarray, part_id: int, pixel_format: str) -> GroundTruth:
        height, width = buf.shape[:2]
        _, truth = generate_part(
            np.random.default_rng([self.options.seed, part_id]), width, height, pixel_format,
            self.options.defect_rate, self.options.classes, out=buf, belt_offset=part_id * _BELT_STEP_PX,
        )
        return truth
