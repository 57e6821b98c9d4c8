"""The `#|` header keys and their validation, as an author writing them sees it."""

from __future__ import annotations

import pytest
from conftest import errors, stage


def test_stage_header_starts_a_stage_and_later_cells_join_it(compile_cells):
    graph = compile_cells("x = 1", "#| stage: second\ny = x", "z = y")
    assert [s.name for s in graph.stages] == ["start", "second"]
    assert stage(graph, "second").cells == (2, 3)


def test_cells_before_the_first_header_form_an_implicit_stage(compile_cells):
    graph = compile_cells("a = 1", "b = a")
    assert [(s.name, s.cells) for s in graph.stages] == [("start", (1, 2))]


def test_markdown_belongs_to_the_stage_it_precedes(compile_cells):
    graph = compile_cells("x = 1", "md:## Pick", "#| stage: pick\n#| input: each\nx")
    assert stage(graph, "pick").cells == (2, 3)


def test_every_key_is_read_with_its_type(compile_cells):
    graph = compile_cells(
        "items = [1, 2]",
        "#| stage: check\n#| input: pool\n#| overlap: 3\n#| batch: 5\n#| lease: 2h\n"
        "#| title: Is it right?\nitems",
        "#| stage: report\n#| show: true\nprint(items)",
    )
    check = stage(graph, "check")
    assert (check.kind, check.input, check.title) == ("input", "pool", "Is it right?")
    assert check.options == {"overlap": 3, "batch": 5, "lease_seconds": 7200, "merge": "majority"}
    assert stage(graph, "report").options == {"show": True}
    assert not errors(graph)


def test_trailing_comment_on_a_header_line_is_ignored(compile_cells):
    graph = compile_cells("#| stage: a            # starts a stage\n#| input: each  # mine\n1")
    assert (stage(graph, "a").input, errors(graph)) == ("each", [])


def test_misspelled_key_suggests_the_key_it_probably_meant(compile_cells):
    graph = compile_cells("x = 1", "#| stage: b\n#| inptu: each\nx")
    [problem] = [d for d in graph.diagnostics if d.severity == "error"]
    assert (problem.cell, problem.line) == (2, 2)
    assert "`inptu`" in problem.message and "`input`" in problem.hint


def test_unknown_key_lists_the_valid_keys(compile_cells):
    graph = compile_cells("#| stage: a\n#| colour: red\nx = 1")
    [problem] = graph.diagnostics
    assert "`stage`" in problem.hint and "`overlap`" in problem.hint


def test_bad_input_kind_lists_the_valid_ones(compile_cells):
    graph = compile_cells("#| stage: a\n#| input: everyone\n1")
    [problem] = graph.diagnostics
    assert (problem.cell, problem.line) == (1, 2)
    assert all(kind in problem.hint for kind in ("`each`", "`pool`", "`owner`"))


def test_bad_values_are_errors_at_their_line(compile_cells):
    graph = compile_cells(
        "#| stage: a\n#| input: pool\n#| overlap: many\n#| batch: 0\n#| lease: soon\n1",
        "#| stage: b\n#| show: maybe\nx = 1",
        "#| stage: 2nd\ny = 2",
    )
    assert [(cell, line) for cell, line, _ in errors(graph)] == [
        (1, 3),
        (1, 4),
        (1, 5),
        (2, 2),
        (3, 1),
    ]


def test_pool_options_on_a_compute_stage_are_errors(compile_cells):
    graph = compile_cells("#| stage: a\n#| overlap: 3\nx = 1")
    [(cell, line, message)] = errors(graph)
    assert (cell, line) == (1, 2)
    assert "only applies to `input: pool`" in message


def test_show_on_an_input_stage_is_an_error(compile_cells):
    graph = compile_cells("#| stage: a\n#| input: owner\n#| show: true\n1")
    [(cell, line, message)] = errors(graph)
    assert (cell, line) == (1, 3) and "compute stages" in message


def test_duplicate_stage_names_are_an_error_naming_the_first(compile_cells):
    graph = compile_cells("#| stage: a\nx = 1", "#| stage: a\ny = 2")
    [(cell, line, message)] = errors(graph)
    assert (cell, line) == (2, 1) and "cell 1" in message


def test_a_key_given_twice_is_an_error(compile_cells):
    graph = compile_cells("#| stage: a\n#| stage: b\nx = 1")
    assert [(cell, line) for cell, line, _ in errors(graph)] == [(1, 2)]


