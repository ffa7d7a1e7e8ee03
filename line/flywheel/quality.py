"""What the reviews say: measured false-reject rate, escapes per class, a threshold curve per
class; and how a candidate model would have done on the same reviewed parts.

Ground truth comes from the latest review of each capture: ``confirm`` and ``missed`` make the
part bad (``missed`` boxes are defects the model did not report), ``false`` and ``good`` make it
good. The reviewed set is what the capture policy kept (every reject, the uncertain ones, a
sample of passes), not a random sample of the line: rates over it are the evidence QA has, and
docs/quality-loop.md says how to read them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from line.flywheel.store import Capture
from line.loop.decision import Verdict
from plc.vocabulary import ResultCode

BAD = frozenset({"confirm", "missed"})
CURVE_STEPS = tuple(round(i * 0.05, 2) for i in range(21))


def part_is_bad(capture: Capture) -> bool | None:
    return None if capture.review is None else capture.review["decision"] in BAD


def review_summary(captures: Iterable[Capture]) -> dict[str, Any]:
    reviewed = [c for c in captures if c.review is not None]
    rejects = [c for c in reviewed if c.verdict == "REJECT"]
    passes = [c for c in reviewed if c.verdict == "PASS"]
    false_rejects = [c for c in rejects if c.review and c.review["decision"] in ("false", "good")]
    escapes: Counter[str] = Counter()
    for c in reviewed:
        if c.review and c.review["decision"] == "missed":
            escapes.update(str(b.get("class", "?")) for b in c.review.get("boxes", []) or [{"class": "?"}])
    escaped_parts = [c for c in passes if part_is_bad(c)]
    return {
        "reviewed": len(reviewed), "reviewed_rejects": len(rejects), "reviewed_passes": len(passes),
        "false_rejects": len(false_rejects),
        "false_reject_rate": round(len(false_rejects) / len(rejects), 4) if rejects else None,
        "escaped_parts": len(escaped_parts),
        "escape_rate": round(len(escaped_parts) / len(passes), 4) if passes else None,
        "escapes_by_class": dict(escapes),
        "threshold_curves": threshold_curves(reviewed),
    }  # fmt: skip


def threshold_curves(reviewed: list[Capture]) -> dict[str, list[dict[str, float | int]]]:
    """Per class and threshold: how many of the model's reported boxes on bad parts (true) and on
    good parts (false) that threshold would keep, and the missed boxes no threshold brings back.
    Only scores at or above the threshold in force were reported, so the curve says what a
    higher threshold would cost and gain; below the current one it is flat."""
    per_class: dict[str, list[tuple[float, bool]]] = {}
    missed: Counter[str] = Counter()
    for c in reviewed:
        bad = part_is_bad(c)
        for det in c.detections:
            per_class.setdefault(det["class"], []).append((float(det["confidence"]), bool(bad)))
        if c.review and c.review["decision"] == "missed":
            missed.update(str(b.get("class", "?")) for b in c.review.get("boxes", []))
    curves = {}
    for name in sorted(set(per_class) | set(missed)):
        scores = per_class.get(name, [])
        curves[name] = [{"threshold": t, "true_kept": sum(1 for s, b in scores if b and s >= t),
                         "false_kept": sum(1 for s, b in scores if not b and s >= t),
                         "missed": missed[name]} for t in CURVE_STEPS]  # fmt: skip
    return curves


def rates(truth_and_verdicts: Iterable[tuple[bool, ResultCode]]) -> dict[str, Any]:
    """False-reject and escape rates of verdicts against reviewed truth (bad part or not)."""
    good = bad = false_rejects = escapes = 0
    for is_bad, code in truth_and_verdicts:
        rejected = code is not ResultCode.PASS
        if is_bad:
            bad += 1
            escapes += not rejected
        else:
            good += 1
            false_rejects += rejected
    return {"good_parts": good, "bad_parts": bad, "false_rejects": false_rejects, "escapes": escapes,
            "false_reject_rate": round(false_rejects / good, 4) if good else None,
            "escape_rate": round(escapes / bad, 4) if bad else None}  # fmt: skip


def estimate(reviewed: list[Capture], judge: Callable[[Capture], Verdict]) -> dict[str, dict[str, Any]]:
    """Production's verdicts (as captured) and a candidate's (``judge``, run again on each
    capture's picture) against the reviewed truth."""
    production, candidate = [], []
    for c in reviewed:
        bad = part_is_bad(c)
        if bad is None:
            continue
        production.append((bad, ResultCode.PASS if c.verdict == "PASS" else ResultCode.REJECT))
        candidate.append((bad, judge(c).result_code))
    return {"production": rates(production), "candidate": rates(candidate)}
