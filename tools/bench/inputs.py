"""What a bench run feeds the code under test: the model's recipe, synthetic frames in the
asked pixel format, and the engine options from the bench flags. Shared by ``linecheck bench``
(``tools.bench.cli``) and its MES load phase (``tools.bench.mes``), so neither imports the other.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np

from camera.frame import GroundTruth
from inference.config import EngineOptions, InputProfile
from line import demo_station
from line.errors import ConfigError, Problem
from line.recipes.book import load_recipe
from line.recipes.model import Recipe

# Paths relative to the current folder (a source checkout's root, for the files below that only
# it has): the bench runs from an installed wheel too, and never writes next to its own code.
YOLOV8N_MODEL = Path("var/models/yolov8n.onnx")
YOLOV8N_EXPORT = "recipes/models/export_yolov8n.py"  # torch
YOLOV8N_BUILD = "recipes/models/build_yolov8n_onnx.py"  # onnx.helper + NumPy, the same graph
ENGINE_CACHE = Path("var/engines")
# INT8 models timed with --skip-gate: a folder and a name the engine never looks under, so a model
# that no accuracy gate passed cannot be taken for a gated one by `linecheck run`
UNGATED_INT8 = Path("var/bench/int8-ungated")


def resolve_recipe(model: str, width: int, height: int) -> Recipe:
    if model == "demo":
        return load_recipe(demo_station.recipe_path("demo-parts"))
    if model == "yolov8n":
        path = YOLOV8N_MODEL.resolve()
        if not path.exists():
            make_yolov8n(path)
    else:
        path = Path(model).resolve()
    classes = [f"class{i}" for i in range(80)]
    return Recipe.model_validate({
        "id": path.stem, "code": 9, "model": {"onnx": str(path), "layout": "yolov8",
        "input": InputProfile(min=(320, 320), opt=(512, 640), max=(640, 640)).model_dump()},
        "classes": classes, "thresholds": {"default": 0.25}, "reject": [{"classes": classes, "bin": 1}],
        "cycle_budget_ms": 1000,
    })  # fmt: skip


def make_yolov8n(path: Path) -> None:
    """Export the YOLOv8n-sized model with torch where it is installed, else build the same graph
    with onnx.helper (``recipes/models/build_yolov8n_onnx.py``); both need a source checkout."""
    with_torch = importlib.util.find_spec("torch") is not None
    script = YOLOV8N_EXPORT if with_torch else YOLOV8N_BUILD
    if not Path(script).exists():
        raise ConfigError([Problem(str(YOLOV8N_MODEL), "", f"missing; make it in a source checkout with "
                                   f"python {YOLOV8N_BUILD} --out {YOLOV8N_MODEL}")])  # fmt: skip
    how = "exporting it with torch" if with_torch else "torch is not installed: building it with onnx.helper"
    print(f"{YOLOV8N_MODEL} missing; {how} (YOLOv8n-sized, random weights) ...", file=sys.stderr)
    subprocess.run([sys.executable, script, "--out", str(path)], check=True)


def bench_recipe(args: argparse.Namespace) -> Recipe:
    """The model's recipe at the asked precision (``--precision int8``: the gated INT8 copy
    `linecheck build` cached in var/engines, which the engine refuses to run without)."""
    recipe = resolve_recipe(args.model, args.width, args.height)
    precision = getattr(args, "precision", None)
    if precision is not None and precision != recipe.model.precision:
        recipe = recipe.model_copy(update={"model": recipe.model.model_copy(update={"precision": precision})})
    if recipe.model.precision == "int8":
        if getattr(args, "skip_gate", False):
            return ungated_int8_recipe(recipe, args)
        require_int8(recipe)
    return recipe


def ungated_int8_recipe(recipe: Recipe, args: argparse.Namespace) -> Recipe:
    """``recipe`` on an INT8 copy of its model that no accuracy gate checked (``--skip-gate``),
    for timing a model the gate cannot judge: random weights detect nothing in fp32 or INT8, so
    their agreement says nothing. Quantized as ``linecheck build`` does (same settings), calibrated
    on the bench's synthetic frames, kept under ``UNGATED_INT8`` and run as a plain model: the
    engine's own INT8 lookup (the gated cache) never sees it."""
    from inference.engine import ImageInput
    from inference.quantize import int8_model_path, quantize_model

    cached = int8_model_path(recipe.model, UNGATED_INT8)
    path = cached.with_name(cached.name.replace("-int8-", "-int8-ungated-")).resolve()
    if not path.is_file():
        frames, _ = make_frames(args.width, args.height, args.pixel_format)
        print(f"bench: --skip-gate: quantizing {recipe.model.onnx} to INT8 without the accuracy gate "
              f"(calibration: {len(frames)} synthetic frames; for timing only) ...", file=sys.stderr)  # fmt: skip
        quantize_model(recipe.model, [ImageInput(f, args.pixel_format) for f in frames], path)
    else:
        print(f"bench: --skip-gate: the INT8 model {path.name} is not gated; for timing only", file=sys.stderr)
    return recipe.model_copy(update={"model": recipe.model.model_copy(update={"onnx": path, "precision": "fp32"})})


