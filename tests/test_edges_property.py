"""For generated straight-line notebooks, the graph agrees with what running them reads.

Each example is a notebook of a few stages of simple statements over a handful of names.
It is compiled, and it is run for real, cell after cell, in one namespace that records
every global lookup: which stage's code made it, and which stage's binding it found.
That record is the truth the graph's `uses`, `defines`, edges and errors are held to.

How reads are recorded: `exec(code, ns, ns)` with `ns` a dict subclass. Module-level
code looks names up with LOAD_NAME, which goes through `ns.__getitem__` because the
locals mapping is not an exact dict; functions defined in `ns` look globals up with
LOAD_GLOBAL, which in CPython 3.11 also goes through `__getitem__` because their globals
are not an exact dict (comprehensions are such functions too). Stores and `del` at
module level go through `__setitem__` and `__delitem__`. The code object of the frame
making a lookup says which cell (so which stage) the code came from, and whether it is
module-level code (or a comprehension run by it) or a function body.

The compiler counts a read inside a function body as a read of the stage that defines
the function, resolved where the function is defined, unless that stage binds the name
itself (the issue's rule); a function's reads are therefore judged against the bindings
in force when it was defined. Every function the notebook defined is also called once
at the end, in a namespace that answers any name, so the reads of functions the notebook
never calls are known too.

The names are few on purpose (four values, two functions, a walrus target, and `abs`, a
builtin the notebook may shadow and delete), so that stages really do read, rebind and
delete each other's names. Statements mostly read names that are bound by then, so most
examples run to the end and the rest stop on a NameError somewhere along the way.
"""

from __future__ import annotations

import builtins
import sys
import tempfile
import types
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from nbformat import v4

from freezer.compile import compile_notebook
from freezer.ir import ERROR, Graph

VALUES = ("a", "b", "c", "d")
FUNCTIONS = ("f", "g")
SHADOW = "abs"  # a builtin the notebook may bind, read and delete
WALRUS = "w"  # bound only by a walrus in a comprehension (see `RecordingNamespace.sync`)
COMPREHENSIONS = frozenset({"<listcomp>", "<setcomp>", "<dictcomp>", "<genexpr>"})
BUILTIN_NAMES = frozenset(vars(builtins))


@dataclass(frozen=True)
class Statement:
    """One generated statement: its source and the global names it binds."""

    source: str
    binds: frozenset[str] = frozenset()


def _read(draw: st.DrawFn, bound: set[str], names: tuple[str, ...] = (*VALUES, WALRUS)) -> str:
    """A value name to read: mostly one that is bound by now, sometimes any."""
    known = sorted(bound & set(names))
    if known and draw(st.integers(0, 9)):
        return draw(st.sampled_from(known))
    return draw(st.sampled_from(names))


def _function(draw: st.DrawFn, bound: set[str]) -> str:
    known = sorted(bound & set(FUNCTIONS))
    if known and draw(st.integers(0, 9)):
        return draw(st.sampled_from(known))
    return draw(st.sampled_from(FUNCTIONS))


