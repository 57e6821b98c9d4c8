"""Python's scoping rules, one case at a time, as the compiler must see them.

Each test is one rule on a cell of two or three lines: what the cell reads and binds in
the notebook's namespace (`freezer.names.analyse`), and, where the rule is about stages,
the graph and the diagnostics of a small notebook built in the test.
"""

from __future__ import annotations

import ast

from conftest import errors, stage

from freezer.names import analyse


def events(code: str) -> list[tuple[str, str, bool]]:
    """(kind, name, deferred) of every event of a cell, in order."""
    return [(e.kind, e.name, e.deferred) for e in analyse(ast.parse(code)).events]


def reads(code: str) -> set[str]:
    """Global names the cell reads when it runs (not inside a function body)."""
    return {name for kind, name, deferred in events(code) if kind == "read" and not deferred}


def deferred_reads(code: str) -> set[str]:
    """Global names read inside the bodies of the functions the cell defines."""
    return {name for kind, name, deferred in events(code) if kind == "read" and deferred}


def binds(code: str) -> set[str]:
    return {name for kind, name, _ in events(code) if kind == "bind"}


def names_in(code: str) -> set[str]:
    """Every global name the cell does anything to."""
    return {name for _, name, _ in events(code)}


def located(graph) -> list[tuple[int | None, int | None]]:
    """(cell, line) of each error."""
    return [(cell, line) for cell, line, _ in errors(graph)]


# comprehensions


def test_comprehension_variable_does_not_leak(compile_cells):
    graph = compile_cells("squares = [i * i for i in range(3)]\nprint(i)")
    assert "i" not in binds("squares = [i * i for i in range(3)]")
    [(cell, line, message)] = errors(graph)
    assert (cell, line) == (1, 2) and "`i`" in message


def test_comprehension_variable_shadows_a_global_only_inside(compile_cells):
    graph = compile_cells("#| stage: a\nx = 5", "#| stage: b\ndoubled = [x * 2 for x in range(3)]")
    assert stage(graph, "b").uses == () and not graph.diagnostics


def test_walrus_in_comprehension_binds_the_enclosing_scope(compile_cells):
    graph = compile_cells(
        "#| stage: a\nany([(last := n) > 1 for n in range(3)])", "#| stage: b\nprint(last)"
    )
    assert not graph.diagnostics
    assert stage(graph, "a").defines == ("last",)
    assert stage(graph, "b").depends_on == ("a",)


def test_walrus_in_comprehension_inside_a_function_binds_a_local():
    code = "def f():\n    return [(y := n) for n in range(3)], y"
    assert "y" not in names_in(code)


def test_comprehension_in_a_class_body_does_not_see_class_names(compile_cells):
    code = "class C:\n    y = 1\n    z = [y for _ in range(3)]"
    assert "y" in reads(code)
    assert located(compile_cells(code)) == [(1, 3)]


def test_first_iterable_of_a_class_body_comprehension_sees_class_names():
    code = "class C:\n    y = [1, 2]\n    z = [q for q in y]"
    assert "y" not in names_in(code)


# functions and lambdas


def test_function_parameters_are_not_global_reads():
    code = "def f(a, /, b, *args, c, **kw):\n    return a, b, args, c, kw"
    assert names_in(code) == {"f"}


def test_lambda_parameters_are_local():
    code = "f = lambda a, *rest, k=1: a + len(rest) + k"
    assert names_in(code) == {"f", "len"}


def test_function_locals_are_not_global_reads():
    code = "def f():\n    total = 1\n    return total"
    assert names_in(code) == {"f"}


def test_name_assigned_anywhere_in_a_function_is_local_even_before_the_assignment():
    # `print(x)` raises UnboundLocalError when called: it never reads the global `x`
    code = "def f():\n    print(x)\n    x = 1"
    assert "x" not in names_in(code)


def test_default_values_are_read_at_definition(compile_cells):
    code = "def f(a=d, *, k=kd):\n    return a + k"
    assert {"d", "kd"} <= reads(code)
    # read when the `def` runs, so binding `d` later in the stage is too late
    graph = compile_cells("#| stage: a\ndef f(a=d):\n    return a\nd = 1")
    assert located(graph) == [(1, 2)]


