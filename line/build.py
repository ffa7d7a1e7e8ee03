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
    from inference.tensorrt_build import build_engines

    book = RecipeBook(config.recipes.dir, engine_factory=lambda r: None, warm_max=1)  # type: ignore[arg-type,return-value]
    for _path, problems in book.invalid.items():
        for problem in problems:
            print(f"skipped invalid recipe: {problem}", file=sys.stderr)
    specs = {rid: r.detector_spec() for rid, r in sorted(book.recipes.items())}
    results = build_engines(specs, options, force=force)
    for rid, outcome in results.items():
        print(f"{rid}: {outcome}")
    return 0 if book.recipes and not book.invalid else 1
