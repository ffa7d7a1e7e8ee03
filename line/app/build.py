"""``linecheck build``: prepare every valid recipe's model ahead of the line, so a line never
builds while parts are waiting (deploy/ runs it before the service).

- ``engine.backend: tensorrt``: the TensorRT engine of every recipe for this GPU.
- ``engine.backend: onnxruntime`` on the CPU: the INT8 model of every recipe with
  ``precision: int8`` (``inference.quantize``): calibrated, checked against the fp32 model on
  held-out parts, and cached only when it passes; a refused one is reported with its figures.

Calibration and held-out parts: the recipe's ``model.calibration`` folder (its own images or a
replay folder; every fifth image held out, the rest calibrate), else the synthetic demo parts
(the demo model's own 1,000 held-out parts, with ground truth, recipes/demo/demo_eval.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from inference.engine import ImageInput
from inference.quantize import LabelledImage
from line.app.assembly import load_station_config
from line.recipes.book import RecipeBook
from line.recipes.model import Recipe

CALIBRATION_IMAGES = 64  # ORT's MinMax calibration: ranges settle within a few dozen frames
HELD_OUT_EVERY = 5  # folder: every fifth image is held out of calibration for the gate
DEMO_TEST_SEED, DEMO_TEST_PARTS = 2002, 1000  # recipes/demo/demo_eval.py's held-out parts
DEMO_CALIBRATION_SEED = 3003  # none of the demo's training, validation or test seeds


def build_all(config_path: Path, force: bool = False) -> int:
    config = load_station_config(config_path)
    options = config.engine
    book = RecipeBook(config.recipes.dir, engine_factory=lambda r: None, warm_max=1)  # type: ignore[arg-type,return-value]
    for problems in book.invalid.values():
        for problem in problems:
            print(f"skipped invalid recipe: {problem}", file=sys.stderr)
    if options.backend == "onnxruntime" and options.device == "cpu":
        refused = build_int8_models(book, options.engine_cache_dir, force, options.intra_op_threads)
        return 0 if book.recipes and not book.invalid and not refused else 1
    if options.backend != "tensorrt":
        print(f"{config_path}: engine backend is {options.backend!r} on {options.device}; nothing to prebuild "
              "(TensorRT engines: engine.backend: tensorrt; INT8 models: the CPU engine and precision: int8)")  # fmt: skip
        return 0
    from inference.tensorrt.build import BuildOptions, build_engines

    specs = [r.detector_spec() for _, r in sorted(book.recipes.items())]
    build = BuildOptions(cache_dir=options.engine_cache_dir, max_batch=options.max_batch, force=force)
    results = build_engines(specs, build)
    for result in results:
        print(f"{result.onnx.name}: {'built' if result.built else 'cached'} -> {result.engine_path}")
    return 0 if book.recipes and not book.invalid else 1


def build_int8_models(book: RecipeBook, cache_dir: Path, force: bool, intra_op_threads: int = 0) -> int:
    """INT8 model of every ``precision: int8`` recipe; returns how many were refused."""
    from inference.quantize import build_int8, int8_model_path

    refused = 0
    wanted = [r for _, r in sorted(book.recipes.items()) if r.model.precision == "int8"]
    if not wanted:
        print("no recipe asks for precision: int8; nothing to build for the CPU engine")
    for recipe in wanted:
        cached = int8_model_path(recipe.model, cache_dir)
        if cached.is_file() and not force:  # gated when it was made; its key names the model and settings
            print(f"{recipe.id}: cached -> {cached}")
            continue
        calibration, held_out, source = calibration_parts(recipe)
        print(f"{recipe.id}: quantizing {recipe.model.onnx.name} on {source} "
              f"({len(calibration)} calibration images, {len(held_out)} held-out parts) ...", file=sys.stderr)  # fmt: skip
        path, report = build_int8(recipe.detector_spec(), cache_dir, calibration, held_out, source, force,
                                  intra_op_threads)  # fmt: skip
        if report is None:  # made meanwhile by another build
            print(f"{recipe.id}: cached -> {path}")
            continue
        print(f"{recipe.id}: {report.summary()}" + (f" -> {path}" if path else ""))
        refused += path is None
    return refused


def calibration_parts(recipe: Recipe) -> tuple[list[ImageInput], list[LabelledImage], str]:
    """(calibration images, held-out parts, a description of where they came from)."""
    folder = recipe.model.calibration
    if folder is not None:
        images = read_folder(Path(folder), recipe.model.channels)
        if len(images) < 2:
            raise SystemExit(f"{recipe.id}: {folder}: needs at least 2 readable images (PNG, JPEG, BMP)")
        held = [LabelledImage(img) for i, img in enumerate(images) if i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1]
        calib = [img for i, img in enumerate(images) if i % HELD_OUT_EVERY != HELD_OUT_EVERY - 1]
        return calib[:CALIBRATION_IMAGES], held, f"folder {folder}"
    calib = [part.image for part in synthetic_parts(recipe, DEMO_CALIBRATION_SEED, CALIBRATION_IMAGES)]
    held = synthetic_parts(recipe, DEMO_TEST_SEED, DEMO_TEST_PARTS)
    return calib, held, f"synthetic demo parts (seed {DEMO_CALIBRATION_SEED}; held out: seed {DEMO_TEST_SEED})"


def synthetic_parts(recipe: Recipe, seed: int, n: int) -> list[LabelledImage]:
    """Synthetic demo parts as the demo's evaluation draws them (half defective)."""
    from camera.synthetic_parts import generate_part

    fmt = "Mono8" if recipe.camera.pixel_format in (None, "Mono8") else "RGB8"
    width, height = recipe.camera.width or 1280, recipe.camera.height or 1024
    rng = np.random.default_rng(seed)
    parts = [generate_part(rng, width, height, fmt, 0.5) for _ in range(n)]
    return [LabelledImage(ImageInput(image, fmt), truth.defective) for image, truth in parts]


def read_folder(folder: Path, channels: int) -> list[ImageInput]:
    import cv2

    if not folder.is_dir():
        raise SystemExit(f"calibration folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp"))
    images = []
    for path in files:
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE if channels == 1 else cv2.IMREAD_UNCHANGED)
        if image is None:
            continue
        if image.ndim == 2:
            images.append(ImageInput(image, "Mono8"))
        elif image.shape[2] == 3:
            images.append(ImageInput(image, "BGR8"))
    return images