def test_lambda_default_values_are_read_at_definition():
    assert "d" in reads("f = lambda a=d: a")


def test_decorators_are_read_at_definition(compile_cells):
    code = "@register\ndef f():\n    pass"
    assert "register" in reads(code)
    graph = compile_cells("#| stage: a\n@register\ndef f():\n    pass\nregister = print")
    assert located(graph) == [(1, 2)]


def test_parameter_annotations_are_read_at_definition():
    code = "def f(x: Item) -> Result:\n    return x"
    assert {"Item", "Result"} <= reads(code)


def test_annotations_inside_a_function_body_are_not_evaluated():
    code = "def f():\n    y: Unknown = 1\n    return y"
    assert "Unknown" not in names_in(code)


def test_reads_in_nested_function_count_unless_stage_binds_the_name(compile_cells):
    reads_earlier = compile_cells("#| stage: a\nc = 1", "#| stage: b\ndef f():\n    return c")
    assert stage(reads_earlier, "b").uses == ("c",)
    assert stage(reads_earlier, "b").depends_on == ("a",)
    binds_itself = compile_cells("#| stage: a\nc = 1", "#| stage: b\ndef f():\n    return c\nc = 2")
    assert stage(binds_itself, "b").uses == () and not binds_itself.diagnostics


def test_read_inside_a_function_of_a_name_nothing_binds_is_an_error_at_its_line(compile_cells):
    graph = compile_cells("x = 1", "#| stage: b\ndef f():\n    return missing")
    [(cell, line, message)] = errors(graph)
    assert (cell, line) == (2, 3) and "`missing`" in message


def test_lambda_body_reads_are_deferred(compile_cells):
    assert deferred_reads("f = lambda: c") == {"c"}
    graph = compile_cells("#| stage: a\nf = lambda: c\nc = 1")
    assert not graph.diagnostics


def test_nested_function_reads_the_enclosing_functions_local_not_a_global():
    code = "def outer():\n    v = 1\n    def inner():\n        return v\n    return inner"
    assert names_in(code) == {"outer"}


def test_import_inside_function_is_local(compile_cells):
    code = "def f():\n    import os\n    return os.getcwd()"
    assert names_in(code) == {"f"}
    graph = compile_cells(code, "#| stage: b\nos")
    assert located(graph) == [(2, 2)]


def test_dunder_class_inside_a_method_is_not_a_global(compile_cells):
    graph = compile_cells("class C:\n    def m(self):\n        return __class__")
    assert not graph.diagnostics


# global and nonlocal


def test_global_in_function_binds_a_global(compile_cells):
    graph = compile_cells(
        "#| stage: a\ndef setup():\n    global cfg\n    cfg = 1",
        "#| stage: b\nsetup()\nprint(cfg)",
    )
    assert not graph.diagnostics
    assert "cfg" in stage(graph, "a").defines
    assert stage(graph, "b").uses == ("cfg", "setup")


def test_global_in_function_makes_its_reads_global(compile_cells):
    code = "def bump():\n    global n\n    return n + 1"
    assert deferred_reads(code) == {"n"}


def test_global_in_a_class_body_binds_at_definition():
    code = "class C:\n    global g\n    g = 1"
    assert ("bind", "g", False) in events(code)


def test_nonlocal_is_not_a_global(compile_cells):
    code = (
        "def outer():\n    n = 0\n    def inner():\n        nonlocal n\n"
        "        n += 1\n        return n\n    return inner"
    )
    assert names_in(code) == {"outer"}
    graph = compile_cells("#| stage: a\nn = 5", f"#| stage: b\n{code}")
    assert stage(graph, "b").uses == () and not graph.diagnostics


def test_del_of_a_global_inside_a_function_does_not_delete_it_at_definition(compile_cells):
    # `reset` is never called: running the notebook prints `{}`
    graph = compile_cells(
        "cache = {}",
        "#| stage: b\ndef reset():\n    global cache\n    del cache",
        "#| stage: c\nprint(cache)",
    )
    assert not errors(graph)


# class bodies


