"""Acquisition: frame sources (synthetic, replay, GenICam/GenTL, GigE Vision via Aravis).

Nothing here imports ``line``, ``inference`` or ``plc`` (see docs/architecture.md, dependency direction).
Heavy backends (harvesters, Aravis) are imported lazily by the registry so that a CPU-only
install never pays for them.
"""

from camera.errors import CameraError, CameraFatalError, CameraRetryableError, IncompleteFrameError
from camera.frame import Frame, FrameStatus, GroundTruth
from camera.pixel_format import PixelFormat, describe_pixel_format
from camera.source import CameraState, FrameSource, SourceCounters, open_source, register_source
from camera.states import CAMERA_TRANSITIONS

__all__ = [
    "CAMERA_TRANSITIONS",
    "CameraError",
    "CameraFatalError",
    "CameraRetryableError",
    "CameraState",
    "Frame",
    "FrameSource",
    "FrameStatus",
    "GroundTruth",
    "IncompleteFrameError",
    "PixelFormat",
    "SourceCounters",
    "describe_pixel_format",
    "open_source",
    "register_source",
]
