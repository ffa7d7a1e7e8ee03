"""Model and engine configuration (frozen pydantic models; the recipe embeds ``ModelConfig``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Frozen(BaseModel):
    """Base of the configuration models here: the same settings as ``line.config_model.ConfigModel``
    (why: see there). A copy per package, because camera, inference and plc never import each
    other (tests/architecture/test_shared_copies.py keeps the copies in step)."""

    # .inf / .nan parse as YAML floats; no size, threshold or timeout works with them
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


Layout = Literal["yolov5", "yolov8", "end2end"]
Precision = Literal["fp32", "fp16", "int8"]


class InputProfile(_Frozen):
    """Dynamic input shape range as (H, W); the letterbox keeps within it, multiples of 32."""

    min: tuple[int, int] = (320, 320)
    opt: tuple[int, int] = (512, 640)
    max: tuple[int, int] = (1024, 1280)

    @model_validator(mode="after")
    def _ordered(self) -> InputProfile:
        for shape in (self.min, self.opt, self.max):
            if max(shape) > 16384:
                raise ValueError(f"input sizes above 16384 px cannot run, got {list(shape)}")
        for axis, name in ((0, "height"), (1, "width")):
            if not (0 < self.min[axis] <= self.opt[axis] <= self.max[axis]):
                raise ValueError(f"{name}: need 0 < min <= opt <= max, got {self.min[axis]}, {self.opt[axis]}, {self.max[axis]}")
        return self


class ModelConfig(_Frozen):
    onnx: Path
    layout: Layout = "yolov8"
    input: InputProfile = InputProfile()
    precision: Precision = "fp32"
    calibration: Path | None = None
    stride: int = Field(default=32, gt=0, le=256)
    normalize: Literal["unit", "imagenet"] = "unit"  # unit: x/255
    channels: Literal[1, 3] = 3  # what the model eats; Mono8 frames are replicated to 3 channels


class NmsConfig(_Frozen):
    iou: float = Field(default=0.5, ge=0.0, le=1.0)
    class_agnostic: bool = False
    # more detections than this is no inspection result but noise, and its decode would miss the deadline
    max_detections: int = Field(default=100, gt=0, le=10_000)
    # An end-to-end export (layout end2end: YOLOv10, YOLO26) already ran NMS in its graph; a
    # second pass would merge overlapping detections the model kept on purpose and change the
    # counts ``min_count`` rules see. Its output is only capped at max_detections, unless this asks.
    rerun_on_end2end: bool = Field(
        default=False,
        description="layout end2end: run NMS again on the model's own detections (default: trust the graph's NMS)",
    )


class EngineOptions(_Frozen):
    """Where and how a model runs; from the station config, not the recipe."""

    backend: Literal["onnxruntime", "tensorrt"] = "onnxruntime"
    device: Literal["cpu", "cuda"] = "cpu"
    device_id: int = Field(default=0, ge=0, le=63)
    intra_op_threads: int = Field(default=0, ge=0)  # 0: runtime default
    # CPU engine: ORT's idle worker threads spin for work (its default) or sleep. On the 2-core CI
    # box sleeping cut the process from 1.6 to 0.9-1.0 cores at a paced 36 Hz, and the camera
    # thread's wait for a CPU from ~3 s to 0.1 s per run, with latency the same within the host's
    # run-to-run spread (``linecheck bench --no-cpu-spin``): for a box that also serves the HMI
    cpu_spin: bool = True
    cuda_graphs: bool = True  # the network replayed as a CUDA graph (one per input shape)
    # with cuda_graphs: letterbox kernel + network + decode captured as ONE graph per frame layout
    # (inference.gpu.fused); off: the steps are enqueued one by one (a model that cannot be captured
    # falls back by itself, this is for A/B and for cautious sites)
    whole_graph: bool = True
    # ORT CUDA provider ``prefer_nhwc``: convolutions in NHWC, the tensor cores' own layout, so
    # cuDNN needs no transposes around them. YOLOv8n-sized fp16 on the H100: network 0.76 against
    # 0.94 ms, detections unchanged (tests/gpu). A build without NHWC kernels falls back to NCHW.
    cuda_nhwc: bool = True
    # how host threads wait for the GPU (process-wide): CUDA's default ("auto") spins a core per
    # waiting thread; "block" sleeps instead, for hosts where busy cores cost more than a wake-up
    cuda_wait: Literal["auto", "spin", "yield", "block"] = "auto"
    # enqueue-only CUDA calls through libcuda holding the GIL (inference.gpu.enqueue): cheaper than
    # cuda-python's release and re-take in a process of many threads; off: cuda-python for every
    # call (process-wide, like cuda_wait; for A/B measurements)
    cuda_keep_gil: bool = True
    # extra ONNX Runtime CUDA provider options, passed as given; they win over the fields above
    # (e.g. {"prefer_nhwc": "0"} for an A/B)
    cuda_provider_options: dict[str, str] = Field(default_factory=dict)
    # CPU engine: a 3-channel model fed Mono8 frames runs with its first convolution folded to one
    # input channel (inference.mono_fold): the same result, a third of the tensor to write
    mono_fold: bool = True
    fp16: bool = False
    engine_cache_dir: Path = Path("var/engines")
    max_batch: int = Field(default=1, gt=0, le=64)