def test_class_body_names_are_not_visible_in_methods(compile_cells):
    code = "class C:\n    k = 1\n    def m(self):\n        return k"
    assert deferred_reads(code) == {"k"}
    # the method's `k` is the global one, made by stage `a`
    graph = compile_cells("#| stage: a\nk = 0", f"#| stage: b\n{code}")
    assert stage(graph, "b").uses == ("k",) and stage(graph, "b").depends_on == ("a",)


def test_class_body_reads_global_before_local_assignment(compile_cells):
    code = "class C:\n    x = x + 1"
    assert reads(code) == {"x"}
    graph = compile_cells("#| stage: a\nx = 1", f"#| stage: b\n{code}")
    assert stage(graph, "b").depends_on == ("a",) and stage(graph, "b").defines == ("C",)


def test_class_body_assignments_do_not_bind_globals():
    assert binds("class C:\n    x = 1\n    def m(self):\n        pass") == {"C"}


def test_class_bases_keywords_and_decorators_are_read_at_definition():
    code = "@tag\nclass C(Base, metaclass=Meta):\n    pass"
    assert reads(code) == {"tag", "Base", "Meta"}


def test_class_inside_a_function_sees_the_functions_locals():
    code = "def f():\n    x = 1\n    class D:\n        y = x\n    return D"
    assert names_in(code) == {"f"}


# deletion and exceptions


def test_deleted_name_is_not_available_later(compile_cells):
    graph = compile_cells("x = 1", "#| stage: b\ndel x", "#| stage: c\ny = 2\nprint(x)")
    [(cell, line, message)] = errors(graph)
    assert (cell, line) == (3, 3)
    assert "`x`" in message and "cell 2" in message


def test_deleted_then_rebound_name_is_available(compile_cells):
    graph = compile_cells("x = 1", "#| stage: b\ndel x\nx = 2", "#| stage: c\nprint(x)")
    assert not graph.diagnostics and stage(graph, "c").depends_on == ("b",)


def test_del_of_a_name_nothing_binds_is_an_error(compile_cells):
    assert located(compile_cells("x = 1\ndel y")) == [(1, 2)]


def test_del_of_a_builtin_name_that_no_cell_binds_is_an_error(compile_cells):
    # Python: NameError: name 'len' is not defined (builtins cannot be deleted)
    assert located(compile_cells("x = 1\ndel len")) == [(1, 2)]


def test_deleting_a_global_that_shadows_a_builtin_falls_back_to_the_builtin(compile_cells):
    # after `del list` the name is the builtin again: `list("ab")` runs
    graph = compile_cells("list = [3]", "#| stage: b\ndel list", "#| stage: c\nx = list('ab')")
    assert not errors(graph)


def test_except_name_is_unbound_after_handler(compile_cells):
    graph = compile_cells(
        "e = 1",
        "#| stage: b\ntry:\n    1 / 0\nexcept ZeroDivisionError as e:\n    pass",
        "#| stage: c\nprint(e)",
    )
    assert located(graph) == [(3, 2)]


def test_except_name_error_points_at_the_handler_not_at_a_del(compile_cells):
    graph = compile_cells(
        "try:\n    1 / 0\nexcept ZeroDivisionError as e:\n    pass", "#| stage: b\nprint(e)"
    )
    [(_, _, message)] = errors(graph)
    assert "except" in message and "del e" not in message


def test_except_name_is_bound_inside_the_handler():
    code = "try:\n    pass\nexcept ValueError as err:\n    print(err)"
    assert [e for e in events(code) if e[1] == "err"] == [
        ("bind", "err", False),
        ("read", "err", False),
        ("delete", "err", False),
    ]


def test_except_name_inside_a_function_is_local():
    code = "def f():\n    try:\n        pass\n    except ValueError as err:\n        return err"
    assert names_in(code) == {"f", "ValueError"}


# targets that bind


def test_with_and_for_targets_bind(compile_cells):
    code = (
        "import contextlib\nfor k, (j, *rest) in [(1, (2, 3))]:\n    pass\n"
        "with contextlib.nullcontext(4) as v:\n    pass"
    )
    assert binds(code) == {"contextlib", "k", "j", "rest", "v"}
    graph = compile_cells(f"#| stage: a\n{code}", "#| stage: b\nprint(k, j, rest, v)")
    assert not graph.diagnostics
    assert stage(graph, "b").uses == ("j", "k", "rest", "v")


