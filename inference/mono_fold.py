"""A 3-channel model fed by a mono camera, folded to one input channel (CPU engine).

Inspection cameras are mostly Mono8, while detectors are trained and exported on RGB. A Mono8
frame reaches such a model as three identical planes. The first convolution computes
``sum_c W[:, c] * x_c``; with every ``x_c`` equal to the gray plane ``g`` that is
``(sum_c W[:, c]) * g``: the same network with one input channel and the first kernel summed
over its input channels. Zero padding stays zero on every channel, so the fold is exact for
the ``unit`` normalisation (x / 255); ImageNet normalisation subtracts a different mean per
channel and is left alone.

The engine also folds the unit normalisation's 1/255 into the same kernel (``scale``): the
folded model takes pixel values as they are, so the tensor is a plain uint8 → float32 cast
(0.18 against 0.29-0.31 ms at 512x640 on the 2-core CI box with cold caches, as every paced
frame finds them), not a cast and a multiply.

Why bother: at 512x640 the float32 tensor of three planes is 3.9 MB, written for every frame;
on the 2-core CI machine writing it (cache misses after the network has run) was most of the
CPU engine's 0.5 ms preprocess. One plane is 1.3 MB, and the first convolution does a third
of its multiply-adds. Models whose input feeds anything but one plain convolution (a
quantised weight, a grouped conv, a second consumer) are not folded.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def fold_mono_input(model: Any, scale: float = 1.0) -> tuple[Any | None, str]:
    """A copy of the ONNX ``model`` taking one input channel, its input multiplied by ``scale``
    inside the first kernel; or (None, why it cannot)."""
    from onnx import numpy_helper

    graph = model.graph
    if len(graph.input) == 0:
        return None, "the model has no input"
    name = graph.input[0].name
    dims = graph.input[0].type.tensor_type.shape.dim
    if len(dims) != 4 or dims[1].dim_value != 3:
        return None, "the input is not a 3-channel NCHW tensor"
    consumers = [n for n in graph.node if name in n.input]
    if len(consumers) != 1 or consumers[0].op_type != "Conv" or list(consumers[0].input[:1]) != [name]:
        return None, "the input does not feed exactly one convolution"
    conv = consumers[0]
    if any(a.name == "group" and a.i != 1 for a in conv.attribute):
        return None, "the first convolution is grouped"
    weight_name = conv.input[1]
    if sum(weight_name in n.input for n in graph.node) != 1:
        return None, "the first convolution's weight is shared"
    index = next((i for i, t in enumerate(graph.initializer) if t.name == weight_name), None)
    if index is None:
        return None, "the first convolution's weight is not a constant (quantised?)"
    weight = numpy_helper.to_array(graph.initializer[index])
    if weight.ndim != 4 or weight.shape[1] != 3:
        return None, f"unexpected first-kernel shape {weight.shape}"

    folded = type(model)()
    folded.CopyFrom(model)
    summed = (weight.astype(np.float64).sum(axis=1, keepdims=True) * scale).astype(weight.dtype)
    folded.graph.initializer[index].CopyFrom(numpy_helper.from_array(summed, weight_name))
    folded.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 1
    return folded, ""


def mono_session_bytes(path: str, scale: float = 1.0) -> tuple[bytes | None, str]:
    """The folded model of the ONNX file at ``path``, serialised for ``InferenceSession``."""
    try:
        import onnx
    except ImportError:
        return None, "the onnx package is not installed"
    folded, why = fold_mono_input(onnx.load(path), scale)
    return (folded.SerializeToString(), "") if folded is not None else (None, why)
