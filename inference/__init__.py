"""Inference: engines (ONNX Runtime, TensorRT), preprocessing, decoding and NMS.

Nothing here imports ``line``, ``camera`` or ``plc``. Pixel formats are exchanged as GenICam
PFNC name strings. GPU modules (``gpu``, ``tensorrt``) are only imported by ``open_engine``
when a recipe asks for them, so the CPU path never loads CUDA.
"""

from inference.config import EngineOptions, InputProfile, ModelConfig, NmsConfig
from inference.detections import Detections
from inference.engine import DetectionResult, DetectorSpec, Engine, EngineLoadError, ImageInput, open_engine

__all__ = [
    "DetectionResult",
    "Detections",
    "DetectorSpec",
    "Engine",
    "EngineLoadError",
    "EngineOptions",
    "ImageInput",
    "InputProfile",
    "ModelConfig",
    "NmsConfig",
    "open_engine",
]
