"""``linecheck build``: prebuild the TensorRT engine of every valid recipe for this GPU, so a
line never builds an engine while parts are waiting (deploy/ runs it before the service)."""

from __future__ import annotations

import sys
from pathlib import Path

from line.assembly import load_station_config
from line.recipes import RecipeBook


def build_all(config_path: Path, force: bool = False) -> int:
    config = load_station_config(config_path)
    options = config.engine
    if options.backend != "tensorrt":
        print(f"{config_path}: engine backend is {options.backend!r}; nothing to prebuild "
              "(set engine.backend: tensorrt to build TensorRT engines)")  # fmt: skip
        return 0
    from inference.tensorrt_build import BuildOptions, build_engines

    book = RecipeBook(config.recipes.dir, engine_factory=lambda r: None, warm_max=1)  # type: ignore[arg-type,return-value]
    for problems in book.invalid.values():
        for problem in problems:
            print(f"skipped invalid recipe: {problem}", file=sys.stderr)
    specs = [r.detector_spec() for _, r in sorted(book.recipes.items())]
    build = BuildOptions(cache_dir=options.engine_cache_dir, max_batch=options.max_batch, force=force)
    results = build_engines(specs, build)
    for result in results:
        print(f"{result.onnx.name}: {'built' if result.built else 'cached'} -> {result.engine_path}")
    return 0 if book.recipes and not book.invalid else 1
