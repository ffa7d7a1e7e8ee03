"""What a bench run feeds the code under test: the model's recipe, synthetic frames in the
asked pixel format, and the engine options from the bench flags. Shared by ``linecheck bench``
(``tools.bench.cli``) and its MES load phase (``tools.bench.mes``), so neither imports the other.
"""

from __future__ import annotations

import argparse
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
YOLOV8N_EXPORT = "recipes/models/export_yolov8n.py"
ENGINE_CACHE = Path("var/engines")


def resolve_recipe(model: str, width: int, height: int) -> Recipe:
    if model == "demo":
        return load_recipe(demo_station.recipe_path("demo-parts"))
    if model == "yolov8n":
        path = YOLOV8N_MODEL.resolve()
        if not path.exists():
            if not Path(YOLOV8N_EXPORT).exists():
                raise ConfigError([Problem(str(YOLOV8N_MODEL), "", f"missing; export it in a source checkout with "
                                           f"python {YOLOV8N_EXPORT} --out {YOLOV8N_MODEL} (needs torch)")])  # fmt: skip
            print("exporting the YOLOv8n-sized model (random weights) ...", file=sys.stderr)
            subprocess.run([sys.executable, YOLOV8N_EXPORT, "--out", str(path)], check=True)
    else:
        path = Path(model).resolve()
    classes = [f"class{i}" for i in range(80)]
    return Recipe.model_validate({
        "id": path.stem, "code": 9, "model": {"onnx": str(path), "layout": "yolov8",
        "input": InputProfile(min=(320, 320), opt=(512, 640), max=(640, 640)).model_dump()},
        "classes": classes, "thresholds": {"default": 0.25}, "reject": [{"classes": classes, "bin": 1}],
        "cycle_budget_ms": 1000,
    })  # fmt: skip


def bench_recipe(args: argparse.Namespace) -> Recipe:
    """The model's recipe at the asked precision (``--precision int8``: the gated INT8 copy
    `linecheck build` cached in var/engines, which the engine refuses to run without)."""
    recipe = resolve_recipe(args.model, args.width, args.height)
    precision = getattr(args, "precision", None)
    if precision is not None and precision != recipe.model.precision:
        recipe = recipe.model_copy(update={"model": recipe.model.model_copy(update={"precision": precision})})
    if recipe.model.precision == "int8":
        require_int8(recipe)
    return recipe


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
                                         "cpu_spin": not getattr(args, "no_cpu_spin", False)})  # fmt: skip
