"""Pure encoding of the vision <-> PLC register block."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plc.config import ModbusMap
from plc.registers import (
    contiguous_runs,
    decode_result,
    encode_result,
    encode_state,
    next_heartbeat,
    next_seq,
    plan_result_writes,
)
from plc.vocabulary import ResultCode, StatusBits
from tests.plc.conftest import verdict

M = ModbusMap()


@pytest.mark.parametrize(("seq", "nxt"), [(0, 1), (1, 2), (65534, 65535), (65535, 1), (70000, 1), (-3, 1)])
def test_seq_wraps_to_one_never_zero(seq: int, nxt: int) -> None:
    assert next_seq(seq) == nxt


@pytest.mark.parametrize(("hb", "nxt"), [(0, 1), (65535, 0), (7, 8)])
def test_heartbeat_wraps_to_zero(hb: int, nxt: int) -> None:
    assert next_heartbeat(hb) == nxt


def test_default_map_layout_matches_design() -> None:
    v = verdict(1, part_id=42, result_code=ResultCode.FAIL_SAFE_REJECT, reject_mask=0b101,
                defect_count=3, processing_us=0x12345)
    regs = encode_result(M, v, 9)
    assert regs == {3: 9, 4: 42, 5: 2, 6: 5, 7: 3, 8: 0x1, 9: 0x2345}
    assert encode_state(M, 70000, StatusBits.READY | StatusBits.RUNNING, 3) == {0: 70000 & 0xFFFF, 1: 3, 2: 3}


@pytest.mark.parametrize(
    ("field", "value", "reg", "expected"),
    [
        ("part_id", 65536 + 5, 4, 5),
        ("defect_count", 100000, 7, 65535),
        ("defect_count", -1, 7, 0),
        ("reject_mask", 0x1_0003, 6, 3),
    ],
)
def test_values_are_clamped_into_registers(field: str, value: int, reg: int, expected: int) -> None:
    assert encode_result(M, verdict(1, **{field: value}), 1)[reg] == expected


@pytest.mark.parametrize(("pus", "hi", "lo"), [(0, 0, 0), (65536, 1, 0), (2**32 + 5, 0xFFFF, 0xFFFF), (-4, 0, 0)])
def test_processing_us_uint32_high_word_first(pus: int, hi: int, lo: int) -> None:
    regs = encode_result(M, verdict(1, processing_us=pus), 1)
    assert (regs[8], regs[9]) == (hi, lo)


def test_seq_out_of_range_refused() -> None:
    with pytest.raises(ValueError):
        encode_result(M, verdict(1), 65536)


def test_default_map_writes_data_first_then_seq() -> None:
    regs = encode_result(M, verdict(1), 7)
    plan = plan_result_writes(M, regs)
    assert plan[-1] == (3, [7])
    assert plan[:-1] == [(4, [regs[a] for a in range(4, 10)])]
    assert plan_result_writes(M, regs, "single") == [(3, [regs[a] for a in range(3, 10)])]


def test_seq_at_block_end_goes_in_one_request() -> None:
    m = ModbusMap(part_id=3, result_code=4, reject_mask=5, defect_count=6, processing_us=7, result_seq=9)
    plan = plan_result_writes(m, encode_result(m, verdict(1), 5))
    assert len(plan) == 1 and plan[0][0] == 3 and plan[0][1][-1] == 5


def test_scattered_map_puts_seq_alone_and_last() -> None:
    m = ModbusMap(result_seq=50, part_id=60, result_code=61, reject_mask=70, defect_count=71, processing_us=80)
    plan = plan_result_writes(m, encode_result(m, verdict(1), 5), "single")
    assert [s for s, _ in plan] == [60, 70, 80, 50]


def test_overlapping_map_refused() -> None:
    with pytest.raises(ValueError):
        ModbusMap(processing_us=8, recipe_select=9)


@given(st.dictionaries(st.integers(0, 300), st.integers(0, 65535), max_size=40))
def test_contiguous_runs_cover_every_register_once(regs: dict[int, int]) -> None:
    runs = contiguous_runs(regs)
    flat = {s + i: v for s, vs in runs for i, v in enumerate(vs)}
    assert flat == regs
    for (s1, v1), (s2, _) in zip(runs, runs[1:], strict=False):
        assert s1 + len(v1) < s2  # runs are separated by a gap


@given(
    part=st.integers(0, 65535), code=st.sampled_from(list(ResultCode)), mask=st.integers(0, 65535),
    count=st.integers(0, 65535), pus=st.integers(0, 2**32 - 1), seq=st.integers(1, 65535),
)
def test_encode_decode_roundtrip(part: int, code: ResultCode, mask: int, count: int, pus: int, seq: int) -> None:
    v = verdict(1, part_id=part, result_code=code, reject_mask=mask, defect_count=count, processing_us=pus)
    got = decode_result(M, encode_result(M, v, seq))
    assert got == {"seq": seq, "part_id": part, "result_code": int(code), "reject_mask": mask,
                   "defect_count": count, "processing_us": pus}


def test_the_vocabulary_imports_no_protocol_stack() -> None:
    """line.loop.decision uses plc.vocabulary on the hot path's import chain: it must stay cheap."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    code = "import json, sys, plc.vocabulary; print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=repo,
                         env={**os.environ, "PYTHONPATH": str(repo)}).stdout  # fmt: skip
    loaded = set(json.loads(out))
    assert "plc" in loaded
    assert not loaded & {"pymodbus", "asyncua", "numpy", "pydantic", "line", "camera", "inference"}, loaded
