"""The CUDA kernel sources compile on a bare runtime install only if every header they include
is one NVRTC is handed by name (it has no include path there); checked without a GPU."""

from __future__ import annotations

import re
from pathlib import Path

from inference.gpu import kernels

CU = Path(kernels.__file__).parent / "cu"


def test_every_included_header_is_handed_to_nvrtc() -> None:
    sources = sorted(CU.glob("*.cu"))
    assert sources
    for source in sources:
        included = re.findall(r'^#include\s+[<"]([^">]+)[">]', source.read_text(), re.MULTILINE)
        assert set(included) <= set(kernels.HEADERS), (source.name, included)


def test_the_fp16_conversions_are_defined_once() -> None:
    definitions = [p.name for p in sorted(CU.iterdir()) if "f32_to_f16(float" in p.read_text()]
    assert definitions == ["fp16.cuh"]
