"""A fuzzer of the compiler: notebooks mutated from the examples and from the docs'
notebooks (broken JSON, keys missing, values of the wrong type, random annotation keys
and values, stray bytes in sources) through `nbfreeze check`.

Each must end with exit 0, 1 or 2 and, when it fails, a message that names the notebook
file or the cell; never a traceback, never the CLI's "internal error" (exit 3).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from conftest import notebook_from
from fuzz_schema import ANY_JSON
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from freezer.annotations import KEYS
from freezer.cli import main

ROOT = Path(__file__).parent.parent
BLOCK = re.compile(r"^```python notebook\n(.*?)^```", re.S | re.M)
TRACEBACK = "Traceback (most recent call last)"
VALUES = ("each", "pool", "owner", "3", "0", "-1", "1..3", "10m", "0.8", "disagreement")
VALUES += ("true", "false", "", "x" * 300, "[1, 2]", "{a: b}", "'q'", "é", "\u202e")


def seeds() -> list[dict[str, Any]]:
    """The notebooks mutated: the examples and every notebook in the docs, as JSON."""
    found = [json.loads(path.read_text()) for path in sorted((ROOT / "examples").glob("*.ipynb"))]
    for page in sorted((ROOT / "docs").glob("*.md")):
        for body in BLOCK.findall(page.read_text()):
            notebook = notebook_from(tuple(body.split("# %%\n")))
            found.append(json.loads(nbformat.writes(notebook)))
    return found


def _nodes(tree: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The path of every node of a JSON tree."""
    found = [path]
    if isinstance(tree, dict):
        for key, value in tree.items():
            found += _nodes(value, (*path, key))
    elif isinstance(tree, list):
        for index, value in enumerate(tree):
            found += _nodes(value, (*path, index))
    return found


def _at(tree: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        tree = tree[step]
    return tree


def _code_cells(notebook: Any) -> list[dict[str, Any]]:
    cells = notebook.get("cells") if isinstance(notebook, dict) else None
    if not isinstance(cells, list):
        return []
    return [c for c in cells if isinstance(c, dict) and c.get("cell_type") == "code"]


def _source(cell: dict[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


@st.composite
def mutants(draw: st.DrawFn, notebooks: list[dict[str, Any]]) -> tuple[str, bytes]:
    """A mutated notebook file's bytes, and the kind of mutation."""
    notebook = copy.deepcopy(draw(st.sampled_from(notebooks)))
    kind = draw(st.sampled_from(["drop", "retype", "annotate", "annotate", "bytes", "broken"]))
    nodes = _nodes(notebook)[1:]
    if kind in ("drop", "retype") and nodes:
        path = draw(st.sampled_from(nodes))
        parent = _at(notebook, path[:-1])
        if kind == "drop":
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(ANY_JSON)
    cells = _code_cells(notebook)
    if kind == "annotate" and cells:
        cell = draw(st.sampled_from(cells))
        lines = []
        for _ in range(draw(st.integers(1, 4))):
            key = draw(st.sampled_from(KEYS) | st.text(max_size=10) | st.sampled_from(["stag"]))
            value = draw(st.sampled_from(VALUES) | st.text(max_size=12))
            lines.append(draw(st.sampled_from(["#| {}: {}", "#|{}:{}", "#| {}", "#| {}: {}:"])))
            lines[-1] = lines[-1].format(key, value)
        cell["source"] = "\n".join(lines) + "\n" + _source(cell)
    text = json.dumps(notebook)
    if kind == "bytes":
        raw = text.encode()
        at = draw(st.integers(0, len(raw)))
        return kind, raw[:at] + draw(st.binary(min_size=1, max_size=8)) + raw[at:]
    if kind == "broken":
        return kind, text.encode()[: draw(st.integers(0, len(text)))]
    if kind == "annotate" and cells and draw(st.booleans()):
        cell = draw(st.sampled_from(cells))  # control characters and NULs in a source
        cell["source"] = _source(cell) + draw(st.text(st.characters(max_codepoint=0x1F)))
        text = json.dumps(notebook)
    return kind, text.encode()


@dataclass
class Figures:
    """What a compiler fuzzing run did."""

    cases: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    exits: Counter[int] = field(default_factory=Counter)


def check(path: Path, data: bytes) -> int:
    """`nbfreeze check` on one mutated notebook: its exit, asserted clear."""
    path.write_bytes(data)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["check", str(path)])
    said = out.getvalue() + err.getvalue()
    where = f"{data[:300]!r}: exit {code}\n{said[-1500:]}"
    assert code in (0, 1, 2), where
    assert TRACEBACK not in said and "internal error" not in said, where
    if code:
        assert path.name in said or re.search(r"\bcell \d+", said), where
    return code


def fuzz_compiler(directory: Path, cases: int, start: int = 0) -> Figures:
    """Check `cases` mutated notebooks, written in `directory`."""
    notebooks = seeds()
    figures = Figures()
    path = directory / "mutant.ipynb"

    @seed(start)
    @settings(
        max_examples=cases,
        deadline=None,
        database=None,
        phases=("generate", "shrink"),
        suppress_health_check=list(HealthCheck),
    )
    @given(mutants(notebooks))
    def one(mutant: tuple[str, bytes]) -> None:
        figures.exits[check(path, mutant[1])] += 1
        figures.cases += 1
        figures.kinds[mutant[0]] += 1

    one()
    return figures
