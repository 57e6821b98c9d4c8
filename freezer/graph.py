"""Edges between stages and each stage's scope.

Stage B depends on stage A when B reads a name whose nearest binding before B, in
notebook order (as "Run all" sees it), is in A. A stage is `user` (runs per labeler)
when it is an `each` input or a compute stage that depends on a `user` stage.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass, replace

from freezer.ir import ERROR, Cell, Diagnostic, Edge, Event, Stage

BUILTINS = frozenset(dir(builtins)) | {
    "display",
    "get_ipython",
    "__name__",
    "__doc__",
    "__builtins__",
    "In",
    "Out",
}


@dataclass(frozen=True)
class Mutation:
    """A stage changing, in place, a value that an earlier stage bound."""

    stage: str
    cell: int
    line: int
    name: str
    source: str
    detail: str


@dataclass(frozen=True)
class Linked:
    """Stages with their edges, scopes and names filled in, and what was found."""

    stages: tuple[Stage, ...]
    edges: tuple[Edge, ...]
    mutations: tuple[Mutation, ...]
    diagnostics: tuple[Diagnostic, ...]



def link(stages: tuple[Stage, ...], cells: dict[int, Cell], notebook: str) -> Linked:
    """Resolve every stage's reads to the stage that bound them, in notebook order."""
    bound_at: dict[str, tuple[str, int, int]] = {}  # name -> (stage, cell, line)
    deleted_at: dict[str, tuple[str, int, int]] = {}
    first_bind = _first_binds(stages, cells)
    problems: list[Diagnostic] = []
    mutations: list[Mutation] = []
    edges: dict[tuple[str, str], set[str]] = {}
    linked = []
    for stage in stages:
        events = [(cell, e) for cell in _code_cells(stage, cells) for e in cell.events]
        binds_anywhere = {e.name for _, e in events if e.kind == "bind"}
        local: dict[str, tuple[str, int, int]] = {}
        local_deleted: dict[str, tuple[str, int, int]] = {}
        uses: dict[str, str] = {}

        def resolve(name: str, cell: Cell, event: Event) -> str | None:
            if name in local:
                return stage.name
            where = local_deleted.get(name) or (None if name in bound_at else deleted_at.get(name))
            if where:
                problems.append(_deleted(notebook, stage.name, cell, event, where))
                return None
            if name in bound_at:
                source = bound_at[name][0]
                uses[name] = source
                edges.setdefault((source, stage.name), set()).add(name)
                return source
            if name not in BUILTINS:
                problems.append(_undefined(notebook, stage.name, cell, event, first_bind.get(name)))
            return None

        for cell, event in events:
            if event.kind == "read" and not (event.deferred and event.name in binds_anywhere):
                resolve(event.name, cell, event)
            elif event.kind == "bind":
                local[event.name] = (stage.name, cell.index, event.line)
                local_deleted.pop(event.name, None)
            elif event.kind == "delete":
                local.pop(event.name, None)
                local_deleted[event.name] = (stage.name, cell.index, event.line)
            elif event.kind == "mutate" and event.name not in local:
                source = resolve(event.name, cell, event)
                if source:
                    mutations.append(
                        Mutation(stage.name, cell.index, event.line, event.name, source, event.detail)
                    )
        for name, where in local.items():
            bound_at[name] = where
            deleted_at.pop(name, None)
        for name, where in local_deleted.items():
            bound_at.pop(name, None)
            deleted_at[name] = where
        depends = tuple(dict.fromkeys(s for s in (uses[n] for n in sorted(uses)) if s != stage.name))
        order = [s.name for s in stages]
        linked.append(
            replace(
                stage,
                depends_on=tuple(sorted(depends, key=order.index)),
                defines=tuple(sorted(local)),
                uses=tuple(sorted(uses)),
            )
        )
    scoped = _scopes(tuple(linked))
    edge_list = tuple(
        Edge(source, target, tuple(sorted(names)))
        for (source, target), names in sorted(edges.items(), key=lambda item: _edge_order(item, stages))
        if source != target
    )
    return Linked(scoped, edge_list, tuple(mutations), tuple(problems))


def _edge_order(item: tuple[tuple[str, str], set[str]], stages: tuple[Stage, ...]) -> tuple[int, int]:
    order = [s.name for s in stages]
    (source, target), _ = item
    return order.index(target), order.index(source)


def _code_cells(stage: Stage, cells: dict[int, Cell]) -> list[Cell]:
    return [cells[i] for i in stage.cells if cells[i].type == "code"]


def _first_binds(stages: tuple[Stage, ...], cells: dict[int, Cell]) -> dict[str, tuple[str, int]]:
    """Where each name is first bound anywhere, to tell the author it comes too late."""
    found: dict[str, tuple[str, int]] = {}
    for stage in stages:
        for cell in _code_cells(stage, cells):
            for event in cell.events:
                if event.kind == "bind":
                    found.setdefault(event.name, (stage.name, cell.index))
    return found


def _undefined(
    notebook: str, stage: str, cell: Cell, event: Event, later: tuple[str, int] | None
) -> Diagnostic:
    if later and later[1] >= cell.index:
        where = "this cell" if later[1] == cell.index else f"cell {later[1]} (stage `{later[0]}`)"
        message = f"`{event.name}` is used before it is defined: it is first bound later, in {where}."
        hint = "move the definition above this use, or this cell below it."
    else:
        message = f"`{event.name}` is used before any cell defines it."
        hint = "define it in an earlier cell, or check the spelling."
    if event.deferred:
        message = message.replace("is used", "is used inside a function", 1)
    return Diagnostic(ERROR, notebook, message, stage, cell.index, event.line, hint)


def _deleted(
    notebook: str, stage: str, cell: Cell, event: Event, where: tuple[str, int, int]
) -> Diagnostic:
    _, at_cell, at_line = where
    return Diagnostic(
        ERROR,
        notebook,
        f"`{event.name}` is used after `del {event.name}` in cell {at_cell}, line {at_line}, "
        "and nothing binds it again in between.",
        stage,
        cell.index,
        event.line,
        "bind it again before this use, or remove the `del`.",
    )


def _scopes(stages: tuple[Stage, ...]) -> tuple[Stage, ...]:
    user: set[str] = set()
    result = []
    for stage in stages:
        is_user = stage.input == "each" or (
            stage.kind == "compute" and any(d in user for d in stage.depends_on)
        )
        if is_user:
            user.add(stage.name)
        result.append(replace(stage, scope="user" if is_user else "shared"))
    return tuple(result)