def test_options_on_a_cell_that_does_not_start_a_stage_are_errors(compile_cells):
    graph = compile_cells("#| stage: a\nx = 1", "#| input: each\nx")
    [(cell, line, message)] = errors(graph)
    assert (cell, line) == (2, 1) and "does not start a stage" in message


def test_input_stage_must_end_with_an_expression(compile_cells):
    graph = compile_cells("#| stage: a\n#| input: each\nw = 1\nw = 2")
    [(cell, line, message)] = errors(graph)
    assert (cell, line) == (1, 4) and "not an expression" in message


def test_input_stage_records_its_widget_expression(compile_cells):
    graph = compile_cells("#| stage: a\n#| input: each\nw = [1]\nw")
    assert stage(graph, "a").widget == "w"


def test_header_lines_below_code_are_plain_comments(compile_cells):
    graph = compile_cells("x = 1\n#| stage: nope")
    assert [s.name for s in graph.stages] == ["start"] and not graph.diagnostics


def test_default_title_comes_from_the_stage_name(compile_cells):
    graph = compile_cells("#| stage: label_samples\nx = 1")
    assert stage(graph, "label_samples").title == "Label samples"


def test_stage_names_may_be_any_python_identifier(compile_cells):
    graph = compile_cells("#| stage: étape\nx = 1")
    assert [s.name for s in graph.stages] == ["étape"] and not graph.diagnostics


def test_a_header_line_without_a_key_is_an_error(compile_cells):
    [(cell, line, message)] = errors(compile_cells("#| : nothing\nx = 1"))
    assert (cell, line) == (1, 1) and "no key" in message


def test_input_stage_without_code_says_so(compile_cells):
    [(cell, line, message)] = errors(compile_cells("x = 1", "#| stage: a\n#| input: each"))
    assert (cell, line) == (2, 1) and "has no code" in message


POOL = "#| stage: label\n#| input: pool\n"
WIDGET = "w = ChoiceLabeler(items, choices=['yes', 'no'])\nw"
START = "from freezer.widgets import ChoiceLabeler\nitems = {'a': 1, 'b': 2}"


def test_merge_and_gold_are_read_into_the_pool_stage_options(compile_cells):
    graph = compile_cells(
        START + "\nanswers = {'a': 'yes'}\nimport statistics",
        POOL + "#| merge: statistics.mode\n#| gold: answers\n" + WIDGET,
        POOL.replace("label", "again") + "#| merge: dawid-skene\n#| gold: answers\n"
        "#| gold_rate: 0.25\n" + WIDGET,
    )
    assert not errors(graph)
    label, again = stage(graph, "label"), stage(graph, "again")
    assert label.options["merge"] == "statistics.mode" and label.options["merge_line"] == 3
    assert (label.options["gold"], label.options["gold_line"]) == ("answers", 4)
    assert label.options["gold_rate"] == 0.1  # the default, with gold given
    assert (again.options["merge"], again.options["gold_rate"]) == ("dawid-skene", 0.25)
    assert "answers" in label.uses and "statistics" in label.uses


def test_merge_and_gold_on_a_stage_that_is_not_a_pool_are_errors(compile_cells):
    graph = compile_cells(
        "answers = {}",
        "#| stage: a\n#| input: owner\n#| merge: majority\n#| gold: answers\n1",
        "#| stage: b\n#| gold_rate: 0.2\nx = 1",
    )
    found = errors(graph)
    assert [(cell, line) for cell, line, _ in found] == [(2, 3), (2, 4), (3, 2)]
    assert all("only applies to `input: pool`" in message for _, _, message in found)


def test_bad_merge_gold_and_gold_rate_values_say_what_to_write(compile_cells):
    graph = compile_cells(
        START,
        POOL + "#| merge: dawid-skeen\n#| gold: my answers\n#| gold_rate: 1.5\n" + WIDGET,
        POOL.replace("label", "b") + "#| gold_rate: 0.3\n" + WIDGET,
    )
    problems = [d for d in graph.diagnostics if d.severity == "error"]
    assert [(d.cell, d.line) for d in problems] == [(2, 3), (2, 4), (2, 5), (3, 3)]
    assert "`dawid-skene`" in problems[0].hint
    assert "not a name" in problems[1].message and "from 0 to 1" in problems[2].message
    assert "no `gold` is given" in problems[3].message