@st.composite
def statement(draw: st.DrawFn, bound: set[str]) -> Statement:
    """One statement, mostly reading names bound by then; `bound` is kept up to date."""
    t = draw(st.sampled_from(VALUES))
    x, y = _read(draw, bound), _read(draw, bound)
    v = _read(draw, bound, VALUES)  # never the walrus name: see `RecordingNamespace.sync`
    fn = _function(draw, bound)
    new_fn = draw(st.sampled_from(FUNCTIONS))
    n = draw(st.integers(0, 3))
    choices = [  # (source, names it binds, names it needs bound to run)
        (f"{t} = {x} + {y}", {t}, {x, y}),
        (f"{t} = {n}", {t}, set()),
        (f"del {v}", set(), {v}),
        (f"{v} += {y}", {v}, {v, y}),
        (f"{v} += 1", {v}, {v}),
        (f"str({x})", set(), {x}),
        (f"def {new_fn}():\n    return {x} + {y}", {new_fn}, set()),
        (f"def {new_fn}(p={x}):\n    return p * {y}", {new_fn}, {x}),
        (f"{new_fn} = lambda: {x} * 2", {new_fn}, set()),
        (f"{fn}()", set(), {fn}),
        (f"{t} = {fn}() + 1", {t}, {fn}),
        (f"{t} = sum([{x} + i for i in range(2)])", {t}, {x}),
        (f"{t} = sum({x} for i in range(2))", {t}, {x}),
        (f"{t} = (lambda q: q + {x})(1)", {t}, {x}),
        (f"for {t} in range(2):\n    pass", {t}, set()),
        (f"from math import pi as {t}", {t}, set()),
        (f"({t} := {x} + 1)", {t}, {x}),
        (f"{t} = sum([({WALRUS} := i + 0.5) for i in range(2)])", {t, WALRUS}, set()),
        (f"{SHADOW} = {n}", {SHADOW}, set()),
        (f"del {SHADOW}", set(), {SHADOW}),
        (f"str({SHADOW})", set(), set()),
    ]
    runnable = [choice for choice in choices if choice[2] <= bound]
    if draw(st.integers(0, 9)):  # mostly statements whose names are bound by now
        choices = runnable
    source, binds, _ = draw(st.sampled_from(choices))
    if source.startswith("del "):
        bound.discard(source.split()[1])
    bound.update(binds)
    return Statement(source, frozenset(binds))


@st.composite
def notebooks(draw: st.DrawFn) -> list[list[tuple[bool, list[Statement]]]]:
    """Stages of cells of statements; a cell may be preceded by a Markdown cell."""
    bound: set[str] = set()
    drawn = []
    for _ in range(draw(st.integers(1, 4))):
        stage_cells = []
        for _ in range(draw(st.integers(1, 3))):
            markdown = draw(st.booleans())
            body = [draw(statement(bound)) for _ in range(draw(st.integers(1, 3)))]
            stage_cells.append((markdown, body))
        drawn.append(stage_cells)
    return drawn


@dataclass
class Layout:
    """The notebook's cells as written, and which stage each code cell belongs to."""

    sources: list[tuple[str, str]] = field(default_factory=list)  # (cell_type, source)
    stage_of_cell: dict[int, str] = field(default_factory=dict)
    stage_binds: dict[str, frozenset[str]] = field(default_factory=dict)
    stages: list[str] = field(default_factory=list)


def lay_out(drawn: list[list[tuple[bool, list[Statement]]]]) -> Layout:
    layout = Layout()
    for number, stage_cells in enumerate(drawn):
        name = f"s{number}"
        layout.stages.append(name)
        binds: set[str] = set()
        for position, (markdown, body) in enumerate(stage_cells):
            if markdown:
                layout.sources.append(("markdown", f"Instructions before a cell of `{name}`."))
            code = "\n".join(statement.source for statement in body)
            if position == 0:
                code = f"#| stage: {name}\n{code}"
            layout.sources.append(("code", code))
            layout.stage_of_cell[len(layout.sources)] = name
            binds.update(*(statement.binds for statement in body))
        layout.stage_binds[name] = frozenset(binds)
    return layout


@dataclass(frozen=True)
class Read:
    """A global lookup: the stage whose code made it, the name, whose binding it found
    (`None`: no binding, a NameError unless a builtin answers), and where it was."""

    stage: str
    name: str
    source: str | None
    cell: int
    line: int
    deferred: bool


