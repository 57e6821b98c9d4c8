"""Running a stage's cells in a session, and a widget's answer in and out of it.

An input stage's answer is the synced state of its widget and of every widget inside
it (a Box's children, a labeler's buttons), keyed by the path from the stage's widget:
`""` for the widget itself, `"0"`, `"0.2"` for children. Replaying a stage runs its
cells again and applies that state: the notebook builds the same widget tree, so the
answer lands where it was given, and every observer the author wrote sees it arrive.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import ipywidgets
import traitlets

from runtime.bundle import Notebook, Stage
from runtime.host import execute, figures
from runtime.host.session import Session

# Traits that describe how a widget looks or is wired, not what the person chose.
_STRUCTURE = frozenset({"layout", "style", "children", "tabbable", "tooltip", "_dom_classes"})


class AnswerError(ValueError):
    """A submitted answer does not fit the stage's widget; the message says where."""


def run_cells(session: Session, notebook: Notebook, stage: Stage) -> None:
    """Run the stage's code cells in the session's namespace, as IPython would, with
    the matplotlib backend the notebook chose before them."""
    code = [(cell.index, cell.text) for cell in notebook.code_cells]
    chosen = figures.chosen_before(code, min(stage.cells, default=0))
    if chosen is not None:
        session.shell.figures.use(chosen)
    for cell in notebook.cells_of(stage):
        if cell.type == "code":
            execute.run_cell(session.shell, cell.index, cell.text, session.namespace)


def stage_widget(session: Session, stage: Stage) -> ipywidgets.Widget:
    """The widget an input stage shows: the value of its last expression."""
    if not stage.widget:
        raise AnswerError(f"stage `{stage.name}` shows no widget")
    try:
        value = eval(stage.widget, session.namespace)  # the author's own expression
    except Exception as error:
        raise AnswerError(f"stage `{stage.name}`: its widget could not be found: {error}") from None
    if not isinstance(value, ipywidgets.Widget):
        kind = type(value).__name__
        raise AnswerError(f"stage `{stage.name}` ends with a {kind}, not a widget to answer")
    return value


def _tree(widget: ipywidgets.Widget, path: str = "") -> Iterator[tuple[str, ipywidgets.Widget]]:
    yield path, widget
    for number, child in enumerate(getattr(widget, "children", ()) or ()):
        if isinstance(child, ipywidgets.Widget):
            yield from _tree(child, f"{path}.{number}" if path else str(number))


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def answer_of(widget: ipywidgets.Widget) -> dict[str, dict[str, Any]]:
    """The answer a widget tree holds: each widget's own synced values, by path."""
    answer = {}
    for path, node in _tree(widget):
        state = {
            key: value
            for key, value in node.get_state().items()
            if not key.startswith("_") and key not in _STRUCTURE and _jsonable(value)
        }
        if state:
            answer[path] = state
    return answer


def apply_answer(widget: ipywidgets.Widget, answer: dict[str, Any]) -> None:
    """Put an answer into a freshly built widget tree, validating every value."""
    if not isinstance(answer, dict):
        raise AnswerError("an answer is an object mapping widget paths to their values")
    nodes = dict(_tree(widget))
    for path, state in answer.items():
        node = nodes.get(path)
        if node is None or not isinstance(state, dict):
            raise AnswerError(f"the widget has no part at path {path!r}")
        for key in state:
            if key.startswith("_") or key in _STRUCTURE or not node.trait_metadata(key, "sync"):
                raise AnswerError(f"{type(node).__name__} at {path!r} has no value {key!r}")
        try:
            node.set_state(state)
        except (traitlets.TraitError, ValueError, TypeError) as error:
            raise AnswerError(f"{type(node).__name__} at {path!r}: {error}") from None
