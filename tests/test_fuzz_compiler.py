"""`nbfreeze check` on mutated notebooks: a clear message naming the file or the cell,
exit 0, 1 or 2, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import nbformat
from conftest import notebook_from
from fuzz_compiler import ROOT, check, fuzz_compiler, seeds


def test_mutated_notebooks_get_clear_diagnostics(tmp_path):
    figures = fuzz_compiler(tmp_path, 300, start=5)
    assert figures.cases == 300
    assert figures.exits[0] and figures.exits[1]  # some mutants still compile, most do not


def test_a_truncated_notebook_is_named_by_the_command_itself(tmp_path):
    path = tmp_path / "cut.ipynb"
    path.write_text('{"cells": [{"cell_type": "code", "sou')
    result = subprocess.run(
        [sys.executable, "-m", "freezer", "check", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode in (1, 2)
    assert "cut.ipynb" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_the_seeds_are_the_examples_and_every_documented_notebook(tmp_path):
    notebooks = seeds()
    assert len(notebooks) > len(list((ROOT / "examples").glob("*.ipynb")))
    for number, notebook in enumerate(notebooks):
        assert check(tmp_path / f"seed{number}.ipynb", json.dumps(notebook).encode()) in (0, 1)


def test_a_lone_surrogate_escape_is_a_clear_error_naming_the_file(tmp_path):
    # It was an "internal error" (exit 3): the source could not be encoded to hash it.
    notebook = seeds()[0]
    notebook["cells"][0]["source"] = "\ud800"
    path = tmp_path / "odd.ipynb"
    code = check(path, json.dumps(notebook).encode())
    assert code == 1


def test_an_unindent_that_matches_no_outer_level_names_the_cell(tmp_path):
    # IPython's transformer raised IndentationError: an "internal error" (exit 3).
    notebook = json.loads(nbformat.writes(notebook_from(("def f():\n        x = 1\n    y = 2\n",))))
    path = tmp_path / "indent.ipynb"
    assert check(path, json.dumps(notebook).encode()) == 1


def test_a_number_in_digits_python_cannot_read_is_a_clear_error(tmp_path):
    # "²" passes str.isdigit and fails int(): an "internal error" (exit 3).
    for annotation in ("#| overlap: ²", "#| overlap: 1..²", "#| batch: ²"):
        cells = (f"#| stage: label\n#| input: pool\n{annotation}\nx = 1",)
        notebook = json.loads(nbformat.writes(notebook_from(cells)))
        path = tmp_path / "digits.ipynb"
        assert check(path, json.dumps(notebook).encode()) == 1, annotation
