"""Promotion of a shadowed candidate to production, and one-step rollback, both persistent.

A promotion rewrites the recipe's YAML file with the candidate's model (and thresholds), so a
restart or a reload of the recipe folder keeps the promoted model; the model it replaced is
kept in a rollback record beside the recipes (``.promotions/<recipe id>.json``, with who and
when), so the one-step rollback survives a restart too. Files are replaced atomically (temp
file, fsync, rename, fsync of the folder): a crash leaves the old file or the new one, never
half of one. The rewrite is a round trip through ruamel.yaml, which keeps the file's comments
and layout: the file stays the document people read.

The running station follows as for an operator's switch: the recipe book prepares the new
definition (loaded and warmed) and swaps one reference between two frames, so no part is
without a verdict and none is judged half by one model and half by the other. The file is
written before the book is told, under the book's folder lock, so the recipe folder watcher
reloads either the old file or the new one and always finds the book agreeing with it; a
refused switch writes the old file back.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from line.errors import ConfigError
from line.recipes.book import RecipeBook, SwitchResult, load_recipe
from line.recipes.model import Recipe

ROLLBACK_FOLDER = ".promotions"  # a subfolder: the book and its watcher read only *.yaml at the top


@dataclass(frozen=True)
class PromotionResult:
    ok: bool
    recipe_id: str
    message: str
    model: str = ""


@dataclass(frozen=True)
class RollbackRecord:
    """What a promotion replaced, as the recipe file said it, and what it put there."""

    recipe_id: str
    previous_onnx: str  # as written in the file (relative paths stay relative)
    previous_thresholds: dict[str, float] | None  # None: the file had no thresholds key
    promoted_onnx: str  # absolute
    user: str
    t_ns: int


class Promoter:
    def __init__(self, book: RecipeBook, switch: Callable[[str, str, str], SwitchResult]) -> None:
        self.book = book
        self._switch = switch  # the station's request_switch (sets the SWITCHING status bit)
        self._lock = threading.Lock()
        self._yaml = YAML()  # round trip: comments and key order survive
        self._yaml.preserve_quotes = True
        self._yaml.width = 4096

    # --- the actions --------------------------------------------------------------------------
    def promote(self, candidate: Recipe, user: str) -> PromotionResult:
        with self._lock:
            current = self.book.recipes.get(candidate.id)
            path = self.book.files.get(candidate.id)
            if current is None or path is None:
                return PromotionResult(False, candidate.id, f"unknown recipe {candidate.id!r}")
            try:
                original = path.read_text()
                data = self._yaml.load(original)
                model = data["model"]
                record = RollbackRecord(candidate.id, str(model["onnx"]), _plain(data.get("thresholds")),
                                        str(candidate.model.onnx), user, time.time_ns())  # fmt: skip
                model["onnx"] = _as_written(candidate.model.onnx, path.parent)
                if candidate.thresholds != current.thresholds:
                    data["thresholds"] = dict(candidate.thresholds)
            except (OSError, KeyError, TypeError, ValueError) as exc:
                return PromotionResult(False, candidate.id, f"cannot rewrite {path.name}: {exc}")
            return self._replace(current, path, original, self._dump(data), candidate, record, "qa-promote", user)

    def rollback(self, recipe_id: str, user: str) -> PromotionResult:
        with self._lock:
            record = self.rollback_record(recipe_id)
            current = self.book.recipes.get(recipe_id)
            path = self.book.files.get(recipe_id)
            if record is None or current is None or path is None:
                return PromotionResult(False, recipe_id, "nothing to roll back: this recipe's model was not promoted")
            if str(current.model.onnx) != record.promoted_onnx:
                return PromotionResult(False, recipe_id, f"{path.name} names {current.model.onnx.name} now, not the promoted "
                                                         f"{Path(record.promoted_onnx).name}: edited since the promotion")  # fmt: skip
            try:
                original = path.read_text()
                data = self._yaml.load(original)
                data["model"]["onnx"] = record.previous_onnx
                if record.previous_thresholds is None:
                    data.pop("thresholds", None)
                else:
                    data["thresholds"] = record.previous_thresholds
            except (OSError, KeyError, TypeError, ValueError) as exc:
                return PromotionResult(False, recipe_id, f"cannot rewrite {path.name}: {exc}")
            return self._replace(current, path, original, self._dump(data), None, None, "qa-rollback", user)

    def can_rollback(self, recipe_id: str) -> bool:
        return self.rollback_record(recipe_id) is not None

    def rollback_record(self, recipe_id: str) -> RollbackRecord | None:
        try:
            raw = json.loads(self._record_path(recipe_id).read_text())
            return RollbackRecord(**raw)
        except (OSError, ValueError, TypeError):  # none, or unreadable: nothing to roll back to
            return None

    # --- the file, then the station ---------------------------------------------------------
    def _replace(self, current: Recipe, path: Path, original: str, text: str, expected: Recipe | None,
                 record: RollbackRecord | None, source: str, user: str) -> PromotionResult:  # fmt: skip
        with self.book.folder_lock:  # the watcher reloads before or after this, never during
            try:
                new = self._checked(path, text)
            except ConfigError as exc:
                return PromotionResult(False, current.id, "; ".join(f"{path.name}: {p.path}: {p.reason}" for p in exc.problems))
            if expected is not None and new != expected:
                return PromotionResult(False, current.id, f"{path.name} changed since the candidate was registered; "
                                                          "register it again")  # fmt: skip
            previous_record = self.rollback_record(current.id)
            try:
                if record is not None:
                    _write_atomic(self._record_path(current.id), json.dumps(record.__dict__, indent=1) + "\n")
                _write_atomic(path, text)
            except OSError as exc:
                self._restore_record(current.id, previous_record)
                return PromotionResult(False, current.id, f"cannot write {path}: {exc}")
            if record is None:
                self._record_path(current.id).unlink(missing_ok=True)
            self.book.recipes[new.id] = new
        active = self.book.active
        if active is None or active.recipe.id != new.id:  # not running now: used at its next switch
            return PromotionResult(True, new.id, "recipe file updated (not active)", str(new.model.onnx))
        switched = self._switch(new.id, source, user)
        if switched.ok:
            return PromotionResult(True, new.id, "switched", str(new.model.onnx))
        with self.book.folder_lock:  # the old file back: what decides and what the file says agree
            _write_atomic(path, original)
            self._restore_record(current.id, previous_record)
            self.book.recipes[new.id] = current
        return PromotionResult(False, new.id, f"switch refused, {current.model.onnx.name} still decides: {switched.message}")

    def _checked(self, path: Path, text: str) -> Recipe:
        """The rewritten file as the book will load it, validated before it replaces the file
        (the temp name is not *.yaml, so the watcher never reads it)."""
        probe = path.with_name(f".{path.name}.check")
        try:
            probe.write_text(text)
            return load_recipe(probe, check_model=self.book.check_models)
        finally:
            probe.unlink(missing_ok=True)

    def _record_path(self, recipe_id: str) -> Path:
        return self.book.directory / ROLLBACK_FOLDER / f"{recipe_id}.json"

    def _restore_record(self, recipe_id: str, record: RollbackRecord | None) -> None:
        if record is None:
            self._record_path(recipe_id).unlink(missing_ok=True)
        else:
            _write_atomic(self._record_path(recipe_id), json.dumps(record.__dict__, indent=1) + "\n")

    def _dump(self, data: Any) -> str:
        out = io.StringIO()
        self._yaml.dump(data, out)
        return out.getvalue()


def _as_written(model: Path, folder: Path) -> str:
    """Relative to the recipe folder when the model lies inside it (the folder stays movable)."""
    try:
        return str(model.resolve().relative_to(folder.resolve()))
    except ValueError:
        return str(model)


def _plain(thresholds: Any) -> dict[str, float] | None:
    return None if thresholds is None else {str(k): float(v) for k, v in thresholds.items()}


def _write_atomic(path: Path, text: str) -> None:
    """Temp file in the same folder, fsync, rename over ``path``, fsync the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    with contextlib.suppress(OSError):  # not every file system lets a folder be opened
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
