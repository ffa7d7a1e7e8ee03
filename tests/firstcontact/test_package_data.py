"""The demo station is package data: one copy in the repository (configs/, recipes/), linked
from line/demo_station, and every place that builds a wheel (pyproject, the container recipe)
carries the linked files."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

import tomllib

from line import demo_station

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "line" / "demo_station"
CONTAINER = REPO / "deploy" / "container"


def _links() -> dict[str, Path]:
    return {p.relative_to(PACKAGE).as_posix(): p for p in PACKAGE.rglob("*") if p.is_symlink()}


def test_shipped_files_are_links_to_the_repository_copies() -> None:
    links = _links()
    assert sorted(links) == sorted(demo_station.SHIPPED)
    for name, link in links.items():
        target = link.resolve()
        assert target.is_file(), f"{name} -> dangling"
        assert target == REPO / name, name  # configs/demo.yaml -> the top-level configs/demo.yaml


def test_pyproject_package_data_takes_every_shipped_file() -> None:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    patterns = data["line.demo_station"]
    for name in demo_station.SHIPPED:
        assert any(fnmatch.fnmatch(name, p) for p in patterns), name


def test_container_build_copies_every_linked_file() -> None:
    recipe = re.sub(r"\\\n\s*", " ", (CONTAINER / "Containerfile").read_text())
    copied = {src for line in recipe.splitlines() if line.startswith("COPY ") for src in line.split()[1:-1]}
    allowed = [line[1:] for line in (CONTAINER / "Containerfile.dockerignore").read_text().splitlines() if line.startswith("!")]
    for name in demo_station.SHIPPED:
        assert name in copied, f"Containerfile does not COPY {name}"
        assert name in allowed, f"Containerfile.dockerignore keeps {name} out of the build context"


def test_no_library_code_looks_for_the_repository_root() -> None:
    offenders = []
    for package in ("line", "camera", "inference", "plc"):
        for path in (REPO / package).rglob("*.py"):
            text = path.read_text()
            if re.search(r"parents\[\d\]|parent\.parent", text):
                offenders.append(str(path.relative_to(REPO)))
    assert offenders == []
