"""IPython syntax: %matplotlib kept, display-only magics and %pip dropped with a warning,
others refused."""

from __future__ import annotations

from conftest import errors


def warnings(graph):
    return [(d.cell, d.line, d.message) for d in graph.diagnostics if d.severity == "warning"]


def test_display_only_magics_are_dropped_with_a_warning(compile_cells):
    graph = compile_cells("%load_ext autoreload\n%autoreload 2\n%config InlineBackend.x = 1\nx = 1")
    assert not errors(graph)
    assert [line for _, line, _ in warnings(graph)] == [1, 2, 3]
    assert graph.cells[0].code.splitlines() == ["", "", "", "x = 1"]


def test_matplotlib_magics_are_kept_for_the_runtime_to_switch_the_backend(compile_cells):
    graph = compile_cells("%matplotlib widget\n%matplotlib ipympl\n%matplotlib inline\n%matplotlib")
    assert not graph.diagnostics
    assert graph.cells[0].code.splitlines() == [
        "get_ipython().run_line_magic('matplotlib', 'widget')",
        "get_ipython().run_line_magic('matplotlib', 'ipympl')",
        "get_ipython().run_line_magic('matplotlib', 'inline')",
        "get_ipython().run_line_magic('matplotlib', '')",
    ]


def test_a_gui_matplotlib_backend_is_kept_with_a_warning_that_figures_are_pngs(compile_cells):
    graph = compile_cells("x = 1\n%matplotlib qt")
    [(cell, line, message)] = warnings(graph)
    assert (cell, line) == (1, 2) and "`%matplotlib qt`" in message and "PNG" in message
    assert "run_line_magic('matplotlib', 'qt')" in graph.cells[0].code


def test_pip_install_is_dropped_and_lists_what_to_install(compile_cells):
    graph = compile_cells("%pip install -q scikit-learn 'pandas>=2'\nimport numpy")
    [(cell, line, message)] = warnings(graph)
    assert (cell, line) == (1, 1)
    assert "scikit-learn, pandas>=2" in message
    assert graph.requirements == ("scikit-learn", "pandas>=2")


def test_magic_inside_a_block_keeps_the_block_valid(compile_cells):
    graph = compile_cells("if True:\n    %autoreload 2\nx = 1")
    assert not errors(graph)
    assert graph.cells[0].code.splitlines()[1] == "    pass"


def test_shell_escapes_are_errors(compile_cells):
    graph = compile_cells("x = 1\n!ls -l", "files = !ls")
    assert [(cell, line) for cell, line, _ in errors(graph)] == [(1, 2), (2, 1)]
    assert all("shell escape" in m for _, _, m in errors(graph))


def test_shell_cell_magic_is_an_error(compile_cells):
    graph = compile_cells("%%bash\necho hi")
    [(cell, line, message)] = errors(graph)
    assert (cell, line) == (1, 1) and "`%%bash`" in message


def test_other_magics_are_errors_naming_the_magic(compile_cells):
    graph = compile_cells("x = 1\n%timeit x + 1", "%load_ext something_else")
    assert [(cell, line) for cell, line, _ in errors(graph)] == [(1, 2), (2, 1)]
    assert "`%timeit`" in errors(graph)[0][2]


def test_help_syntax_is_an_error(compile_cells):
    graph = compile_cells("len?")
    assert "help syntax" in errors(graph)[0][2]


def test_magic_lines_keep_the_cells_line_numbers(compile_cells):
    graph = compile_cells("%matplotlib inline\n\nprint(nope)")
    assert errors(graph)[0][:2] == (1, 3)


def test_time_cell_magic_runs_the_body_with_a_warning(compile_cells):
    graph = compile_cells("%%time\nx = 1\nprint(x)")
    assert not errors(graph)
    assert graph.cells[0].code.splitlines() == ["", "x = 1", "print(x)"]
    assert "`%%time` is dropped" in graph.diagnostics[0].message


def test_gui_magic_is_dropped_with_a_warning(compile_cells):
    graph = compile_cells("%gui asyncio\nx = 1")
    assert not errors(graph) and graph.diagnostics[0].severity == "warning"
