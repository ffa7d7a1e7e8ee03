"""The demo station shipped inside the package: its config, recipes and model.

``linecheck demo``, ``build`` and ``bench`` default to these files, and ``linecheck init`` copies
them out for a user to edit, so an installed wheel runs from any directory without a source
checkout. The files are read through :mod:`importlib.resources`; in the repository they are
links to the top-level ``configs/`` and ``recipes/`` files (one copy, edited there), and the
wheel carries their contents. The folder layout (``configs/`` beside ``recipes/``) is the
repository's, so the relative paths inside the files hold in both places and in a copy.
"""

from __future__ import annotations

import shutil
from importlib.resources import files
from pathlib import Path

CONFIG_NAME = "configs/demo.yaml"
RECIPE_NAMES = ("recipes/demo-parts.yaml", "recipes/demo-parts-strict.yaml")
MODEL_NAME = "recipes/demo/demo-parts.onnx"
SHIPPED = (CONFIG_NAME, *RECIPE_NAMES, MODEL_NAME)


class StarterExistsError(Exception):
    """The target folder of ``linecheck init`` is not empty: nothing was written."""


def root() -> Path:
    """The folder holding the shipped files. A wheel is installed as files (never zipped), so
    this is a real directory that the station loader can resolve relative paths against."""
    location = files(__name__)
    if not isinstance(location, Path):  # zip imports: the station needs real files
        raise RuntimeError(f"the demo station must be installed as files, not in {location!r}")
    return location


def config_path() -> Path:
    """The demo station config (``linecheck demo``'s default)."""
    return root() / CONFIG_NAME


def recipe_path(name: str = "demo-parts") -> Path:
    """A shipped demo recipe by id (``linecheck bench --model demo``)."""
    return root() / "recipes" / f"{name}.yaml"


def write_starter(target: Path) -> list[Path]:
    """Copy the demo station into ``target`` (created if missing) and return the written files.

    Refuses a folder that holds anything, before writing, so a user's own station is never
    half overwritten."""
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise StarterExistsError(f"{target} exists and is not an empty folder; choose a new or empty one")
    source = root()
    written = []
    for name in SHIPPED:
        dest = target / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / name, dest)  # follows the repository's links: a real, editable file
        written.append(dest)
    return written
