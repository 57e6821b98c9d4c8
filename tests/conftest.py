"""Shared fixtures: notebooks built inside the test, written to its temporary directory."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest
from nbformat import v4

from freezer.compile import compile_notebook
from freezer.ir import Graph

# tornado.testing's gen_test gives a test 5 s by default: a busy CI machine can need more,
# and no test here asserts a duration.
os.environ.setdefault("ASYNC_TEST_TIMEOUT", "120")

MD = "md:"


def notebook_from(cells: tuple[str, ...]) -> nbformat.NotebookNode:
    """A Python notebook whose cells are code, or Markdown when they start with `md:`."""
    made = [
        v4.new_markdown_cell(text[len(MD) :]) if text.startswith(MD) else v4.new_code_cell(text)
        for text in cells
    ]
    return v4.new_notebook(
        cells=made,
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        },
    )


@pytest.fixture
def write_notebook(tmp_path: Path) -> Callable[..., Path]:
    """Write a notebook of the given cell sources and return its path."""

    def write(*cells: str, name: str = "nb.ipynb") -> Path:
        path = tmp_path / name
        nbformat.write(notebook_from(cells), path)
        return path

    return write


@pytest.fixture
def compile_cells(write_notebook: Callable[..., Path]) -> Callable[..., Graph]:
    """Compile a notebook of the given cell sources."""

    def compile_(*cells: str) -> Graph:
        return compile_notebook(write_notebook(*cells))

    return compile_


def errors(graph: Graph) -> list[tuple[int | None, int | None, str]]:
    """(cell, line, message) of each error."""
    return [(d.cell, d.line, d.message) for d in graph.diagnostics if d.severity == "error"]


def stage(graph: Graph, name: str):
    """The stage called `name`."""
    return next(s for s in graph.stages if s.name == name)


pytest_plugins = ["databases", "browser"]
