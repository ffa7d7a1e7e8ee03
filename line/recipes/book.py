"""Recipes: loading and validation (file, field path, reason), and the ``RecipeBook`` that
holds the active recipe and switches it atomically between two frames.

A switch prepares the new recipe completely first (engine loaded and warmed with a frame of
its input shape, camera settings validated by the caller's hook) and only then replaces one
reference; the station reads that reference once per frame, so no part is ever judged by half
a recipe. A failed preparation leaves the active recipe in place and returns the reason.
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from pydantic import ValidationError

from inference.engine import Engine, ImageInput
from line.errors import ConfigError, Problem, problems_from_validation
from line.loop.decision import DecisionPolicy
from line.recipes.model import Recipe

log = logging.getLogger(__name__)


# A recipe or station file is a page or two of YAML. The limit is checked before parsing: a
# multi-megabyte file took a minute to validate and would hold up a recipe folder reload.
MAX_FILE_BYTES = 256 * 1024

STATION_KEYS = frozenset({"station", "recipes", "cameras", "engine", "plc", "opcua_server", "storage", "hmi"})
RECIPE_KEYS = frozenset(Recipe.model_fields) - {"camera"}  # ``camera`` (one) is a recipe's sensor block


def file_kind(path: Path, data: object) -> str:
    """``station``, ``recipe`` or ``opcua_fragment``, told from the top-level keys; a file that
    has keys of both kinds, or of neither, is one problem, not a list of misleading ones
    (a station file with ``camera:`` for ``cameras:`` is still a station file)."""
    if not isinstance(data, dict):
        raise ConfigError([Problem(str(path), "", "expected a YAML mapping (a station config or a recipe)")])
    keys = {str(k) for k in data}
    if keys == {"opcua_server"}:
        return "opcua_fragment"
    station, recipe = sorted(keys & STATION_KEYS), sorted(keys & RECIPE_KEYS)
    if station and not recipe:
        return "station"
    if recipe and not station:
        return "recipe"
    if station and recipe:
        why = f"it has station keys {station} and recipe keys {recipe}"
    else:
        why = f"none of its keys {sorted(keys)} is a station key (cameras, station, plc, ...) or a recipe key (id, code, model, ...)"
    raise ConfigError([Problem(str(path), "", f"cannot tell whether this is a station config or a recipe: {why}")])


def read_yaml(path: Path) -> object:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ConfigError([Problem(str(path), "", f"cannot read: {exc.strerror or exc}")]) from None
    except ValueError as exc:  # a NUL byte in the name
        raise ConfigError([Problem(str(path), "", f"cannot read: {exc}")]) from None
    if size > MAX_FILE_BYTES:
        raise ConfigError([Problem(str(path), "", f"file is {size // 1024} KiB; the limit is {MAX_FILE_BYTES // 1024} KiB")])
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError([Problem(str(path), "", f"cannot read: {exc.strerror or exc}")]) from None
    except UnicodeDecodeError as exc:  # e.g. saved as Latin-1 by an editor: one bad file, not a crash
        raise ConfigError([Problem(str(path), f"byte {exc.start}", f"not UTF-8 text: {exc.reason}")]) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        raise ConfigError([Problem(str(path), where, f"invalid YAML: {getattr(exc, 'problem', exc)}")]) from None


def load_recipe(path: Path, check_model: bool = True) -> Recipe:
    """Parse and validate one recipe file; relative model paths resolve against the file."""
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError([Problem(str(path), "", "a recipe must be a YAML mapping")])
    if set(data) & STATION_KEYS and not set(data) & RECIPE_KEYS:
        raise ConfigError([Problem(str(path), "", "this is a station config, not a recipe")])
    model = data.get("model")
    if isinstance(model, dict):
        for key in ("onnx", "calibration"):
            if isinstance(model.get(key), str) and not Path(model[key]).is_absolute():
                model[key] = str(absolute(path.parent, model[key]))
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(problems_from_validation(path, exc)) from None
    if check_model:
        problems = model_problems(recipe)
        if problems:
            raise ConfigError([Problem(str(path), "model.onnx", p) for p in problems])
    return recipe


def absolute(base: Path, value: str) -> Path:
    """``base / value`` resolved; as written when the OS refuses the name (a NUL byte, a name
    too long), so that validation reports it instead of a traceback escaping."""
    try:
        return (base / value).resolve()
    except (OSError, ValueError):
        return base / value


def model_problems(recipe: Recipe) -> list[str]:
    try:
        found = recipe.model.onnx.exists()
    except (OSError, ValueError) as exc:  # NUL byte, name too long
        return [f"unusable model path: {exc}"]
    if not found:
        return [f"model file not found: {recipe.model.onnx}"]
    from inference.model_check import check_model

    return check_model(recipe.detector_spec())


def engine_latency_ms(engine: Engine, height: int, width: int, pixel_format: str, batch: int = 1, runs: int = 5,
                      clock: Callable[[], float] = time.perf_counter) -> float:  # fmt: skip
    """Median time of ``runs`` calls of a warmed engine on a blank frame of the production shape:
    what one cycle costs at least (a real frame with detections decodes a little longer)."""
    channels = 4 if pixel_format == "RGBa8" else 3 if pixel_format in ("RGB8", "BGR8") else 1
    image = ImageInput(np.zeros((height, width) if channels == 1 else (height, width, channels), np.uint8), pixel_format)
    times = []
    for _ in range(max(1, runs)):
        t0 = clock()
        engine.detect([image] * batch)
        times.append((clock() - t0) * 1000.0)
    return float(statistics.median(times))


def budget_problem(recipe: Recipe, measured_ms: float) -> str | None:
    """The reason a recipe cannot meet its cycle budget on this engine, or None."""
    if measured_ms <= recipe.cycle_budget_ms:
        return None
    return (f"recipe {recipe.id}: the engine takes {measured_ms:.1f} ms per frame, over its cycle_budget_ms "
            f"{recipe.cycle_budget_ms:g}: every part would be a fail-safe")  # fmt: skip


@dataclass
class PreparedRecipe:
    recipe: Recipe
    engine: Engine
    policy: DecisionPolicy
    prepare_s: float

    def close(self) -> None:
        self.engine.close()


@dataclass(frozen=True)
class SwitchResult:
    ok: bool
    recipe_id: str
    message: str
    prepare_s: float = 0.0
    switch_s: float = 0.0  # request -> swap (waiting for another switch + preparation)


@dataclass(frozen=True)
class SwitchAudit:
    """One switch request as audited (result log event, OPC UA event, HMI), refused ones too."""

    t_ns: int  # wall clock of the swap (or of the refusal)
    from_id: str | None
    to_id: str
    source: str  # hmi | cli | plc | opcua | startup | ...
    user: str
    ok: bool
    message: str
    prepare_s: float  # engine load + warm-up (0 for a warm recipe)
    switch_s: float  # request -> swap
    warm: bool  # was already prepared


@dataclass(frozen=True)
class PrepareProgress:
    """What a cold preparation is doing now (the HMI shows it while the operator waits)."""

    recipe_id: str
    stage: str  # camera | engine | warmup | done | failed
    step: int
    steps: int
    started_ns: int


EngineFactory = Callable[[Recipe], Engine]
Hook = Callable[[Recipe], None]


class RecipeBook:
    """All recipes of a folder; invalid files are listed with their problems, never active."""

    def __init__(
        self,
        directory: Path,
        engine_factory: EngineFactory,
        warm_max: int = 2,
        validate_camera: Hook | None = None,
        warm_shape: tuple[int, int, str] | None = None,
        check_models: bool = True,
        warm_batch: int = 1,
    ) -> None:
        self.check_models = check_models
        self.directory = directory
        self._engine_factory = engine_factory
        self._validate_camera = validate_camera
        self.warm_shape = warm_shape
        self.warm_batch = warm_batch  # the batch the station runs (cameras batched, padded)
        self.warm_max = warm_max
        self.recipes: dict[str, Recipe] = {}
        self.files: dict[str, Path] = {}
        self.invalid: dict[str, list[Problem]] = {}
        self._warm: OrderedDict[str, PreparedRecipe] = OrderedDict()
        self._lock = threading.RLock()
        self._switch_lock = threading.Lock()
        self.active: PreparedRecipe | None = None
        self.listeners: list[Callable[[PreparedRecipe, PreparedRecipe | None, str, str], None]] = []
        # additive (HMI helper): audit of every request, progress of a cold preparation
        self.audit_listeners: list[Callable[[SwitchAudit], None]] = []
        self.last_audit: SwitchAudit | None = None
        self.preparing: PrepareProgress | None = None
        # why the active recipe is the active one (start-up choice, or who switched it): the
        # start-up log, the HMI and the station snapshot show it
        self.active_reason = ""
        self._retired: list[PreparedRecipe] = []
        # held while the folder is read (reload, refresh) and by whoever writes a recipe file for
        # the station (a model promotion): a reload sees the folder before or after the write
        self.folder_lock = threading.RLock()
        self.reload()

    def reload(self) -> None:
        with self.folder_lock:
            self._reload()

    def _reload(self) -> None:
        recipes: dict[str, Recipe] = {}
        files: dict[str, Path] = {}
        invalid: dict[str, list[Problem]] = {}
        codes: dict[int, str] = {}
        if not self.directory.is_dir():
            raise ConfigError([Problem(str(self.directory), "", "recipes folder not found")])
        for path in sorted(self.directory.glob("*.yaml")):
            try:
                recipe = load_recipe(path, check_model=self.check_models)
            except ConfigError as exc:
                invalid[str(path)] = exc.problems
                continue
            if recipe.id in recipes or recipe.code in codes:
                clash = recipe.id if recipe.id in recipes else f"code {recipe.code} (used by {codes[recipe.code]})"
                invalid[str(path)] = [Problem(str(path), "id", f"duplicate {clash}")]
                continue
            recipes[recipe.id] = recipe
            files[recipe.id] = path
            codes[recipe.code] = recipe.id
        with self._lock:
            self.recipes, self.files, self.invalid = recipes, files, invalid
        for problems in invalid.values():
            for problem in problems:
                log.warning("invalid recipe: %s", problem)

    def by_code(self, code: int) -> Recipe | None:
        return next((r for r in self.recipes.values() if r.code == code), None)

    def default_id(self) -> str:
        if not self.recipes:
            raise ConfigError([Problem(str(self.directory), "", "no valid recipe")])
        return min(self.recipes.values(), key=lambda r: r.code).id

    def prepare(self, recipe_id: str) -> PreparedRecipe:
        """Load and warm ``recipe_id`` (or take it from the warm cache, least recently used evicted)."""
        with self._lock:
            recipe = self.recipes.get(recipe_id)
            cached = self._warm.get(recipe_id)
            # a prepared copy counts only while its file still says the same (see ``refresh``)
            if cached is not None and cached.recipe == recipe:
                self._warm.move_to_end(recipe_id)
                return cached
        if recipe is None:
            raise KeyError(f"unknown recipe {recipe_id!r}; known: {', '.join(sorted(self.recipes))}")
        t0 = time.perf_counter()
        started = time.time_ns()
        self._progress(recipe_id, "camera", 0, started)
        try:
            if self._validate_camera is not None:
                self._validate_camera(recipe)
            self._progress(recipe_id, "engine", 1, started)
            engine = self._engine_factory(recipe)
        except Exception:
            self._progress(recipe_id, "failed", 3, started)
            raise
        self._progress(recipe_id, "warmup", 2, started)
        try:
            if self.warm_shape is not None:
                h, w, fmt = self.warm_shape
                engine.warmup(recipe.camera.height or h, recipe.camera.width or w, recipe.camera.pixel_format or fmt,
                              batch=self.warm_batch)  # fmt: skip
        except Exception:
            engine.close()
            self._progress(recipe_id, "failed", 3, started)
            raise
        self._progress(recipe_id, "done", 3, started)
        prepared = PreparedRecipe(recipe, engine, DecisionPolicy(recipe), time.perf_counter() - t0)
        with self._lock:
            stale = self._warm.pop(recipe_id, None)
            if stale is not None:  # an older version of this recipe (its file changed)
                if self.active is stale:
                    self._retired.append(stale)  # still judging parts: closed with the book
                else:
                    stale.close()
            self._warm[recipe_id] = prepared
            self._evict()
        return prepared

    def _progress(self, recipe_id: str, stage: str, step: int, started_ns: int) -> None:
        self.preparing = PrepareProgress(recipe_id, stage, step, 3, started_ns)

    def is_warm(self, recipe_id: str) -> bool:
        with self._lock:
            return recipe_id in self._warm

    def warm_ids(self) -> list[str]:
        """Prepared recipes, least recently used first."""
        with self._lock:
            return list(self._warm)

    def refresh(self) -> dict[str, list[str]]:
        """Reload the folder (the recipe watcher calls this on a change) and drop prepared
        recipes whose file changed or vanished, so the next switch prepares the new version.
        The active recipe keeps running as prepared until the next switch."""
        with self.folder_lock:
            before = dict(self.recipes)
            self._reload()
            after = self.recipes
        changed = sorted(rid for rid in before.keys() & after.keys() if before[rid] != after[rid])
        removed = sorted(before.keys() - after.keys())
        added = sorted(after.keys() - before.keys())
        with self._lock:
            active_id = self.active.recipe.id if self.active else None
            for rid in changed + removed:
                if rid in self._warm and rid != active_id:
                    self._warm.pop(rid).close()
        return {"changed": changed, "removed": removed, "added": added}

    def _evict(self) -> None:
        while len(self._warm) > self.warm_max:
            for rid in self._warm:
                if self.active is None or rid != self.active.recipe.id:
                    self._warm.pop(rid).close()
                    break
            else:
                return

    def switch(self, recipe_id: str, source: str = "cli", user: str = "", reason: str | None = None) -> SwitchResult:
        """Prepare fully, then swap; the active recipe stays if preparation fails. ``reason``
        says why (the start-up choice); by default: who asked for it."""
        t_request = time.perf_counter()
        with self._switch_lock:
            warm = self.is_warm(recipe_id)
            try:
                prepared = self.prepare(recipe_id)
            except Exception as exc:  # any preparation failure refuses the switch
                log.warning("recipe switch to %s refused: %s", recipe_id, exc)
                message = f"{type(exc).__name__}: {exc}"
                elapsed = time.perf_counter() - t_request
                self._audit(SwitchAudit(time.time_ns(), self.active.recipe.id if self.active else None, recipe_id, source,
                                        user, False, message, elapsed, elapsed, warm))  # fmt: skip
                return SwitchResult(False, recipe_id, message, switch_s=elapsed)
            previous = self.active
            self.active = prepared  # the atomic swap: one reference, read once per frame
            self.active_reason = reason or f"switched by {source}" + (f" ({user})" if user else "")
            switch_s = time.perf_counter() - t_request
            prepare_s = 0.0 if warm else prepared.prepare_s
            self.last_audit = SwitchAudit(time.time_ns(), previous.recipe.id if previous else None, recipe_id, source, user,
                                          True, "switched", prepare_s, switch_s, warm)  # fmt: skip
            with self._lock:
                self._evict()
            for listener in self.listeners:
                listener(prepared, previous, source, user)
            self._audit(self.last_audit)
            return SwitchResult(True, recipe_id, "switched", prepared.prepare_s, switch_s)

    def _audit(self, audit: SwitchAudit) -> None:
        self.last_audit = audit
        for listener in self.audit_listeners:
            try:
                listener(audit)
            except Exception:  # an audit consumer never breaks a switch
                log.exception("recipe audit listener failed")

    def close(self) -> None:
        with self._lock:
            for prepared in [*self._warm.values(), *self._retired]:
                prepared.close()
            self._warm.clear()
            self._retired.clear()
            self.active = None