def require_int8(recipe: Recipe) -> None:
    """A missing INT8 model is the user's next step, said plainly (not an engine traceback)."""
    from inference.quantize import Int8Unavailable, cached_int8_model

    try:
        cached_int8_model(recipe.model, ENGINE_CACHE)
    except Int8Unavailable as exc:
        raise SystemExit(f"bench: {exc} (e.g. `linecheck build -c configs/demo-int8.yaml` for the demo model)") from None


def make_frames(width: int, height: int, pixel_format: str, n: int = 16) -> tuple[list[np.ndarray], list[GroundTruth]]:
    from camera.synthetic_parts import generate_part

    rng = np.random.default_rng(7)
    base = "Mono8" if pixel_format == "Mono8" else "RGB8"
    frames, truths = [], []
    for _ in range(n):
        image, truth = generate_part(rng, width, height, base, 0.3)
        frames.append(_convert(image, pixel_format))
        truths.append(truth)
    return frames, truths


def _convert(rgb_or_mono: np.ndarray, pixel_format: str) -> np.ndarray:
    import cv2

    if pixel_format in ("Mono8", "RGB8"):
        return rgb_or_mono
    rgb = rgb_or_mono
    if pixel_format == "BGR8":
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    if pixel_format == "RGBa8":
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2RGBA)
    if pixel_format.startswith("Bayer"):
        phase = pixel_format[5:7]
        mosaic = np.empty(rgb.shape[:2], np.uint8)
        ch = {"R": 0, "G": 1, "B": 2}
        # RG/GB/GR/BG: 2x2 pattern rows = (p0 p1), (p1' p0') with the complementary colours
        pattern = {"RG": ("RG", "GB"), "GB": ("GB", "RG"), "GR": ("GR", "BG"), "BG": ("BG", "GR")}[phase]
        for dy in (0, 1):
            for dx in (0, 1):
                mosaic[dy::2, dx::2] = rgb[dy::2, dx::2, ch[pattern[dy][dx]]]
        return mosaic
    raise ValueError(f"unsupported pixel format {pixel_format}")


def engine_options(args: argparse.Namespace) -> EngineOptions:
    backend = "tensorrt" if args.backend == "tensorrt" else "onnxruntime"
    device = "cpu" if args.backend == "onnxruntime" else "cuda"
    extra = dict(item.split("=", 1) for item in args.cuda_option)
    return EngineOptions.model_validate({"backend": backend, "device": device, "fp16": args.fp16,
                                         "max_batch": max(1, args.cameras), "engine_cache_dir": ENGINE_CACHE.resolve(),
                                         "cuda_provider_options": extra, "whole_graph": not args.no_whole_graph,
                                         "cuda_wait": getattr(args, "cuda_wait", "auto"),
                                         "cuda_keep_gil": not getattr(args, "cuda_release_gil", False),
                                         "cpu_spin": not getattr(args, "no_cpu_spin", False),
                                         "intra_op_threads": getattr(args, "intra_op_threads", 0)})  # fmt: skip
