"""``ReplaySource`` (kind ``replay``): plays a folder of images as a camera would deliver them.

For regression runs on recorded production images and for reproducing a field report. The
file list is fixed when the source is built (sorted by name, so the order is stable) and
every problem is a :class:`camera.errors.CameraFatalError` that names the folder or file:
retrying cannot fix a missing folder or a corrupt PNG. Images are converted with OpenCV into
the configured PFNC format (Mono8 or RGB8) straight into the pooled buffer; all must have the
size of the first one. Pacing, pool and drop policy, software trigger and fault injection
are :class:`camera.paced.PacedSource`'s. ``loop=False`` stops after the last file (fetch
then times out, like a stopped belt).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from camera.config import CameraSettings
from camera.errors import CameraFatalError
from camera.frame import GroundTruth
from camera.paced import PacedSource
from camera.source import CameraState


def _read(path: Path) -> np.ndarray:
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise CameraFatalError(f"replay: cannot read image {path} (missing, unreadable or not an image)")
    image = np.asarray(raw)
    if image.dtype == np.uint16:
        image = np.right_shift(image, 8).astype(np.uint8)
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        raise CameraFatalError(f"replay: image {path} has an unsupported layout {image.shape} {image.dtype}")
    return image


def _convert(image: np.ndarray, pixel_format: str, out: np.ndarray) -> None:
    """OpenCV reads BGR(A) or gray; write Mono8 or RGB8 into ``out``."""
    channels = 1 if image.ndim == 2 else image.shape[2]
    if channels == 1:
        gray = image.reshape(image.shape[:2])
        if pixel_format == "Mono8":
            np.copyto(out, gray)
        else:
            cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB, dst=out)
        return
    if pixel_format == "Mono8":
        cv2.cvtColor(image, cv2.COLOR_BGR2GRAY if channels == 3 else cv2.COLOR_BGRA2GRAY, dst=out)
    else:
        cv2.cvtColor(image, cv2.COLOR_BGR2RGB if channels == 3 else cv2.COLOR_BGRA2RGB, dst=out)


class ReplaySource(PacedSource):
    class Options(BaseModel):
        model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

        folder: Path
        pattern: str = "*.png"
        rate_hz: float = Field(default=20.0, ge=0.0, description="images per second; 0 = as fast as possible")
        loop: bool = True
        pixel_format: Literal["Mono8", "RGB8"] = "Mono8"
        pool_size: int = Field(default=8, ge=1, le=256)
        incomplete_rate: float = Field(default=0.0, ge=0.0, le=1.0)

        @field_validator("folder")
        @classmethod
        def _folder_exists(cls, value: Path) -> Path:
            """Checked at validation, so ``linecheck validate`` refuses what opening would."""
            if not value.is_dir():
                raise ValueError(f"folder {value} does not exist or is not a folder")
            return value

    def __init__(self, camera_id: str, options: ReplaySource.Options, settings: CameraSettings | None = None) -> None:
        folder = options.folder
        if not folder.exists():
            raise CameraFatalError(f"replay: folder {folder} does not exist")
        if not folder.is_dir():
            raise CameraFatalError(f"replay: {folder} is not a folder")
        files = sorted(p for p in folder.glob(options.pattern) if p.is_file())
        if not files:
            raise CameraFatalError(f"replay: folder {folder} has no files matching {options.pattern!r}")
        height, width = _read(files[0]).shape[:2]
        super().__init__(
            camera_id,
            width=width,
            height=height,
            pixel_format=options.pixel_format,
            rate_hz=options.rate_hz,
            pool_size=options.pool_size,
            max_parts=None if options.loop else len(files),
            incomplete_rate=options.incomplete_rate,
        )
        self.options = options
        self.files: tuple[Path, ...] = tuple(files)
        if settings is not None:
            self.apply_settings(settings)
        self._set_state(CameraState.CONNECTED)

    def _validate_size(self, settings: CameraSettings) -> None:
        """The images fix the size: a recipe asking for another one cannot be served."""
        for node, want, have in (("Width", settings.width, self._width), ("Height", settings.height, self._height)):
            if want is not None and want != have:
                raise CameraFatalError(f"replay: recipe wants {node}={want} but the images in {self.options.folder} have {have}")

    def file_for(self, part_id: int) -> Path:
        return self.files[(part_id - 1) % len(self.files)]

    def _render(self, buf: np.ndarray, part_id: int, pixel_format: str) -> GroundTruth | None:
        path = self.file_for(part_id)
        image = _read(path)
        if image.shape[:2] != buf.shape[:2]:
            raise CameraFatalError(
                f"replay: image {path} is {image.shape[1]}x{image.shape[0]}, the folder's first image is {buf.shape[1]}x{buf.shape[0]}"
            )
        _convert(image, pixel_format, buf)
        return None
