"""The rules a linked graph must follow before it can be served.

- `pool` and `owner` stages are answered once for everybody, so they must not depend on
  anything that differs per labeler;
- a `user` stage must not change in place a value that a `shared` stage made, because
  every session shares that one object;
- an input stage ends with the expression of the widget it shows;
- a pool's gold answers, when its cells write them as a literal dict, are for the
  pool's items (when those are a literal too) and among its widget's literal choices.
"""

from __future__ import annotations

import ast
from typing import Any

from freezer.graph import Linked
from freezer.ir import ERROR, Cell, Diagnostic, Stage


def check(linked: Linked, cells: dict[int, Cell], notebook: str) -> list[Diagnostic]:
    """Every rule violation of the linked graph, each at the statement at fault."""
    by_name = {stage.name: stage for stage in linked.stages}
    problems: list[Diagnostic] = []
    for stage in linked.stages:
        if stage.input in ("pool", "owner"):
            problems.extend(_shared_input_on_user(stage, by_name, linked, cells, notebook))
        if stage.kind == "input":
            problems.extend(_widget_expression(stage, cells, notebook))
        if stage.input == "pool" and stage.options.get("gold"):
            problems.extend(_literal_gold(stage, cells, notebook))
    for mutation in linked.mutations:
        stage, source = by_name[mutation.stage], by_name[mutation.source]
        if stage.scope == "user" and source.scope == "shared":
            why = f"stage `{stage.name}` runs per labeler" + _user_reason(stage, by_name)
            problems.append(
                Diagnostic(
                    ERROR,
                    notebook,
                    f"this line {mutation.detail} `{mutation.name}`, a shared value made by stage "
                    f"`{source.name}`: {why}, and every labeler's session shares that one object.",
                    stage.name,
                    mutation.cell,
                    mutation.line,
                    f"work on a copy (`{mutation.name} = {mutation.name}.copy()` or "
                    "`copy.deepcopy`) before changing it, or build a new value.",
                )
            )
    return problems


def _user_chain(stage: Stage, by_name: dict[str, Stage]) -> list[Stage]:
    """From `stage` back through `user` stages to the `each` input that makes them so."""
    chain = [stage]
    while chain[-1].input != "each":
        chain.append(next(by_name[d] for d in chain[-1].depends_on if by_name[d].scope == "user"))
    return chain


def _user_reason(stage: Stage, by_name: dict[str, Stage]) -> str:
    chain = _user_chain(stage, by_name)
    if len(chain) == 1:
        return " (it is an `input: each` stage)"
    path = " → ".join(f"`{s.name}`" for s in chain)
    return f" ({path}, answered by each labeler)"


def _shared_input_on_user(
    stage: Stage,
    by_name: dict[str, Stage],
    linked: Linked,
    cells: dict[int, Cell],
    notebook: str,
) -> list[Diagnostic]:
    problems = []
    for dependency in stage.depends_on:
        if by_name[dependency].scope != "user":
            continue
        chain = [stage, *_user_chain(by_name[dependency], by_name)]
        path = " → ".join(f"`{s.name}`" for s in chain)
        edge = next(e for e in linked.edges if e.source == dependency and e.target == stage.name)
        cell, line = _first_read(stage, edge.names, cells)
        problems.append(
            Diagnostic(
                ERROR,
                notebook,
                f"`input: {stage.input}` stage `{stage.name}` is answered once for everybody, "
                f"but it reads {_names(edge.names)}, which differs per labeler: {path} "
                f"(`{chain[-1].name}` is answered by each labeler).",
                stage.name,
                cell,
                line,
                f"make `{stage.name}` depend only on shared stages, or make it `input: each`.",
            )
        )
    return problems


def _names(names: tuple[str, ...]) -> str:
    return ", ".join(f"`{n}`" for n in names)


def _first_read(stage: Stage, names: tuple[str, ...], cells: dict[int, Cell]) -> tuple[int, int]:
    for index in stage.cells:
        for event in cells[index].events:
            if event.kind in ("read", "mutate") and event.name in names:
                return index, event.line
    return stage.cells[0], 1


def _widget_expression(stage: Stage, cells: dict[int, Cell], notebook: str) -> list[Diagnostic]:
    code = [cells[i] for i in stage.cells if cells[i].type == "code" and cells[i].parsed]
    if not code:
        return []
    last = code[-1]
    if last.last_expression is not None:
        return []
    what = "its last statement is not an expression"
    if last.last_statement_line is None:
        what = "its last cell has no code"
    return [
        Diagnostic(
            ERROR,
            notebook,
            f"input stage `{stage.name}` must end with the widget to show, but {what}.",
            stage.name,
            last.index,
            last.last_statement_line or 1,
            "end the cell with the widget on a line of its own, as in Jupyter: `labeler`.",
        )
    ]


_UNKNOWN = object()


def _literal_gold(stage: Stage, cells: dict[int, Cell], notebook: str) -> list[Diagnostic]:
    """The gold answers that cannot be right, when the stage's own cells bind them (and
    the widget's items and choices) to literals; nothing when any of it is computed."""
    code = [cells[i] for i in stage.cells if cells[i].type == "code" and cells[i].parsed]
    literals: dict[str, Any] = {}
    widget: ast.expr | None = None
    for cell in code:
        body = ast.parse(cell.code).body
        for statement in body:
            if isinstance(statement, ast.Assign):
                # A call is kept as written: it may build the widget shown at the end.
                value = statement.value
                bound = value if isinstance(value, ast.Call) else _literal(value)
                for target in statement.targets:
                    if isinstance(target, ast.Name):
                        literals[target.id] = bound
        if cell is code[-1] and body and isinstance(body[-1], ast.Expr):
            widget = body[-1].value
    gold = literals.get(str(stage.options["gold"]), _UNKNOWN)
    if isinstance(widget, ast.Name):
        widget = literals.get(widget.id)
    if not isinstance(gold, dict) or not isinstance(widget, ast.Call):
        return []
    arguments = {kw.arg: kw.value for kw in widget.keywords if kw.arg}
    items_node = widget.args[0] if widget.args else arguments.get("items")
    choices_node = widget.args[1] if len(widget.args) > 1 else arguments.get("choices")
    items, choices = _value(items_node, literals), _value(choices_node, literals)
    known = None  # the item ids, when the widget's items are a literal it takes as they are
    if "key" not in arguments and isinstance(items, dict):
        known = set(items)
    elif "key" not in arguments and isinstance(items, list | tuple):
        known = set(range(len(items)))
    if not (isinstance(choices, list | tuple) and all(isinstance(c, str) for c in choices)):
        choices = None
    header = code[0].index
    line = int(stage.options.get("gold_line", 1))
    problems = []
    for item, answer in gold.items():
        message = None
        if known is not None and item not in known:
            message = f"gold item {item!r} is not one of the pool's items."
        elif choices is not None and answer not in choices:
            message = (
                f"the gold answer {answer!r} of item {item!r} is not one of the choices "
                f"{list(choices)}."
            )
        if message:
            problems.append(
                Diagnostic(
                    ERROR,
                    notebook,
                    message,
                    stage.name,
                    header,
                    line,
                    f"fix `{stage.options['gold']}`: each key an item id of the pool, each "
                    "value one of its choices.",
                )
            )
    return problems


def _literal(node: ast.expr) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError):
        return _UNKNOWN


def _value(node: ast.expr | None, literals: dict[str, Any]) -> Any:
    """A literal argument, or the literal that a name in the stage's cells was bound to."""
    if node is None:
        return _UNKNOWN
    if isinstance(node, ast.Name):
        return literals.get(node.id, _UNKNOWN)
    return _literal(node)
