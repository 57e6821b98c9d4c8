"""`from m import *`: a notebook that runs top to bottom in Jupyter is never rejected.

Where `m` can be imported when the notebook is checked, the star import binds m's public
names like any other binding; where it cannot, a later read of a name nothing else binds
is assumed to come from the nearest earlier star import, with a warning. Each rule on a
cell of two lines; the modules are written by the test beside the notebook, where Jupyter
(whose working directory is the notebook's folder) imports them from.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import errors, stage

from freezer.bundle import build_bundle
from freezer.names import analyse

MISSING = "nbfreeze_no_such_module"


def warnings(graph) -> list[tuple[int | None, int | None, str]]:
    return [(d.cell, d.line, d.message) for d in graph.diagnostics if d.severity == "warning"]


@pytest.fixture
def module(tmp_path: Path):
    """Write a module beside the test's notebook: `module("name", "source")`."""

    def write(name: str, source: str) -> str:
        (tmp_path / f"{name}.py").write_text(source)
        return name

    return write


@pytest.fixture
def three(module) -> str:
    """A stand-in for pythreejs: a module with `__all__`."""
    return module(
        "threelike",
        "__all__ = ['OrbitControls', 'Scene', 'registry']\n"
        "class OrbitControls:\n    pass\nclass Scene:\n    pass\n"
        "class NotExported:\n    pass\nregistry = []\n",
    )


# names of a module that can be imported


def test_star_import_binds_the_names_in_all(compile_cells, three):
    graph = compile_cells(f"#| stage: a\nfrom {three} import *", "#| stage: b\nc = OrbitControls()")
    assert not graph.diagnostics
    assert stage(graph, "a").defines == ("OrbitControls", "Scene", "registry")
    assert stage(graph, "b").depends_on == ("a",) and stage(graph, "b").uses == ("OrbitControls",)


def test_a_name_the_module_does_not_export_is_still_an_error(compile_cells, three):
    graph = compile_cells(f"from {three} import *", "#| stage: b\nNotExported()")
    [(cell, line, message)] = errors(graph)
    assert (cell, line) == (2, 2) and "`NotExported`" in message


def test_without_all_the_public_names_are_bound(compile_cells, module):
    name = module("plain", "import os\nScene = 1\n_private = 2\n")
    graph = compile_cells(f"#| stage: a\nfrom {name} import *", "#| stage: b\nprint(Scene)")
    assert stage(graph, "a").defines == ("Scene", "os") and not graph.diagnostics


def test_a_later_binding_of_a_star_imported_name_wins(compile_cells, three):
    graph = compile_cells(
        f"#| stage: a\nfrom {three} import *", "#| stage: b\nScene = 2", "#| stage: c\nScene"
    )
    assert stage(graph, "c").depends_on == ("b",)


def test_a_module_whose_import_fails_does_not_break_check(compile_cells, module):
    name = module("broken", "raise RuntimeError('needs a display')\n")
    graph = compile_cells(f"#| stage: a\nfrom {name} import *", "#| stage: b\nScene()")
    assert not errors(graph) and stage(graph, "b").depends_on == ("a",)
    [(_, _, message)] = warnings(graph)
    assert "needs a display" in message


def test_a_slow_import_is_cut_off(compile_cells, module, monkeypatch):
    monkeypatch.setattr("freezer.modules.IMPORT_SECONDS", 0.5)
    name = module("slow", "import time\ntime.sleep(30)\n")
    graph = compile_cells(f"#| stage: a\nfrom {name} import *", "#| stage: b\nScene()")
    assert not errors(graph) and "longer than" in warnings(graph)[0][2]


def test_a_module_that_prints_on_import_is_still_listed(compile_cells, module):
    name = module("chatty", "print('hello')\nScene = 1\n")
    graph = compile_cells(f"#| stage: a\nfrom {name} import *", "#| stage: b\nScene")
    assert stage(graph, "a").defines == ("Scene",) and not graph.diagnostics


def test_checking_imports_the_module_in_another_interpreter(compile_cells, three):
    compile_cells(f"from {three} import *", "OrbitControls")
    assert three not in sys.modules


# a module that cannot be imported: any name


def test_unimportable_star_import_binds_any_name_with_a_warning(compile_cells):
    graph = compile_cells(f"#| stage: a\nfrom {MISSING} import *", "#| stage: b\nOrbitControls()")
    assert not errors(graph)
    assert stage(graph, "b").depends_on == ("a",) and stage(graph, "b").uses == ("OrbitControls",)
    [(cell, line, message)] = warnings(graph)
    assert (cell, line) == (2, 2)
    assert "`OrbitControls`" in message and f"`from {MISSING} import *`" in message


def test_any_name_resolves_to_the_nearest_earlier_star_import(compile_cells):
    graph = compile_cells(
        f"#| stage: a\nfrom {MISSING} import *",
        f"#| stage: b\nfrom {MISSING}_too import *",
        "#| stage: c\nScene()",
    )
    assert stage(graph, "c").depends_on == ("b",) and f"{MISSING}_too" in warnings(graph)[0][2]


