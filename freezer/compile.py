"""The whole compiler in order: notebook → cells → annotations → names → stages → graph → checks.

Nothing here runs the notebook's code: cells are only parsed. The one exception is a
star import's module, imported in a child interpreter to list its names (freezer/modules.py).
"""

from __future__ import annotations

import ast
import gc
from dataclasses import replace
from pathlib import Path

from freezer.annotations import MERGE_RULES, annotate
from freezer.checks import check
from freezer.graph import link
from freezer.ir import ERROR, Cell, Diagnostic, Event, Graph
from freezer.modules import StarNames, star_names
from freezer.names import analyse
from freezer.notebook import read_notebook
from freezer.stages import split_stages
from freezer.syntax import to_python


def compile_notebook(path: Path | str) -> Graph:
    """Compile the notebook at `path`; every problem is in `Graph.diagnostics`."""
    # The compiler makes many small objects that all live until the end: the cyclic
    # garbage collector would only re-scan them (a quarter of the time at 10,000 cells).
    paused = gc.isenabled()
    gc.disable()
    try:
        return _compile(Path(path))
    finally:
        if paused:
            gc.enable()


def _compile(path: Path) -> Graph:
    source = read_notebook(path)
    name = source.name
    if source.diagnostics:
        return Graph(name, source.source_sha256, source.cells, (), (), (), source.diagnostics)
    problems: list[Diagnostic] = []
    requirements: list[str] = []
    cells = []
    for raw in source.cells:
        cell, found = _prepare(raw, name, requirements)
        cells.append(cell)
        problems.extend(found)
    cells = _list_star_imports(cells, path.resolve().parent)
    stages, found = split_stages(tuple(cells), name)
    problems.extend(found)
    by_index = {cell.index: cell for cell in cells}
    linked = link(stages, by_index, name)
    problems.extend(linked.diagnostics)
    problems.extend(check(linked, by_index, name))
    stages = tuple(
        replace(stage, widget=_widget(stage.cells, by_index)) if stage.kind == "input" else stage
        for stage in linked.stages
    )
    owner = {index: stage.name for stage in stages for index in stage.cells}
    located = [replace(p, stage=p.stage or owner.get(p.cell or 0)) for p in problems]
    located.sort(key=lambda p: (p.cell or 0, p.line or 0, p.severity != ERROR))
    return Graph(
        name,
        source.source_sha256,
        tuple(cells),
        stages,
        linked.edges,
        tuple(dict.fromkeys(requirements)),
        tuple(dict.fromkeys(located)),
    )


def _prepare(cell: Cell, notebook: str, requirements: list[str]) -> tuple[Cell, list[Diagnostic]]:
    """Annotations, plain-Python code and name events of one cell."""
    if cell.type != "code":
        return cell, []
    cell, problems = annotate(cell, notebook)
    python = to_python(cell, notebook)
    requirements.extend(python.requirements)
    found = [*problems, *python.diagnostics]
    if python.tree is None:
        return replace(cell, code=python.code, parsed=False), found
    names = analyse(python.tree)
    found.extend(
        Diagnostic(
            ERROR,
            notebook,
            f"syntax error: {message}.",
            cell=cell.index,
            line=line,
            hint="fix the code so that the cell runs in Jupyter.",
        )
        for line, message in names.misplaced
    )
    body = python.tree.body
    last = body[-1] if body else None
    expression = (
        ast.get_source_segment(python.code, last.value) if isinstance(last, ast.Expr) else None
    )
    prepared = replace(
        cell,
        code=python.code,
        events=names.events + _annotation_reads(cell),
        last_expression=expression,
        last_statement_line=last.lineno if last else None,
    )
    return prepared, found


def _annotation_reads(cell: Cell) -> tuple[Event, ...]:
    """A pool's `gold` mapping and `merge` function are read when its labels are merged,
    after its cells ran: reads at the end of the header cell, on the annotation's line,
    so that the stage depends on where they are bound, and a name nothing binds is an
    error there."""
    if cell.options.get("input") != "pool":
        return ()
    reads = []
    merge = str(cell.options.get("merge", "majority"))
    if merge not in MERGE_RULES:
        reads.append(Event("read", merge.split(".")[0], cell.option_lines["merge"]))
    if "gold" in cell.options:
        reads.append(Event("read", str(cell.options["gold"]), cell.option_lines["gold"]))
    return tuple(reads)


def _list_star_imports(cells: list[Cell], folder: Path) -> list[Cell]:
    """Each `from m import *` followed by the names it binds, where `m` can be imported."""
    listed: dict[str, StarNames] = {}
    result = []
    for cell in cells:
        if not any(e.kind == "star" for e in cell.events):
            result.append(cell)
            continue
        events: list[Event] = []
        for event in cell.events:
            if event.kind != "star":
                events.append(event)
                continue
            if event.name not in listed:
                listed[event.name] = star_names(event.name, folder)
            star = listed[event.name]
            events.append(replace(event, detail="" if star.names is not None else star.reason))
            origin = f"from {event.name} import *"
            events.extend(Event("bind", n, event.line, detail=origin) for n in star.names or ())
        result.append(replace(cell, events=tuple(events)))
    return result


def _widget(indices: tuple[int, ...], cells: dict[int, Cell]) -> str | None:
    code = [cells[i] for i in indices if cells[i].type == "code"]
    return code[-1].last_expression if code else None


def has_errors(graph: Graph) -> bool:
    """Does the graph have any error (as opposed to warnings only)?"""
    return any(d.severity == ERROR for d in graph.diagnostics)
