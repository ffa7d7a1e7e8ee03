"""Fuzzing the recipe and station-config parsers: whatever YAML an operator (or a broken
editor) leaves in the folder, ``load_recipe`` and ``load_station_config`` either return a
validated object or raise ``ConfigError`` naming the file, the field and the reason; no other
exception may escape (a traceback would take the recipe watcher or ``linecheck validate`` down).

Three kinds of input: random YAML structures, a valid file with one field replaced, removed or
added, and raw bytes (broken YAML, other encodings)."""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from line.app.assembly import load_station_config
from line.errors import ConfigError
from line.recipes.book import load_recipe
from tests.reliability.station_env import make_env

SETTINGS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    database=None,
)

scalars = (
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12) | st.sampled_from(["", "0", "-1", "1e309", "yolov8", "Mono8", "../x", "/dev/null", "a\x00b"])
)  # fmt: skip
keys = st.text(max_size=10) | st.sampled_from(["id", "code", "model", "onnx", "classes", "reject", "bin", "cameras",
                                               "options", "kind", "dir", "storage", "plc", "port"])  # fmt: skip
structures = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def env() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        yield make_env(Path(tmp))


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key/index path in a nested structure (the mutation points)."""
    out = [prefix]
    if isinstance(data, dict):
        for k, v in data.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any]) -> Any:
    data = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(data)))
        if not path:
            return draw(structures)
        parent = data
        for step in path[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(structures)
        elif action == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(keys)] = draw(structures)
        else:
            parent.append(draw(structures))
    return data


def _write(path: Path, content: Any) -> None:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(yaml.safe_dump(content, allow_unicode=False))


def _only_config_errors(load: Any, path: Path) -> None:
    try:
        load(path)
    except ConfigError as exc:
        assert exc.problems and all(p.file == str(path) for p in exc.problems), exc.problems


def _base(env: Path, name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((env.parent / name).read_text())
    return data


@SETTINGS
@given(data=st.data())
def test_recipe_parsing_only_raises_config_error(env: Path, data: st.DataObject) -> None:
    base = _base(env, "recipes/alpha.yaml")
    content = data.draw(st.one_of(structures, mutated(base), st.binary(max_size=120)))
    path = env.parent / "recipes" / "fuzz.yaml"  # next to tiny.onnx: model checks run too
    _write(path, content)
    _only_config_errors(load_recipe, path)


@SETTINGS
@given(data=st.data())
def test_station_config_parsing_only_raises_config_error(env: Path, data: st.DataObject) -> None:
    base = _base(env, "station.yaml")
    content = data.draw(st.one_of(structures, mutated(base), st.binary(max_size=120)))
    path = env.parent / "fuzz-station.yaml"
    _write(path, content)
    _only_config_errors(load_station_config, path)


nasty_paths = st.sampled_from(
    ["a\x00b", "x" * 5000, "../" * 300, "~", "", " ", "/", "\n", "/dev/null", "/proc/self/mem", "a/" * 2000]
) | st.text(max_size=30)
RECIPE_PATHS = [("model", "onnx"), ("model", "calibration")]
CONFIG_PATHS = [
    ("recipes", "dir"),
    ("storage", "dir"),
    ("engine", "engine_cache_dir"),
    ("cameras", 0, "options", "folder"),
]


def _put(data: Any, path: tuple[Any, ...], value: Any) -> None:
    for step in path[:-1]:
        data = data[step]
    data[path[-1]] = value


@SETTINGS
@given(where=st.sampled_from(RECIPE_PATHS), value=nasty_paths)
def test_recipe_paths_the_os_refuses(env: Path, where: tuple[str, ...], value: str) -> None:
    data = _base(env, "recipes/alpha.yaml")
    _put(data, where, value)
    path = env.parent / "recipes" / "fuzz.yaml"
    _write(path, data)
    _only_config_errors(load_recipe, path)


@SETTINGS
@given(where=st.sampled_from(CONFIG_PATHS), value=nasty_paths)
def test_station_config_paths_the_os_refuses(env: Path, where: tuple[Any, ...], value: str) -> None:
    data = _base(env, "station.yaml")
    data.setdefault("engine", {})
    _put(data, where, value)
    path = env.parent / "fuzz-station.yaml"
    _write(path, data)
    _only_config_errors(load_station_config, path)
