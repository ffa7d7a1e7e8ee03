"""``linecheck build`` for the CPU engine: where INT8 calibration and held-out parts come from."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from line.app.build import calibration_parts
from line.recipes.book import load_recipe

INT8_RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "int8" / "demo-parts-int8.yaml"


def test_a_calibration_folder_holds_every_fifth_image_out_of_calibration(tmp_path: Path) -> None:
    folder = tmp_path / "replay"
    folder.mkdir()
    for i in range(10):
        cv2.imwrite(str(folder / f"part{i:02d}.png"), np.full((64, 80), i * 20, np.uint8))
    (folder / "notes.txt").write_text("not an image")
    recipe = load_recipe(INT8_RECIPE)
    recipe = recipe.model_copy(update={"model": recipe.model.model_copy(update={"calibration": folder})})
    calibration, held_out, source = calibration_parts(recipe)
    assert source == f"folder {folder}"
    held_values = sorted(int(part.image.data[0, 0]) for part in held_out)
    assert held_values == [80, 180]  # part04, part09: never seen by the calibration
    assert len(calibration) == 8 and all(int(img.data[0, 0]) not in held_values for img in calibration)
    assert all(part.defective is None for part in held_out)  # a replay folder has no ground truth


def test_without_a_folder_the_demo_parts_calibrate_and_its_held_out_parts_judge() -> None:
    recipe = load_recipe(INT8_RECIPE)
    assert recipe.model.precision == "int8"
    calibration, held_out, source = calibration_parts(recipe)
    assert "seed 2002" in source  # recipes/demo/demo_eval.py's test seed
    assert len(calibration) == 64 and len(held_out) == 1000
    defective = sum(bool(p.defective) for p in held_out)
    assert 400 < defective < 600  # half of them defective, with ground truth
    assert held_out[0].image.data.shape == (1024, 1280)
