"""Edges by nearest earlier binding, shared/user scope, and the rules on shared values."""

from __future__ import annotations

from conftest import errors, stage


def test_edge_goes_to_the_nearest_earlier_binding(compile_cells):
    graph = compile_cells("#| stage: a\nx = 1", "#| stage: b\nx = 2", "#| stage: c\nprint(x)")
    assert stage(graph, "c").depends_on == ("b",)
    assert [(e.source, e.target, e.names) for e in graph.edges] == [("b", "c", ("x",))]


def test_a_stage_reading_its_own_binding_has_no_edge(compile_cells):
    graph = compile_cells("#| stage: a\nx = 1", "#| stage: b\nx = 2\nprint(x)")
    assert stage(graph, "b").depends_on == () and stage(graph, "b").uses == ()


def test_read_before_the_stage_rebinds_comes_from_the_earlier_stage(compile_cells):
    graph = compile_cells("#| stage: a\nx = 1", "#| stage: b\nx = x + 1")
    assert stage(graph, "b").depends_on == ("a",)
    assert stage(graph, "b").defines == ("x",)


def test_use_before_definition_says_where_it_is_defined(compile_cells):
    graph = compile_cells("print(later)", "#| stage: b\nlater = 1")
    [(cell, line, message)] = errors(graph)
    assert (cell, line) == (1, 1) and "cell 2" in message


def test_builtins_and_ipython_names_are_not_dependencies(compile_cells):
    graph = compile_cells("print(len([1]))\ndisplay(get_ipython())")
    assert not graph.diagnostics and stage(graph, "start").uses == ()


def test_each_input_and_what_depends_on_it_run_per_user(compile_cells):
    graph = compile_cells(
        "data = [1, 2]",
        "#| stage: mine\n#| input: each\nw = list(data)\nw",
        "#| stage: score\ns = len(w)",
        "#| stage: total\nt = len(data)",
    )
    scopes = {s.name: s.scope for s in graph.stages}
    assert scopes == {"start": "shared", "mine": "user", "score": "user", "total": "shared"}


def test_pool_and_owner_stages_are_shared(compile_cells):
    graph = compile_cells(
        "data = [1]",
        "#| stage: p\n#| input: pool\ndata",
        "#| stage: o\n#| input: owner\ndata",
    )
    assert [s.scope for s in graph.stages] == ["shared", "shared", "shared"]


def test_pool_stage_on_a_user_stage_names_the_chain(compile_cells):
    graph = compile_cells(
        "#| stage: mine\n#| input: each\nw = [1]\nw",
        "#| stage: derived\nd = w * 2",
        "#| stage: review\n#| input: pool\nx = 1\nd",
    )
    [(cell, line, message)] = errors(graph)
    assert (cell, line) == (3, 4)
    assert "`review` → `derived` → `mine`" in message


def test_owner_stage_on_an_each_stage_is_an_error(compile_cells):
    graph = compile_cells(
        "#| stage: mine\n#| input: each\nw = [1]\nw", "#| stage: o\n#| input: owner\nw"
    )
    assert "`o` → `mine`" in errors(graph)[0][2]


def test_user_stage_mutating_a_shared_value_is_an_error_at_the_line(compile_cells):
    graph = compile_cells(
        "shared = []\ntable = {}",
        "#| stage: mine\n#| input: each\nw = 1\nw",
        "#| stage: use\nn = w\nshared.append(n)\ntable['k'] = n\ntable.size += 1\nshared += [n]",
    )
    assert [(cell, line) for cell, line, _ in errors(graph)] == [(3, 3), (3, 4), (3, 5), (3, 6)]
    assert "`.append()`" in errors(graph)[0][2] and "stage `start`" in errors(graph)[0][2]


def test_user_stage_may_change_its_own_copy(compile_cells):
    graph = compile_cells(
        "shared = []",
        "#| stage: mine\n#| input: each\nw = 1\nw",
        "#| stage: use\nmine = list(shared)\nmine.append(w)\nshared = [w]\nshared.append(1)",
    )
    assert not errors(graph)


def test_shared_stage_may_mutate_shared_values(compile_cells):
    graph = compile_cells("xs = []", "#| stage: more\nxs.append(1)")
    assert not errors(graph)


def test_mutation_inside_a_function_of_a_user_stage_is_caught(compile_cells):
    graph = compile_cells(
        "xs = []",
        "#| stage: mine\n#| input: each\nw = 1\nw",
        "#| stage: use\ndef add():\n    xs.append(w)\nadd()",
    )
    assert [(cell, line) for cell, line, _ in errors(graph)] == [(3, 3)]


def test_every_diagnostic_is_reported_not_only_the_first(compile_cells):
    graph = compile_cells("print(a)", "print(b)", "#| stage: x\n#| bogus: 1\nprint(c)")
    assert len(errors(graph)) == 4
