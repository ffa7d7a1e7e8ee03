"""A decided part as the log row and the PLC/MES message (built on the hot path, before the
journal append and the PLC write, so kept to plain field copies)."""

from __future__ import annotations

import itertools
import json
import os
import time

from line.loop.decision import Verdict
from line.loop.lane import PartTicket
from line.recipes.model import Recipe
from line.results.log import ResultRecord, verdict_message
from plc.vocabulary import VerdictMessage

FAIL_SAFE_WRITE_GRACE_S = 0.010  # a fail-safe decided at the deadline may still take this long to write

# result ids: unique across restarts (a random per-process half) and cheap on the hot path
# (a counter half): uuid4 reads the OS entropy pool on every part
_ID_PREFIX = os.urandom(8).hex()
_ID_COUNTER = itertools.count(1)


def next_result_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"


def build_record(ticket: PartTicket, recipe: Recipe, verdict: Verdict, processing_us: int) -> ResultRecord:
    defects = [
        {"class": name, "confidence": round(float(c), 4), "box": [round(float(v), 1) for v in box]}
        for name, c, box in zip(verdict.class_names, verdict.defects.confidence, verdict.defects.xyxy, strict=True)
    ]
    return ResultRecord(
        result_id=next_result_id(),
        camera_id=ticket.camera_id,
        part_id=ticket.part_id,
        frame_id=ticket.frame_id,
        recipe_id=recipe.id,
        recipe_code=recipe.code,
        result_code=int(verdict.result_code),
        reason=verdict.reason,
        reject_mask=verdict.reject_mask,
        defect_count=verdict.defect_count,
        defects_json=json.dumps(defects),
        processing_us=processing_us,
        t_verdict_ns=time.time_ns(),
    )


def build_message(
    ticket: PartTicket, recipe: Recipe, verdict: Verdict, record: ResultRecord, now: float, image_ref: str
) -> VerdictMessage:
    """A real verdict must reach the PLC by the part's deadline; a fail-safe decided at the
    deadline gets a short grace to be written at all."""
    deadline = ticket.deadline if not verdict.reason else max(ticket.deadline, now) + FAIL_SAFE_WRITE_GRACE_S
    return verdict_message(record, verdict.defect_counts(), deadline=deadline, part_id=ticket.part_id & 0xFFFF,
                           image_ref=image_ref)  # fmt: skip
