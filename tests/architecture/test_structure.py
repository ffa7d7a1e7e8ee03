"""The station's code keeps its parts apart: in the loop, the application and the recipes no
module reads another object's private (``_x``) fields (import circles: test_import_cycles.py)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# the parts of the station whose boundaries this test guards
GUARDED = ("line/loop", "line/app", "line/recipes")
# private by name, public by contract: namedtuple's _replace, argparse's subparsers type
STDLIB_API = {"_replace", "_SubParsersAction"}


def private_reads(source: str) -> list[str]:
    """``x._field`` where ``x`` is not ``self`` or ``cls``: a read of another object's privates."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")):
            continue
        if node.attr in STDLIB_API or (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
            continue
        found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_module_reads_another_objects_private_fields() -> None:
    offenders = {}
    for folder in GUARDED:
        for path in sorted((REPO / folder).rglob("*.py")):
            reads = private_reads(path.read_text())
            if reads:
                offenders[str(path.relative_to(REPO))] = reads
    assert offenders == {}


def test_the_private_read_check_can_fail() -> None:
    assert private_reads("def f(station):\n    return station._status\n") == ["2: station._status"]
    assert private_reads("class A:\n    def f(self):\n        return self._x\n") == []
