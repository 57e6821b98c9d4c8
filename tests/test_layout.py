"""The walls between the project's parts stand: no import circle anywhere, and each part
imports only what its package's docstring allows (runtime/__init__.py and the
sub-packages' `__init__.py` say which)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("freezer", "runtime")

# What a part may never import (a module name or the start of one).
FORBIDDEN = {
    "runtime.host": ("runtime.app", "runtime.store", "runtime.server", "sqlalchemy", "alembic"),
    "runtime.store": (
        "runtime.host",
        "runtime.app",
        "runtime.server",
        "freezer",
        "tornado",
        "ipywidgets",
        "anywidget",
        "comm",
        "IPython",
        # The statistics' reference implementations are for the tests alone.
        "pandas",
        "sklearn",
        "statsmodels",
        "krippendorff",
        "crowdkit",
    ),
    "runtime.app": ("runtime.server",),
    "runtime.bundle": ("runtime.host", "runtime.app", "runtime.store", "runtime.server"),
    "runtime.frontend": ("runtime.host", "runtime.app", "runtime.store", "runtime.server"),
    "freezer": ("runtime",),
}
# The author-facing commands that reach into the server: `nbfreeze serve`, `invite`,
# `export` (which reads a bundle, and runs its shared stages for a box stage's boxes),
# `thaw` (which runs the notebook on the app's answers), `load_labels`, which reads an
# app's labels from its database, and `load_answers`, which gives a widget the app's
# answers as the app's pipeline gives them.
ALLOWED = {
    "freezer.cli": (
        "runtime.server",
        "runtime.store",
        "runtime.bundle",
        "runtime.app.exports",
        "runtime.app.thaw",
        "runtime.nginx",
        "runtime.urls",
        "runtime.forwarded",
    ),
    "freezer.labels": ("runtime.store", "runtime.app.pipeline", "runtime.app.stage_run"),
}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The modules `path` imports when it runs (anywhere in it, inside functions too; not
    what `if TYPE_CHECKING:` names), resolved to the project's modules where they are."""
    found: set[str] = set()
    skipped: set[int] = set()
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _type_checking(node):
            skipped.update(id(child) for body in node.body for child in ast.walk(body))
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if child in modules else node.module)
    return found


def import_graph(root: Path, packages: tuple[str, ...]) -> dict[str, set[str]]:
    paths = {
        module_name(path, root): path
        for package in packages
        for path in (root / package).rglob("*.py")
        if "node_modules" not in path.parts
    }
    return {name: imports_of(path, set(paths)) for name, path in paths.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every group of the project's modules that import each other, round and round
    (Tarjan's strongly connected components of more than one module, or one that
    imports itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node] & graph.keys()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1 or node in graph[node]:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def breaches(graph: dict[str, set[str]]) -> list[str]:
    found = []
    for module, imported in sorted(graph.items()):
        part = next(
            (p for p in sorted(FORBIDDEN, key=len, reverse=True) if _under(module, p)), None
        )
        if part is None:
            continue
        allowed = ALLOWED.get(module, ())
        for name in sorted(imported):
            if any(_under(name, a) for a in allowed):
                continue
            if any(_under(name, f) for f in FORBIDDEN[part]):
                found.append(f"{module} imports {name}")
    return found


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def test_no_module_of_the_project_imports_itself_round_a_circle():
    assert cycles(import_graph(ROOT, PACKAGES)) == []


def test_each_part_imports_only_what_its_package_allows():
    assert breaches(import_graph(ROOT, PACKAGES)) == []


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"a.py": "import pkg.b", "b.py": "from pkg.c import x", "c.py": "from pkg import a"}, 1),
        ({"a.py": "def f():\n    import pkg.b", "b.py": "import pkg.a"}, 1),
        ({"a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.b"}, 0),
        ({"a.py": "import pkg.b", "b.py": "import os"}, 0),
    ],
)
def test_the_walk_finds_a_circle_where_there_is_one(tmp_path, files, expected):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    for name, text in files.items():
        (tmp_path / "pkg" / name).write_text(text)
    if "b.py" not in files:
        (tmp_path / "pkg" / "b.py").write_text("import pkg.a")
    assert len(cycles(import_graph(tmp_path, ("pkg",)))) == expected


def test_a_forbidden_import_is_reported():
    graph = {"runtime.store.pools": {"tornado.web", "sqlalchemy"}, "runtime.host.wire": {"json"}}
    assert breaches(graph) == ["runtime.store.pools imports tornado.web"]
