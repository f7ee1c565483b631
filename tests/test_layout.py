"""The house rules `lint-imports` cannot state: no module-level import circle anywhere in the
project (across packages too: import-linter's acyclic contract looks at siblings only), and no
module over ~400 lines without a reason written at its top."""

from __future__ import annotations

import ast
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("schemas", "playbooks", "agents", "streams")
LONG = 400
REASON = "Why this module is long:"


def circles(edges: dict[str, list[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(found)


def test_circles_finds_a_circle_and_only_a_circle():
    assert circles({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}) == [["a", "b", "c"]]
    assert circles({"a": ["b"], "b": [], "c": ["b"]}) == []


def test_no_module_imports_one_that_imports_it_back():
    graph = grimp.build_graph(*PACKAGES)  # every import, inside functions included
    edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    assert circles(edges) == []


def test_a_long_module_says_why_at_its_top():
    long = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            lines = path.read_text(encoding="utf-8").count("\n")
            doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
            if lines > LONG and REASON not in doc:
                long[str(path.relative_to(ROOT))] = lines
    assert long == {}, f"over {LONG} lines with no '{REASON}' in the module's docstring"