def test_imports_bind_their_top_name_or_alias():
    code = "import os.path\nimport numpy as np\nfrom json import dumps as to_json"
    assert binds(code) == {"os", "np", "to_json"}


def test_walrus_at_module_level_binds():
    assert binds("if (n := 10) > 5:\n    pass") == {"n"}


def test_augmented_assignment_reads_then_binds(compile_cells):
    assert [e for e in events("total += 1") if e[0] != "mutate"] == [
        ("read", "total", False),
        ("bind", "total", False),
    ]
    graph = compile_cells("#| stage: a\ntotal = 0", "#| stage: b\ntotal += 1")
    assert stage(graph, "b").uses == ("total",) and stage(graph, "b").defines == ("total",)
    assert located(compile_cells("#| stage: a\nx = 0\ntotal += 1")) == [(1, 3)]


def test_annotation_without_value_does_not_bind(compile_cells):
    graph = compile_cells("#| stage: a\nx: int", "#| stage: b\nprint(x)")
    assert stage(graph, "a").defines == ()
    assert located(graph) == [(2, 2)]


def test_module_level_annotation_is_evaluated(compile_cells):
    # at module level Python evaluates the annotation: NameError for an unknown one
    assert located(compile_cells("x = 1\ny: Unknown = 2")) == [(1, 2)]


def test_annotation_of_an_attribute_without_value_does_not_mutate(compile_cells):
    # `box.size: int` evaluates `box` but assigns nothing
    graph = compile_cells(
        "box = [1]",
        "#| stage: mine\n#| input: each\nw = 1\nw",
        "#| stage: use\nn = w\nbox.size: int",
    )
    assert not errors(graph)


# match statements


def test_match_capture_patterns_bind(compile_cells):
    code = (
        "match command:\n    case [verb, *args]:\n        pass\n"
        "    case {'k': value, **extra}:\n        pass\n    case str() as whole:\n        pass"
    )
    assert binds(code) == {"verb", "args", "value", "extra", "whole"}
    graph = compile_cells("command = ['go', 1]", f"#| stage: b\n{code}", "#| stage: c\nverb")
    assert not graph.diagnostics and stage(graph, "c").depends_on == ("b",)


def test_match_value_patterns_read(compile_cells):
    code = "match colour:\n    case Colour.RED:\n        pass\n    case Point(x=px):\n        pass"
    assert reads(code) == {"colour", "Colour", "Point"}
    assert binds(code) == {"px"}
    graph = compile_cells(
        "#| stage: a\nimport enum\nColour = enum.Enum('Colour', 'RED')\ncolour = Colour.RED\n"
        "Point = complex",
        f"#| stage: b\n{code}",
    )
    assert stage(graph, "b").uses == ("Colour", "Point", "colour")


def test_match_guard_reads_and_capture_binds_before_it():
    code = "match n:\n    case m if m > limit:\n        pass"
    assert reads(code) == {"n", "m", "limit"}
    assert events(code).index(("bind", "m", False)) < events(code).index(("read", "m", False))


# imports and builtins


def test_star_import_binds_names_it_cannot_list(compile_cells):
    graph = compile_cells("x = 1", "#| stage: b\nfrom nbfreeze_no_such_module import *\nprint(y)")
    assert not errors(graph)  # tests/test_star_imports.py has the rules


def test_builtins_are_not_dependencies(compile_cells):
    graph = compile_cells("#| stage: a\nx = 1", "#| stage: b\nprint(len(range(3)), sorted([x]))")
    assert stage(graph, "b").uses == ("x",) and not graph.diagnostics


def test_a_global_that_shadows_a_builtin_is_a_dependency(compile_cells):
    graph = compile_cells("#| stage: a\nlen = 3", "#| stage: b\nprint(len)")
    assert stage(graph, "b").depends_on == ("a",) and stage(graph, "b").uses == ("len",)