def test_a_name_bound_elsewhere_comes_from_that_binding(compile_cells):
    graph = compile_cells(
        "#| stage: a\nx = 1", f"#| stage: b\nfrom {MISSING} import *", "#| stage: c\nx"
    )
    assert stage(graph, "c").depends_on == ("a",) and not graph.diagnostics


def test_a_star_import_in_the_same_stage_needs_no_edge(compile_cells):
    graph = compile_cells(f"#| stage: a\nfrom {MISSING} import *\nScene()")
    assert stage(graph, "a").depends_on == () and len(warnings(graph)) == 1
    assert not errors(graph)


def test_each_name_is_warned_about_once(compile_cells):
    graph = compile_cells(f"from {MISSING} import *", "Scene()\nScene()", "#| stage: b\nScene")
    assert len(warnings(graph)) == 1


def test_builtins_after_a_star_import_are_still_builtins(compile_cells):
    graph = compile_cells(f"from {MISSING} import *", "print(len([]))")
    assert not graph.diagnostics


def test_a_read_before_any_star_import_is_still_an_error(compile_cells):
    graph = compile_cells("#| stage: a\nScene()", f"#| stage: b\nfrom {MISSING} import *")
    [(cell, line, _)] = errors(graph)
    assert (cell, line) == (1, 2)


def test_a_star_import_may_bring_back_a_deleted_name(compile_cells):
    graph = compile_cells("x = 1\ndel x", f"from {MISSING} import *\nprint(x)")
    assert not errors(graph) and len(warnings(graph)) == 1


def test_a_function_reading_a_name_of_a_later_star_import_in_its_stage(compile_cells):
    graph = compile_cells(f"def f():\n    return Scene()\nfrom {MISSING} import *\nf()")
    assert not errors(graph)


# where Python forbids it


def test_star_import_in_a_function_is_pythons_syntax_error(compile_cells):
    graph = compile_cells("def f():\n    from os import *")
    [(cell, line, message)] = errors(graph)
    assert (cell, line) == (1, 2) and "import * only allowed at module level" in message


def test_star_import_in_a_class_body_is_pythons_syntax_error(compile_cells):
    graph = compile_cells("class C:\n    from os import *")
    [(cell, line, message)] = errors(graph)
    assert (cell, line) == (1, 2) and "import * only allowed at module level" in message


def test_star_import_inside_a_top_level_block_is_a_star_import():
    [event] = analyse(ast.parse("if True:\n    from os.path import *")).events
    assert (event.kind, event.name, event.line) == ("star", "os.path", 2)


# scope and the shared-value rules


@pytest.mark.parametrize("source", ["three", "missing"])
def test_a_user_stage_mutating_a_star_imported_shared_value_is_an_error(
    compile_cells, three, source
):
    name = three if source == "three" else MISSING
    graph = compile_cells(
        f"from {name} import *",
        "#| stage: mine\n#| input: each\nw = 1\nw",
        "#| stage: use\nn = w\nregistry.append(n)",
    )
    [(cell, line, message)] = errors(graph)
    assert (cell, line) == (3, 3) and "`registry`" in message and "stage `start`" in message


def test_a_star_import_in_an_each_stage_makes_its_readers_per_user(compile_cells, three):
    graph = compile_cells(
        f"#| stage: mine\n#| input: each\nfrom {three} import *\nw = 1\nw",
        "#| stage: use\nc = Scene()",
    )
    assert stage(graph, "use").scope == "user"


# the defect: pythreejs


@pytest.mark.parametrize("source", ["pythreejs", "threelike", MISSING])
def test_pythreejs_notebook_compiles(compile_cells, three, source):
    if source == "pythreejs" and importlib.util.find_spec("pythreejs") is None:
        pytest.skip("pythreejs is not installed")
    graph = compile_cells(
        f"from {source} import *",
        "#| stage: view\ncontrols = OrbitControls(controlling=None)\ncontrols",
    )
    assert not errors(graph)
    assert stage(graph, "view").depends_on == ("start",)
    assert "OrbitControls" in stage(graph, "view").uses


# what check prints and the bundle holds


def test_check_prints_the_warning_and_json_carries_it(write_notebook):
    path = write_notebook(f"from {MISSING} import *", "#| stage: b\nScene()")
    text = subprocess.run(
        [sys.executable, "-m", "freezer", "check", str(path)], capture_output=True, text=True
    )
    assert text.returncode == 0 and "cell 2, line 2: warning: `Scene`" in text.stderr
    result = subprocess.run(
        [sys.executable, "-m", "freezer", "check", "--json", str(path)],
        capture_output=True,
        text=True,
    )
    data = json.loads(result.stdout)
    assert data["ok"] is True
    [problem] = data["diagnostics"]
    assert problem["severity"] == "warning" and MISSING in problem["message"]


def test_the_manifest_lists_star_imported_names_and_modules(write_notebook, three, tmp_path):
    path = write_notebook(f"from {three} import *\nfrom {MISSING} import *", "#| stage: b\nScene")
    first = build_bundle(path, tmp_path / "one") / "manifest.json"
    second = build_bundle(path, tmp_path / "two") / "manifest.json"
    assert first.read_bytes() == second.read_bytes()
    start = json.loads(first.read_text())["stages"][0]
    assert start["defines"] == ["OrbitControls", "Scene", "registry"]
    assert start["star_imports"] == [three, MISSING]
