"""From detections to a verdict, by the recipe: ROI and ignore masks, minimum area, reject rules.

Pure functions over arrays so they can be table-tested (supervision's habit). Thresholds per
class were already applied by the engine's decoder; what is decided here is *where* a defect
counts and *which bin* the part goes to. The first reject rule that matches decides the bin.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inference.detections import Detections
from line.recipes.model import Recipe
from plc.vocabulary import FailSafeReason, ResultCode


@dataclass(frozen=True)
class Verdict:
    result_code: ResultCode
    reject_bin: int  # 0 when the part passes or no rule applies
    reject_mask: int
    defects: Detections  # detections that count (inside ROI, outside ignore masks)
    class_names: tuple[str, ...]  # per detection in ``defects``
    reason: FailSafeReason | str = ""  # a FailSafeReason when failed safe, "" when decided

    @property
    def defect_count(self) -> int:
        return len(self.defects)

    def defect_counts(self) -> tuple[tuple[str, int], ...]:
        counts: dict[str, int] = {}
        for name in self.class_names:
            counts[name] = counts.get(name, 0) + 1
        return tuple(sorted(counts.items()))


@dataclass(frozen=True)
class _CompiledRule:
    class_lut: np.ndarray  # bool per class id: a table lookup is ~10x cheaper than np.isin per part
    bin: int
    min_area_px: float
    min_count: int


class DecisionPolicy:
    """A recipe's decision logic compiled once (class ids, rects as arrays)."""

    def __init__(self, recipe: Recipe) -> None:
        self.recipe = recipe
        index = {name: i for i, name in enumerate(recipe.classes)}
        self._rules = tuple(
            _CompiledRule(_class_lut([index[c] for c in r.classes], len(recipe.classes)), r.bin, r.min_area_px, r.min_count)
            for r in recipe.reject
        )
        self._roi = np.array(recipe.roi, np.float32).reshape(-1, 4) if recipe.roi else None
        self._ignore = np.array(recipe.ignore, np.float32).reshape(-1, 4)

    def counted(self, detections: Detections) -> Detections:
        """Detections whose box centre lies inside an ROI and outside every ignore rectangle."""
        if len(detections) == 0:
            return detections
        cx = (detections.xyxy[:, 0] + detections.xyxy[:, 2]) / 2
        cy = (detections.xyxy[:, 1] + detections.xyxy[:, 3]) / 2
        keep = np.ones(len(detections), bool) if self._roi is None else _inside_any(cx, cy, self._roi)
        if len(self._ignore):
            keep &= ~_inside_any(cx, cy, self._ignore)
        return detections[keep]

    def decide(self, detections: Detections) -> Verdict:
        if len(detections) == 0:  # the common case on a good line: no array work at all
            return Verdict(ResultCode.PASS, 0, 0, detections, ())
        defects = self.counted(detections)
        names = tuple(self.recipe.classes[int(c)] for c in defects.class_id)
        area = defects.area
        for rule in self._rules:
            hit = rule.class_lut[defects.class_id] & (area >= rule.min_area_px)
            if int(hit.sum()) >= rule.min_count:
                return Verdict(ResultCode.REJECT, rule.bin, 1 << (rule.bin - 1), defects, names)
        return Verdict(ResultCode.PASS, 0, 0, defects, names)

    def fail_safe(self, reason: FailSafeReason | str) -> Verdict:
        """The recipe's fail-safe result; ``reason`` must name a :class:`FailSafeReason` (a
        misspelt reason fails here, not as an unknown label in the log and on the PLC)."""
        code = ResultCode.FAIL_SAFE_REJECT if self.recipe.fail_safe == "reject" else ResultCode.HOLD
        return Verdict(code, 0, 0, Detections.empty(), (), FailSafeReason(reason))


def _class_lut(class_ids: list[int], n_classes: int) -> np.ndarray:
    lut = np.zeros(n_classes, bool)
    lut[class_ids] = True
    return lut


def _inside_any(cx: np.ndarray, cy: np.ndarray, rects: np.ndarray) -> np.ndarray:
    x, y, w, h = (rects[:, i][None, :] for i in range(4))
    inside = (cx[:, None] >= x) & (cx[:, None] < x + w) & (cy[:, None] >= y) & (cy[:, None] < y + h)
    return np.asarray(inside.any(axis=1))
