"""Pure encoding of the vision <-> PLC register block (docs/plc.md, handshake).

Everything here is a pure function over a ``ModbusMap`` so the server, the client, the PLC
simulator and the tests agree on one encoding.

Rules this module fixes (and documents, because a PLC programmer has to rely on them):

* ``result_seq`` counts 1..65535 and wraps to 1, never to 0: 0 is kept for "no result since
  power-up", so a PLC can tell a fresh device from a wrapped counter. A PLC acts on *any*
  change of ``result_seq`` (``seq != last_seq``), so the wrap needs no special case there.
* Values are clamped into their registers: ``part_id`` is taken modulo 65536 (it is an echo of
  a PLC counter of the same width), ``reject_mask`` keeps its low 16 bits, ``defect_count``
  saturates at 65535, ``processing_us`` is a uint32 (high word first) saturating at 2**32-1.
* Ordering: the PLC must never see a new ``result_seq`` together with old result data. A
  writer therefore puts ``result_seq`` in the *last* request of a result, or in the same
  request as the data only when it is the highest address of one contiguous block (one
  request is applied as a unit by the peer) or when the caller declares the peer applies a
  request atomically (``seq_write="single"``). See ``plan_result_writes``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from plc.config import ModbusMap
from plc.vocabulary import StatusBits, VerdictMessage

U16 = 0xFFFF
U32 = 0xFFFFFFFF
SEQ_MAX = 0xFFFF


def next_seq(seq: int) -> int:
    """The result_seq after ``seq``: 1..65535, wrapping to 1 (0 means "no result yet")."""
    return 1 if seq >= SEQ_MAX or seq < 1 else seq + 1


def next_heartbeat(value: int) -> int:
    """Heartbeat counts 0..65535 and wraps to 0; the PLC only watches that it changes."""
    return (value + 1) & U16


def encode_result(m: ModbusMap, verdict: VerdictMessage, seq: int) -> dict[int, int]:
    """Address -> value for one verdict, ``result_seq`` included."""
    if not 0 <= seq <= SEQ_MAX:
        raise ValueError(f"result_seq {seq} out of 0..65535")
    pus = min(max(int(verdict.processing_us), 0), U32)
    return {
        m.result_seq: seq,
        m.part_id: int(verdict.part_id) & U16,
        m.result_code: int(verdict.result_code) & U16,
        m.reject_mask: int(verdict.reject_mask) & U16,
        m.defect_count: min(max(int(verdict.defect_count), 0), U16),
        m.processing_us: (pus >> 16) & U16,
        m.processing_us + 1: pus & U16,
    }


def encode_state(m: ModbusMap, heartbeat: int, status: StatusBits | int, recipe_code: int) -> dict[int, int]:
    """Address -> value of the station-state registers (heartbeat, status, active recipe).

    Status bits (``StatusBits``): 1 ready, 2 running, 4 error (a camera, the PLC link or the
    storage is lost), 8 switching recipe, 16 fail-safe rate above its alarm limit, 32 alarm
    (at least one station alarm is active; the HMI and the OPC UA server name it)."""
    return {
        m.heartbeat: heartbeat & U16,
        m.status: int(status) & U16,
        m.active_recipe: int(recipe_code) & U16,
    }


def contiguous_runs(regs: Mapping[int, int]) -> list[tuple[int, list[int]]]:
    """Group address -> value into (start, values) runs of consecutive addresses, ascending."""
    runs: list[tuple[int, list[int]]] = []
    for addr in sorted(regs):
        if runs and runs[-1][0] + len(runs[-1][1]) == addr:
            runs[-1][1].append(regs[addr])
        else:
            runs.append((addr, [regs[addr]]))
    return runs


def plan_result_writes(
    m: ModbusMap, regs: Mapping[int, int], seq_write: Literal["separate", "single"] = "separate"
) -> list[tuple[int, list[int]]]:
    """The write requests (start, values), in order, that deliver one encoded result.

    One request when the whole result is one contiguous block and either ``result_seq`` is its
    highest address or the peer applies a request atomically (``seq_write="single"``).
    Otherwise the data runs first and ``result_seq`` alone last; the caller sends the next
    request only after the previous one was acknowledged, so the seq change is the last thing
    the PLC can observe. With the default map (seq at 3, data at 4..9) "separate" gives
    ``[(4, data), (3, [seq])]``.
    """
    runs = contiguous_runs(regs)
    if len(runs) == 1:
        start, values = runs[0]
        if start + len(values) - 1 == m.result_seq or seq_write == "single":
            return runs
    data = {a: v for a, v in regs.items() if a != m.result_seq}
    return [*contiguous_runs(data), (m.result_seq, [regs[m.result_seq]])]


def decode_result(m: ModbusMap, regs: Mapping[int, int]) -> dict[str, int]:
    """Inverse of ``encode_result`` (what a PLC reads); used by the simulator and tests."""
    return {
        "seq": regs[m.result_seq],
        "part_id": regs[m.part_id],
        "result_code": regs[m.result_code],
        "reject_mask": regs[m.reject_mask],
        "defect_count": regs[m.defect_count],
        "processing_us": (regs[m.processing_us] << 16) | regs[m.processing_us + 1],
    }


def result_addresses(m: ModbusMap) -> list[int]:
    """Every register written per verdict (result_seq included), ascending."""
    return sorted(
        [
            m.result_seq,
            m.part_id,
            m.result_code,
            m.reject_mask,
            m.defect_count,
            m.processing_us,
            m.processing_us + 1,
        ]
    )


def span(addresses: list[int]) -> tuple[int, int]:
    """(start, count) of the smallest read covering ``addresses``."""
    lo, hi = min(addresses), max(addresses)
    return lo, hi - lo + 1
