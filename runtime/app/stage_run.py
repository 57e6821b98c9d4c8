"""Running a stage's cells in a session, and a widget's answer in and out of it.

An input stage's answer is the synced state of its widget and of every widget it
reaches, keyed by the path from the stage's widget: `""` for the widget itself, `"0"`,
`"0.2"` for children (a Box's, a labeler's buttons), and a trait's name for a widget
held in any other synced trait (`"marks.0"`, a bqplot Figure's first mark;
`"marks.0.scales.x"`, that mark's x scale). A widget reached twice has the first path a
breadth-first walk gives it. Replaying a stage runs its cells again and applies that
state: the notebook builds the same widget tree, so the answer lands where it was given,
and every observer the author wrote sees it arrive.

An answer is stored as JSON. A binary value (a numpy array a library sends as a buffer,
a `Bytes` trait) is written in its serialized form with each buffer as
`{"$binary": "<base64>"}`, and applied through the trait's own deserializer. Binary
values, and the widgets reached through other traits than `children`, are part of the
answer only where they differ from what the stage's cells built: a figure's data, which
nobody on the page changed, is not copied into every answer.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections import deque
from collections.abc import Iterator
from typing import Any

import ipywidgets
import traitlets
from ipywidgets.widgets.widget import widget_serialization

from runtime.bundle import Notebook, Stage
from runtime.host import execute, figures
from runtime.host.session import Session

# Traits that describe how a widget looks or is wired, not what the person chose.
_STRUCTURE = frozenset({"layout", "style", "children", "tabbable", "tooltip", "_dom_classes"})
BINARY = "$binary"  # the key of a buffer's JSON form: {"$binary": "<base64>"}

# What the cells built, for the traits that are answered only when changed: by path,
# each trait's digest.
Built = dict[str, dict[str, str]]


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


def _join(path: str, part: str) -> str:
    return f"{path}.{part}" if path else part


def _tree(widget: ipywidgets.Widget, path: str = "") -> Iterator[tuple[str, ipywidgets.Widget]]:
    yield path, widget
    for number, child in enumerate(getattr(widget, "children", ()) or ()):
        if isinstance(child, ipywidgets.Widget):
            yield from _tree(child, _join(path, str(number)))


def _widgets_in(value: Any, path: str) -> Iterator[tuple[str, ipywidgets.Widget]]:
    if isinstance(value, ipywidgets.Widget):
        yield path, value
    elif isinstance(value, (list, tuple)):
        for number, item in enumerate(value):
            yield from _widgets_in(item, f"{path}.{number}")
    elif isinstance(value, dict):
        for key in sorted(value, key=str):
            yield from _widgets_in(value[key], f"{path}.{key}")


def _references(node: ipywidgets.Widget) -> Iterator[tuple[str, ipywidgets.Widget]]:
    """The widgets a widget's synced traits hold, `children` and the wiring aside."""
    for key in sorted(node.keys):
        if not key.startswith("_") and key not in _STRUCTURE:
            yield from _widgets_in(getattr(node, key, None), key)


def _synced(node: ipywidgets.Widget, key: str) -> bool:
    """Whether `key` is one of the widget's synced values (a name it has no trait of is
    not, where traitlets would raise)."""
    return node.has_trait(key) and bool(node.trait_metadata(key, "sync"))


def _holds_widgets(node: ipywidgets.Widget, key: str) -> bool:
    """Whether a trait wires widgets together (a Figure's `marks`): structure, which the
    cells build and an answer never carries."""
    if node.trait_metadata(key, "to_json") is widget_serialization["to_json"]:
        return True
    return next(_widgets_in(getattr(node, key, None), key), None) is not None