class RecordingNamespace(dict):
    """A module namespace that remembers who bound each name and who read it."""

    def __init__(self, stage_of_file: dict[str, str]) -> None:
        super().__init__()
        self.stage_of_file = stage_of_file
        self.running: str = ""
        self.binder: dict[str, str] = {}
        # id of a function's code -> the bindings when it was defined (code objects
        # compare equal across cells, so they are told apart by identity)
        self.definitions: dict[int, dict[str, str]] = {}
        self.functions: list[types.FunctionType] = []
        self.reads: list[Read] = []
        self.held_after: dict[str, dict[str, str]] = {}  # stage -> binder when it ended
        self.seen: dict[str, object] = {}  # the value each binding stored

    def _note(self, name: str, frame: types.FrameType) -> None:
        code = frame.f_code
        outer = frame
        while outer.f_code.co_name in COMPREHENSIONS and outer.f_back is not None:
            outer = outer.f_back
        deferred = outer.f_code.co_name != "<module>"
        bindings = self.binder
        if deferred:
            bindings = self.definitions.get(id(outer.f_code), self.binder)
        stage = self.stage_of_file[code.co_filename]
        cell = int(code.co_filename.strip("<>").split()[1])
        self.reads.append(Read(stage, name, bindings.get(name), cell, frame.f_lineno, deferred))

    def sync(self) -> None:
        """Catch up with stores that bypass `__setitem__`.

        A walrus in a comprehension makes its name global in the whole cell, so stores
        to it compile to STORE_GLOBAL, which writes the dict directly (loads still come
        through `__getitem__`). The generated walrus values are new float objects, so a
        changed identity means a new binding; the generator never deletes that name.
        """
        for name, value in dict.items(self):
            if name != "__builtins__" and self.seen.get(name, self) is not value:
                self.binder[name] = self.running
                self.seen[name] = value

    def __getitem__(self, name: str) -> object:
        self.sync()
        found = super().__getitem__(name)  # a KeyError falls back to builtins
        self._note(name, sys._getframe(1))
        return found

    def __setitem__(self, name: str, value: object) -> None:
        self.sync()
        if isinstance(value, types.FunctionType):
            self.definitions.setdefault(id(value.__code__), dict(self.binder))
            self.functions.append(value)
        self.binder[name] = self.running
        self.seen[name] = value
        super().__setitem__(name, value)

    def __delitem__(self, name: str) -> None:
        self.sync()
        if name in self:
            self._note(name, sys._getframe(1))
        self.binder.pop(name, None)
        self.seen.pop(name, None)
        super().__delitem__(name)  # a KeyError becomes Python's NameError


class AnyName(dict):
    """Globals for calling a function once to see what it reads: every name is 0."""

    def __init__(self, namespace: RecordingNamespace, bindings: dict[str, str]) -> None:
        super().__init__()
        self.namespace = namespace
        self.bindings = bindings

    def __getitem__(self, name: str) -> object:
        if name in BUILTIN_NAMES:
            raise KeyError(name)
        frame = sys._getframe(1)
        code = frame.f_code
        self.namespace.reads.append(
            Read(
                self.namespace.stage_of_file[code.co_filename],
                name,
                self.bindings.get(name),
                int(code.co_filename.strip("<>").split()[1]),
                frame.f_lineno,
                True,
            )
        )
        return 0


@dataclass(frozen=True)
class Run:
    """What running the notebook did: its reads, and where a NameError stopped it."""

    namespace: RecordingNamespace
    completed: tuple[str, ...]  # the stages that ran to their end
    stopped_at: tuple[int, int] | None  # (cell, line) of the statement that raised NameError
    undefined_at: tuple[int, int] | None  # where the name was read, when not in a function


def run(layout: Layout) -> Run:
    stage_of_file = {f"<cell {index}>": stage for index, stage in layout.stage_of_cell.items()}
    namespace = RecordingNamespace(stage_of_file)
    completed: list[str] = []
    stopped_at = undefined_at = None
    order = list(layout.stage_of_cell.items())
    for position, (index, stage) in enumerate(order):
        namespace.running = stage
        code = compile(layout.sources[index - 1][1], f"<cell {index}>", "exec")
        try:
            exec(code, namespace, namespace)
        except NameError as error:
            frames = []
            tb = error.__traceback__
            while tb is not None:
                frames.append(tb)
                tb = tb.tb_next
            statement = next(tb for tb in frames if tb.tb_frame.f_code is code)
            stopped_at = (index, statement.tb_lineno)
            innermost = frames[-1]
            if innermost.tb_frame.f_code.co_name in ("<module>", *COMPREHENSIONS):
                undefined_at = (index, innermost.tb_lineno)
            break
        namespace.sync()
        namespace.held_after[stage] = dict(namespace.binder)
        if position + 1 == len(order) or order[position + 1][1] != stage:
            completed.append(stage)
    for defined in namespace.functions:
        probe = types.FunctionType(
            defined.__code__,
            AnyName(namespace, namespace.definitions[id(defined.__code__)]),
            defined.__name__,
            defined.__defaults__,
        )
        probe()
    return Run(namespace, tuple(completed), stopped_at, undefined_at)


