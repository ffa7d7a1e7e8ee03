"""ONNX precision conversion (fp32 → fp16) for runtimes that take types from the graph.

Why: TensorRT-RTX builds *strongly typed* networks (no BuilderFlag.FP16: the ONNX's own
tensor types decide), and ONNX Runtime's CUDA provider runs the graph as typed. So an fp16
engine starts from an fp16 ONNX, made here with ``onnxconverter_common.float16`` (PyPI
``onnxconverter-common``) when installed, else a minimal built-in conversion for conv nets. Inputs and outputs become fp16 too (``keep_io_types=False``): the
preprocess kernel writes fp16 directly and the decode kernel reads fp16, halving both copies.
Ops that must stay fp32 for range (Resize scales, Range, shape arithmetic) are left alone by
the converter's default block list.

The result is cached next to the engines by the source's sha256, so it is made once.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Literal


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# Ops kept in fp32 on top of the converter's defaults: Range builds anchor grids from
# shapes (fp16 loses integer exactness past 2048, and TensorRT-RTX rejects mixed-type Range).
_KEEP_FP32 = ("Range",)


def _converter() -> Any:
    try:
        from onnxconverter_common import float16 as conv2
    except ImportError:
        return None

    def convert(model: Any, keep_io_types: bool) -> Any:
        block = list(conv2.DEFAULT_OP_BLOCK_LIST) + [
            op for op in _KEEP_FP32 if op not in conv2.DEFAULT_OP_BLOCK_LIST
        ]
        return conv2.convert_float_to_float16(model, keep_io_types=keep_io_types, op_block_list=block)

    return convert


def convert_to_fp16(model: Any) -> Any:
    """fp32 ONNX ModelProto → fp16 ModelProto (I/O fp16 as well)."""
    convert = _converter()
    if convert is None:
        return _convert_fallback(model)
    with warnings.catch_warnings():  # one "truncated to 1e-07" warning per tiny weight
        warnings.simplefilter("ignore", UserWarning)
        converted = convert(model, keep_io_types=False)
    return _retarget_casts(converted)


def _retarget_casts(model: Any) -> Any:
    """Fix what onnxconverter-common leaves behind around ``Cast`` nodes.

    1. ``Cast(to=float)`` nodes (int shape arithmetic → float anchors) whose output it already
       declared fp16: ONNX Runtime refuses such a model with a type error. They now cast to fp16.
    2. Where such an int → fp16 value then feeds a node kept in fp32 (``Range`` building the
       anchor grid) through ``Cast(to=float)``, the fp32 cast now reads the int directly: no
       fp16 round trip on shape values (inexact past 2048; TensorRT-RTX also fails to build it).
    """
    from onnx import TensorProto

    graph = model.graph
    declared = {vi.name: vi.type.tensor_type.elem_type for vi in list(graph.value_info) + list(graph.output)}
    producer = {out: node for node in graph.node for out in node.output}
    int_to_half: dict[str, str] = {}  # fp16 tensor made by casting an int tensor → that int tensor
    for node in graph.node:
        if node.op_type != "Cast" or declared.get(node.output[0]) != TensorProto.FLOAT16:
            continue
        for attr in node.attribute:
            if attr.name == "to" and attr.i == TensorProto.FLOAT:
                attr.i = TensorProto.FLOAT16
        src = producer.get(node.input[0])
        src_type = declared.get(node.input[0])
        if src_type in (TensorProto.INT64, TensorProto.INT32) or (
            src is not None and src.op_type in ("Shape", "Gather")
        ):
            int_to_half[node.output[0]] = node.input[0]
    for node in graph.node:
        to_float = any(a.name == "to" and a.i == TensorProto.FLOAT for a in node.attribute)
        if node.op_type == "Cast" and node.input[0] in int_to_half and to_float:
            node.input[0] = int_to_half[node.input[0]]
    return model


def _convert_fallback(model: Any) -> Any:
    """Minimal fp16 conversion for conv nets when no converter package is installed.

    Initializers and float tensors (value infos, I/O) become fp16; Cast-to-float nodes are
    retargeted. Enough for Conv/BN/SiLU/Concat/Resize(by sizes)/Softmax YOLO graphs; the
    tests check the converted model against the fp32 one numerically.
    """
    import numpy as np
    import onnx
    from onnx import TensorProto, numpy_helper

    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    keep_fp32_inputs = {"Resize": {1, 2}, "Upsample": {1}}  # roi/scales must stay float32
    protected: set[str] = set()
    for node in graph.node:
        for idx in keep_fp32_inputs.get(node.op_type, ()):
            if idx < len(node.input):
                protected.add(node.input[idx])
    for init in graph.initializer:
        if init.data_type == TensorProto.FLOAT and init.name not in protected:
            arr = numpy_helper.to_array(init).astype(np.float16)
            init.CopyFrom(numpy_helper.from_array(arr, init.name))
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if (
                    attr.name == "value"
                    and attr.t.data_type == TensorProto.FLOAT
                    and node.output[0] not in protected
                ):
                    arr = numpy_helper.to_array(attr.t).astype(np.float16)
                    attr.t.CopyFrom(numpy_helper.from_array(arr, attr.t.name))
        if node.op_type == "Cast":
            for attr in node.attribute:
                if attr.name == "to" and attr.i == TensorProto.FLOAT:
                    attr.i = TensorProto.FLOAT16
    for vi in list(graph.input) + list(graph.output) + list(graph.value_info):
        if vi.type.tensor_type.elem_type == TensorProto.FLOAT and vi.name not in protected:
            vi.type.tensor_type.elem_type = TensorProto.FLOAT16
    return model


def fp16_model_path(source: Path, cache_dir: Path) -> Path:
    """Path of the fp16 variant of ``source`` (converted and cached on first use)."""
    import onnx

    digest = sha256_file(source)
    target = Path(cache_dir) / f"{source.stem}-{digest[:16]}-fp16.onnx"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    model = convert_to_fp16(onnx.load(str(source)))
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".onnx.tmp")
    os.close(fd)
    try:
        onnx.save(model, tmp)
        os.replace(tmp, target)  # atomic: a crash never leaves a half-written model
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _calibration_tensors(model: Any, limit: int = 64) -> list[Any]:
    """Calibration images → input tensors through the CPU reference preprocessing."""
    import cv2

    from inference.letterbox import LetterboxCanvas, compute_geometry, to_tensor

    files = sorted(
        p for p in Path(model.calibration).iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp")
    )
    tensors = []
    for path in files[:limit]:
        img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE if model.channels == 1 else cv2.IMREAD_COLOR)
        if img is None:
            continue
        order: Literal["L", "BGR"] = "L" if img.ndim == 2 else "BGR"
        geometry = compute_geometry(img.shape[0], img.shape[1], model.input, model.stride)
        canvas = LetterboxCanvas(geometry, 1 if img.ndim == 2 else 3).fill(img)
        tensors.append(
            to_tensor(canvas, order=order, channels=model.channels, normalize=model.normalize).copy()
        )
    if not tensors:
        raise ValueError(f"{model.calibration}: no readable calibration images")
    return tensors


def quantize_with_images(model: Any, cache_dir: Path) -> Path:
    """INT8 by explicit quantization: a QDQ ONNX calibrated on the recipe's images (cached).

    Uses onnxruntime's ``quantize_static`` (QDQ format, per-channel weights, symmetric int8
    activations) — the form TensorRT's explicit-quantization path and strongly typed
    runtimes take, where implicit calibration (IInt8Calibrator) is deprecated or absent.
    """
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    digest = sha256_file(Path(model.onnx))
    target = Path(cache_dir) / f"{Path(model.onnx).stem}-{digest[:16]}-int8-qdq.onnx"
    if target.is_file():
        return target
    tensors = _calibration_tensors(model)
    import onnx

    input_name = onnx.load(str(model.onnx), load_external_data=False).graph.input[0].name

    class _Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._it = iter(tensors)

        def get_next(self) -> dict[str, Any] | None:
            t = next(self._it, None)
            return None if t is None else {input_name: t}

    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".onnx.tmp")
    os.close(fd)
    try:
        quantize_static(
            str(model.onnx),
            tmp,
            _Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False},
        )
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target