def walk(widget: ipywidgets.Widget) -> list[tuple[str, ipywidgets.Widget, bool]]:
    """Every widget the stage's widget reaches, with its path and whether it is in the
    tree of `children` (the paths answers have always had, in their order), then the
    widgets the other synced traits hold, breadth first, each once."""
    nodes = [(path, node, True) for path, node in _tree(widget)]
    seen = {id(node) for _, node, _ in nodes}
    taken = {path for path, _, _ in nodes}
    queue = deque(nodes)
    while queue:
        path, node, in_tree = queue.popleft()
        found = list(_references(node))
        if not in_tree:
            children = getattr(node, "children", ()) or ()
            found[:0] = [
                (str(n), c) for n, c in enumerate(children) if isinstance(c, ipywidgets.Widget)
            ]
        for part, reached in found:
            full = _join(path, part)
            if id(reached) in seen or full in taken:
                continue
            seen.add(id(reached))
            taken.add(full)
            queue.append((full, reached, False))
            nodes.append((full, reached, False))
    return nodes


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _encode(value: Any, binary: list[bool]) -> Any:
    """A serialized value with each buffer as {"$binary": base64}; notes if it had one."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        binary.append(True)
        return {BINARY: base64.b64encode(value).decode("ascii")}
    if isinstance(value, dict):
        return {key: _encode(item, binary) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(item, binary) for item in value]
    return value


def _decode(value: Any, where: str, view: bool) -> Any:
    """An answer's value as a page's message gives it: each {"$binary": …} a buffer, a
    memoryview as a kernel hands a deserializer (`view`), else bytes, which a plain
    `traitlets.Bytes` takes."""
    if isinstance(value, dict):
        if set(value) == {BINARY}:
            try:
                data = base64.b64decode(value[BINARY], validate=True)
            except (binascii.Error, TypeError, ValueError):
                raise AnswerError(f"{where}: {BINARY} holds no valid base64") from None
            return memoryview(data) if view else data
        return {key: _decode(item, where, view) for key, item in value.items()}
    if isinstance(value, list):
        return [_decode(item, where, view) for item in value]
    return value


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def _answerable(node: ipywidgets.Widget) -> Iterator[tuple[str, Any, bool]]:
    """A widget's values an answer may hold, as JSON, and whether each is binary."""
    for key, value in node.get_state().items():
        if key.startswith("_") or key in _STRUCTURE or _holds_widgets(node, key):
            continue
        binary: list[bool] = []
        encoded = _encode(value, binary)
        if _jsonable(encoded):
            yield key, encoded, bool(binary)


def built_state(widget: ipywidgets.Widget) -> Built:
    """What the cells built, for the values answered only when changed: call it right
    after the stage's cells ran, and give it to `answer_of`."""
    return {
        path: {
            key: _digest(value) for key, value, binary in _answerable(node) if binary or not in_tree
        }
        for path, node, in_tree in walk(widget)
    }


def answer_of(widget: ipywidgets.Widget, built: Built | None = None) -> dict[str, dict[str, Any]]:
    """The answer a widget tree holds, by path: each widget's own synced values, but
    binary ones and those of widgets outside the tree of `children` only where they
    differ from `built` (what the cells made; without it, all of them)."""
    answer = {}
    for path, node, in_tree in walk(widget):
        before = None if built is None else built.get(path)
        state = {
            key: value
            for key, value, binary in _answerable(node)
            if before is None or (in_tree and not binary) or before.get(key) != _digest(value)
        }
        if state:
            answer[path] = state
    return answer


def apply_answer(widget: ipywidgets.Widget, answer: dict[str, Any]) -> None:
    """Put an answer into a freshly built widget tree, validating every value."""
    if not isinstance(answer, dict):
        raise AnswerError("an answer is an object mapping widget paths to their values")
    nodes = {path: node for path, node, _ in walk(widget)}
    for path, state in answer.items():
        node = nodes.get(path)
        if node is None or not isinstance(state, dict):
            raise AnswerError(f"the widget has no part at path {path!r}")
        name = type(node).__name__
        for key in state:
            if key.startswith("_") or key in _STRUCTURE or not _synced(node, key):
                raise AnswerError(f"{name} at {path!r} has no value {key!r}")
            if _holds_widgets(node, key):
                raise AnswerError(f"{name} at {path!r}: {key!r} holds widgets, not an answer")
        values = {}
        for key, value in state.items():
            own = node.trait_metadata(key, "from_json")
            values[key] = _decode(value, f"{name} at {path!r}, {key!r}", own is not None)
            from_json = own or node._trait_from_json
            try:  # the library's own reading of the value, before any of it is set
                from_json(values[key], node)
            except Exception as error:
                raise AnswerError(
                    f"{name} at {path!r}, {key!r}: {type(error).__name__}: {error}"
                ) from None
        try:
            node.set_state(values)
        except (traitlets.TraitError, ValueError, TypeError) as error:
            raise AnswerError(f"{name} at {path!r}: {error}") from None