def write(layout: Layout, directory: Path) -> Path:
    cells = [
        v4.new_markdown_cell(source) if kind == "markdown" else v4.new_code_cell(source)
        for kind, source in layout.sources
    ]
    kernel = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook = v4.new_notebook(cells=cells, metadata={"kernelspec": kernel})
    path = directory / "generated.ipynb"
    nbformat.write(notebook, path)
    return path


@dataclass
class Expected:
    """The graph the recorded run implies, under the issue's rules."""

    uses: dict[str, dict[str, str]]
    defines: dict[str, set[str]]
    errors: set[tuple[int, int]]


def expect(layout: Layout, ran: Run) -> Expected:
    uses: dict[str, dict[str, str]] = {stage: {} for stage in layout.stages}
    errors: set[tuple[int, int]] = set()
    for read in ran.namespace.reads:
        if read.deferred and read.name in layout.stage_binds[read.stage]:
            continue  # the stage binds the name itself: the function sees that binding
        if read.source is None:
            errors.add((read.cell, read.line))
        elif read.source != read.stage:
            uses[read.stage][read.name] = read.source
    if ran.undefined_at:
        errors.add(ran.undefined_at)
    defines = {
        stage: {name for name, binder in held.items() if binder == stage}
        for stage, held in ran.namespace.held_after.items()
    }
    return Expected(uses, defines, errors)


def graph_uses(graph: Graph) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {stage.name: {} for stage in graph.stages}
    for edge in graph.edges:
        for name in edge.names:
            found[edge.target][name] = edge.source
    return found


def error_locations(graph: Graph) -> set[tuple[int, int]]:
    return {(d.cell, d.line) for d in graph.diagnostics if d.severity == ERROR}


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(notebooks())
def test_graph_agrees_with_what_running_the_notebook_reads(drawn):
    layout = lay_out(drawn)
    ran = run(layout)
    with tempfile.TemporaryDirectory() as directory:
        graph = compile_notebook(write(layout, Path(directory)))
    expected = expect(layout, ran)
    event("stopped on a NameError" if ran.stopped_at else "ran to the end")
    event(f"edges: {min(len(graph.edges), 3)}{'+' if len(graph.edges) >= 3 else ''}")
    found = error_locations(graph)
    assert not [d for d in graph.diagnostics if d.severity != ERROR]
    assert [s.name for s in graph.stages] == layout.stages
    if ran.stopped_at:
        # Up to the statement that raised NameError, the graph reports exactly the errors
        # running (and the rule for functions) implies; from there on nothing is known.
        # A name read at module level is reported where it is read. (A function that
        # fails when called, on a name deleted or bound only after it was defined, is
        # outside the rule: its error is in `expected.errors` only when the rule says so.)
        if ran.undefined_at:
            assert ran.undefined_at in found, graph.diagnostics
        before = ran.stopped_at
        assert {e for e in found if e < before} == {e for e in expected.errors if e < before}, (
            graph.diagnostics
        )
    else:
        assert found == expected.errors, graph.diagnostics
    uses = graph_uses(graph)
    order = layout.stages.index
    for stage in graph.stages:
        if stage.name not in ran.completed:
            continue
        assert uses[stage.name] == expected.uses[stage.name], stage.name
        assert set(stage.uses) == set(expected.uses[stage.name]), stage.name
        sources = sorted(set(expected.uses[stage.name].values()), key=order)
        assert list(stage.depends_on) == sources, stage.name
        assert set(stage.defines) == expected.defines[stage.name], stage.name
