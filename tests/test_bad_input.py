"""Whatever the input, the author gets a located message and never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import nbformat
import pytest
from nbformat import v4

from freezer.compile import compile_notebook


def check(path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "freezer", "check", str(path)], capture_output=True, text=True
    )


def assert_clear_failure(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    for text in expected:
        assert text in result.stderr


def test_missing_file(tmp_path):
    assert_clear_failure(check(tmp_path / "nope.ipynb"), "nope.ipynb", "no such file")


def test_directory_instead_of_notebook(tmp_path):
    assert_clear_failure(check(tmp_path), "is a directory")


def test_file_that_is_not_json(tmp_path):
    path = tmp_path / "broken.ipynb"
    path.write_text('{"cells": [\n  {"cell_type": "code",,\n')
    assert_clear_failure(check(path), "broken.ipynb", "not valid JSON at line 2")


def test_binary_file(tmp_path):
    path = tmp_path / "image.ipynb"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    assert_clear_failure(check(path), "not UTF-8")


def test_json_that_is_not_a_notebook(tmp_path):
    path = tmp_path / "data.ipynb"
    path.write_text(json.dumps({"hello": "world"}))
    assert_clear_failure(check(path), "no `cells` list")


def test_invalid_nbformat_document_names_where(tmp_path):
    notebook = v4.new_notebook(cells=[v4.new_code_cell("x = 1")])
    data = json.loads(nbformat.writes(notebook))
    data["cells"][0]["cell_type"] = "banana"
    path = tmp_path / "invalid.ipynb"
    path.write_text(json.dumps(data))
    assert_clear_failure(check(path), "not a valid nbformat 4 notebook", "cells/0")


def test_notebook_of_another_kernel_language(tmp_path):
    notebook = v4.new_notebook(
        cells=[v4.new_code_cell("x <- 1")],
        metadata={"kernelspec": {"name": "ir", "language": "R", "display_name": "R"}},
    )
    path = tmp_path / "r.ipynb"
    nbformat.write(notebook, path)
    assert_clear_failure(check(path), "is a R notebook", "Python notebooks only")


@pytest.mark.parametrize(
    "cells", [[], [v4.new_markdown_cell("# only words")], [v4.new_code_cell("")]]
)
def test_notebook_without_code(tmp_path, cells):
    path = tmp_path / "empty.ipynb"
    nbformat.write(v4.new_notebook(cells=cells), path)
    assert_clear_failure(check(path), "has no code cells")


def test_syntax_error_is_located_and_other_cells_still_checked(write_notebook):
    graph = compile_notebook(write_notebook("x = 1", "md:text", "y = (\nz = 2", "print(w)"))
    found = [(d.cell, d.line, d.message) for d in graph.diagnostics]
    assert found[0][:2] == (3, 1) and "syntax error" in found[0][2]
    assert (4, 1) == found[1][:2] and "`w`" in found[1][2]


def test_syntax_error_in_the_cli_output(write_notebook):
    result = check(write_notebook("def f(:\n    pass"))
    assert_clear_failure(result, "cell 1, line 1: error: syntax error")


def test_compiler_never_runs_notebook_code(write_notebook, tmp_path):
    marker = tmp_path / "ran"
    path = write_notebook(f"open({str(marker)!r}, 'w').write('x')\nimport os\nos.abort()")
    graph = compile_notebook(path)
    assert not marker.exists() and graph.stages


def test_statements_only_the_compiler_refuses_are_syntax_errors(write_notebook):
    graph = compile_notebook(write_notebook("x = 1\nreturn x", "def f():\n    yield 1\nyield 2"))
    assert [(d.cell, d.line) for d in graph.diagnostics] == [(1, 2), (2, 3)]
    assert "'return' outside function" in graph.diagnostics[0].message


def test_top_level_await_is_allowed_as_in_jupyter(write_notebook):
    graph = compile_notebook(write_notebook("import asyncio\nawait asyncio.sleep(0)"))
    assert not graph.diagnostics