def test_a_merge_function_or_gold_nothing_defines_is_an_error_at_its_line(compile_cells):
    graph = compile_cells(START, POOL + "#| merge: my_merge\n#| gold: answers\n" + WIDGET)
    assert [(cell, line) for cell, line, _ in errors(graph)] == [(2, 3), (2, 4)]
    assert "`my_merge` is used before any cell defines it" in errors(graph)[0][2]


def test_a_literal_gold_dict_is_checked_against_literal_items_and_choices(compile_cells):
    graph = compile_cells(
        "from freezer.widgets import ChoiceLabeler",
        POOL + "#| gold: answers\nitems = {'a': 1, 'b': 2}\n"
        "answers = {'a': 'yes', 'z': 'no', 'b': 'maybe'}\n" + WIDGET,
    )
    found = errors(graph)
    assert [(cell, line) for cell, line, _ in found] == [(2, 3), (2, 3)]
    assert "gold item 'z' is not one of the pool's items" in found[0][2]
    assert "'maybe' of item 'b' is not one of the choices ['yes', 'no']" in found[1][2]


def test_gold_computed_at_run_time_is_left_to_the_run(compile_cells):
    graph = compile_cells(
        START,
        POOL + "#| gold: answers\nanswers = {k: 'maybe' for k in items}\n" + WIDGET,
    )
    assert not errors(graph)


def test_gold_is_not_checked_against_items_the_widget_gives_other_ids(compile_cells):
    graph = compile_cells(
        "from freezer.widgets import ChoiceLabeler, ImageGrid",
        POOL + "#| gold: answers\nitems = {'a': 1}\nanswers = {'z': 'yes'}\n"
        "w = ChoiceLabeler(items, choices=['yes', 'no'], key=lambda item: item)\nw",
        POOL.replace("label", "grid") + "#| gold: answers\nanswers = {0: 'picked'}\n"
        "g = ImageGrid([1, 2], None)\ng",
    )
    assert not errors(graph)


def test_an_overlap_range_gives_the_least_and_the_most(compile_cells):
    graph = compile_cells("#| stage: a\n#| input: pool\n#| overlap: 2..4\nx = 1\nx")
    assert stage(graph, "a").options == {
        "overlap": 2,
        "overlap_max": 4,
        "batch": 10,
        "lease_seconds": 600,
        "merge": "majority",
    }
    plain = compile_cells("#| stage: a\n#| input: pool\n#| overlap: 3..3\nx = 1\nx")
    assert stage(plain, "a").options["overlap"] == 3
    assert "overlap_max" not in stage(plain, "a").options


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("4..2", "runs backwards: its most, 2, is below its least, 4"),
        ("0..3", "is not a whole number of at least 1, nor a range of them"),
        ("2..x", "is not a whole number of at least 1, nor a range of them"),
    ],
)
def test_a_bad_overlap_range_is_an_error_at_its_line(compile_cells, value, says):
    graph = compile_cells(f"#| stage: a\n#| input: pool\n#| overlap: {value}\nx = 1\nx")
    [(cell, line, message)] = errors(graph)
    assert (cell, line) == (1, 3)
    assert f"`overlap: {value}` {says}" in message


def test_review_is_disagreement_or_a_probability_on_a_pool(compile_cells):
    graph = compile_cells(
        START,
        POOL + "#| review: disagreement\n" + WIDGET,
        POOL.replace("label", "again") + "#| merge: dawid-skene\n#| review: 0.8\n" + WIDGET,
    )
    assert not errors(graph)
    assert stage(graph, "label").options["review"] == "disagreement"
    assert stage(graph, "again").options["review"] == 0.8


def test_bad_review_values_and_review_off_a_pool_are_errors_at_their_line(compile_cells):
    graph = compile_cells(
        START,
        POOL + "#| review: disagrement\n" + WIDGET,
        POOL.replace("label", "b") + "#| review: 1.5\n" + WIDGET,
        "#| stage: c\n#| input: owner\n#| review: 0.5\n1",
    )
    found = errors(graph)
    assert [(cell, line) for cell, line, _ in found] == [(2, 3), (3, 3), (4, 3)]
    assert "neither `disagreement` nor a probability" in found[0][2]
    assert "neither `disagreement` nor a probability" in found[1][2]
    assert "only applies to `input: pool`" in found[2][2]
    hints = [d.hint for d in graph.diagnostics if d.severity == "error"]
    assert "did you mean `disagreement`?" in hints[0] and "`#| review: 0.8`" in hints[1]
