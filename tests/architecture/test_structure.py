"""The station's code keeps its parts apart: no import circles inside ``line``, and in the loop,
the application and the recipes no module reads another object's private (``_x``) fields."""

from __future__ import annotations

import ast
from pathlib import Path

import grimp

REPO = Path(__file__).resolve().parents[2]
# the parts of the station whose boundaries this test guards
GUARDED = ("line/loop", "line/app", "line/recipes")
# private by name, public by contract: namedtuple's _replace, argparse's subparsers type
STDLIB_API = {"_replace", "_SubParsersAction"}


def circles(graph: grimp.ImportGraph, package: str) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), inside ``package``."""
    modules = sorted(m for m in graph.modules if m == package or m.startswith(package + "."))
    edges = {m: {n for n in graph.find_modules_directly_imported_by(m) if n in modules} for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in modules:
        if module not in index:
            visit(module)
    return found


def test_no_import_circles_in_line() -> None:
    graph = grimp.build_graph("line", "camera", "inference", "plc")
    assert circles(graph, "line") == []


def test_the_circle_finder_finds_a_circle() -> None:
    """The check above can fail: a planted pair of modules importing each other is found."""
    graph = grimp.ImportGraph()
    for name in ("pkg", "pkg.a", "pkg.b", "pkg.c"):
        graph.add_module(name)
    graph.add_import(importer="pkg.a", imported="pkg.b")
    graph.add_import(importer="pkg.b", imported="pkg.a")
    graph.add_import(importer="pkg.c", imported="pkg.a")
    assert circles(graph, "pkg") == [["pkg.a", "pkg.b"]]


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
