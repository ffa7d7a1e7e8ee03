"""Promotion of a shadowed candidate to production, and one-step rollback.

A promotion is a recipe switch: the recipe book prepares the recipe with the candidate's model
(loaded and warmed) and swaps one reference between two frames, exactly as for an operator's
switch, so no part is without a verdict and none is judged half by one model and half by the
other. The previous definition is kept on a per-recipe stack; rollback switches back to it.

The promotion changes the recipe held by the running station, not its YAML file: the file
stays the record of what was approved for the product, and a reload of the recipe folder (or a
restart) returns to it. docs/quality-loop.md says how to make a promotion permanent.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from line.recipes.book import RecipeBook, SwitchResult
from line.recipes.model import Recipe


@dataclass(frozen=True)
class PromotionResult:
    ok: bool
    recipe_id: str
    message: str
    model: str = ""


class Promoter:
    def __init__(self, book: RecipeBook, switch: Callable[[str, str, str], SwitchResult]) -> None:
        self.book = book
        self._switch = switch  # the station's request_switch (sets the SWITCHING status bit)
        self._previous: dict[str, list[Recipe]] = {}
        self._lock = threading.Lock()

    def promote(self, candidate: Recipe, user: str) -> PromotionResult:
        with self._lock:
            current = self.book.recipes.get(candidate.id)
            if current is None:
                return PromotionResult(False, candidate.id, f"unknown recipe {candidate.id!r}")
            result = self._replace(current, candidate, "qa-promote", user)
            if result.ok:
                self._previous.setdefault(candidate.id, []).append(current)
            return result

    def rollback(self, recipe_id: str, user: str) -> PromotionResult:
        with self._lock:
            stack = self._previous.get(recipe_id)
            current = self.book.recipes.get(recipe_id)
            if not stack or current is None:
                return PromotionResult(False, recipe_id, "nothing to roll back: no promotion of this recipe since start")
            result = self._replace(current, stack[-1], "qa-rollback", user)
            if result.ok:
                stack.pop()
            return result

    def can_rollback(self, recipe_id: str) -> bool:
        return bool(self._previous.get(recipe_id))

    def _replace(self, current: Recipe, new: Recipe, source: str, user: str) -> PromotionResult:
        self.book.recipes[new.id] = new
        active = self.book.active
        if active is None or active.recipe.id != new.id:  # not running now: used at its next switch
            return PromotionResult(True, new.id, "recipe updated (not active)", str(new.model.onnx))
        switched = self._switch(new.id, source, user)
        if not switched.ok:
            self.book.recipes[new.id] = current
            return PromotionResult(False, new.id, f"switch refused, {current.model.onnx.name} still decides: {switched.message}")
        return PromotionResult(True, new.id, "switched", str(new.model.onnx))
