"""The compiler's plain data: cells, stages, the graph and diagnostics.

Frozen dataclasses with no behaviour, so every step of the compiler takes and returns
values that a test can write as a literal and the bundle can dump as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ERROR = "error"
WARNING = "warning"
UNLISTED = "its names have not been listed"


@dataclass(frozen=True)
class Diagnostic:
    """One problem found in a notebook, located as precisely as the compiler knows."""

    severity: str
    notebook: str
    message: str
    stage: str | None = None
    cell: int | None = None
    line: int | None = None
    hint: str | None = None


@dataclass(frozen=True)
class Event:
    """Something a cell's top-level code does to a global name, in execution order.

    `kind` is `read`, `bind`, `delete`, `mutate` or `star`; `deferred` marks what
    happens only when a function defined in the cell is called (reads in its body,
    `global` binds). A `star` event is `from name import *`: its `detail` is empty when
    the compiler listed the module's names (they follow it as `bind` events), else why
    it could not (then the star import binds any name that nothing else binds).
    """

    kind: str
    name: str
    line: int
    deferred: bool = False
    detail: str = ""


@dataclass(frozen=True)
class Cell:
    """A notebook cell: `index` is its 1-based position among all cells."""

    index: int
    type: str
    source: str
    options: dict[str, object] = field(default_factory=dict)
    option_lines: dict[str, int] = field(default_factory=dict)
    code: str = ""
    events: tuple[Event, ...] = ()
    last_expression: str | None = None
    last_statement_line: int | None = None
    parsed: bool = True


@dataclass(frozen=True)
class Stage:
    """A run of cells that executes, or is answered, as one unit."""

    name: str
    title: str
    kind: str
    input: str | None
    scope: str
    cells: tuple[int, ...]
    depends_on: tuple[str, ...]
    defines: tuple[str, ...]
    uses: tuple[str, ...]
    options: dict[str, object]
    widget: str | None = None
    star_imports: tuple[str, ...] = ()  # modules of its `from m import *`, in order


@dataclass(frozen=True)
class Edge:
    """Stage `target` reads `names` whose nearest earlier binding is in `source`."""

    source: str
    target: str
    names: tuple[str, ...]


@dataclass(frozen=True)
class Graph:
    """The compiled notebook: its cells, stages in notebook order, and their edges."""

    notebook: str
    source_sha256: str
    cells: tuple[Cell, ...]
    stages: tuple[Stage, ...]
    edges: tuple[Edge, ...]
    requirements: tuple[str, ...]
    diagnostics: tuple[Diagnostic, ...]
