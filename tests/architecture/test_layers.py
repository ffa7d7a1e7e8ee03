"""The layering contract (pyproject ``[tool.importlinter]``) holds for the tree, and it does fail
when a forbidden import appears: a copy of the packages with one planted import is checked by
the same contract, lazy (function-level) imports included."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("tools", "line", "camera", "inference", "plc")


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if exe is None:
        pytest.fail("lint-imports is not installed (pip install import-linter: the dev extra)")
    env = {"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"}
    return subprocess.run([exe, "--no-cache"], cwd=root, env=env, capture_output=True, text=True, timeout=600)


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    root.mkdir()
    shutil.copy(REPO / "pyproject.toml", root)
    for name in PACKAGES:
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__", "static", "*.onnx", "nodesets"))
    return root


def test_the_tree_keeps_the_layers(tmp_path: Path) -> None:
    result = _lint_imports(_copy(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("module", "planted"),
    [
        ("camera/frame.py", "def _late():\n    import inference.nms  # noqa\n"),  # a sibling, lazily
        ("plc/registers.py", "from line.errors import ConfigError  # noqa\n"),  # the layer above
        ("line/errors.py", "import tools.soak  # noqa\n"),  # the runtime using a tool
    ],
    ids=["camera->inference", "plc->line", "line->tools"],
)
def test_a_forbidden_import_breaks_the_contract(tmp_path: Path, module: str, planted: str) -> None:
    root = _copy(tmp_path)
    with (root / module).open("a") as f:
        f.write("\n" + planted)
    result = _lint_imports(root)
    assert result.returncode != 0, result.stdout
    assert "BROKEN" in result.stdout, result.stdout
