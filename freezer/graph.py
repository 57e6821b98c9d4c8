"""Edges between stages and each stage's scope.

Stage B depends on stage A when B reads a name whose nearest binding before B, in
notebook order (as "Run all" sees it), is in A. A stage is `user` (runs per labeler)
when it is an `each` input or a compute stage that depends on a `user` stage.

A star import whose names the compiler could not list (`from m import *` where `m`
cannot be imported at check time) binds any name: a read that nothing else binds is
taken to come from the nearest earlier such import, with a warning, as Python would
find it there if the notebook runs.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass, replace
from typing import NamedTuple

from freezer.ir import ERROR, WARNING, Cell, Diagnostic, Edge, Event, Stage

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
    resolver = _Resolver(stages, cells, notebook)
    linked = tuple(resolver.stage(stage) for stage in stages)
    order = [s.name for s in stages]
    edges = tuple(
        Edge(source, target, tuple(sorted(names)))
        for (source, target), names in sorted(
            resolver.edges.items(),
            key=lambda item: (order.index(item[0][1]), order.index(item[0][0])),
        )
    )
    return Linked(_scopes(linked), edges, tuple(resolver.mutations), tuple(resolver.problems))


class Where(NamedTuple):
    """Where a name was last bound or unbound: `how` is `bind`, `del` or `except`."""

    stage: str
    cell: int
    line: int
    how: str


class Star(NamedTuple):
    """A star import whose names could not be listed, and why."""

    stage: str
    cell: int
    line: int
    module: str
    reason: str


class _Resolver:
    """Walks the stages in notebook order, keeping where each name was last bound."""

    def __init__(self, stages: tuple[Stage, ...], cells: dict[int, Cell], notebook: str) -> None:
        self.cells = cells
        self.notebook = notebook
        self.order = [s.name for s in stages]
        self.first_bind = _first_binds(stages, cells)
        self.bound_at: dict[str, Where] = {}
        self.deleted_at: dict[str, Where] = {}
        self.problems: list[Diagnostic] = []
        self.mutations: list[Mutation] = []
        self.edges: dict[tuple[str, str], set[str]] = {}
        self.star: Star | None = None  # the latest unlisted star import so far
        self.assumed: set[tuple[str, Star]] = set()

    def stage(self, stage: Stage) -> Stage:
        """The stage with `depends_on`, `defines` and `uses` filled in."""
        events = [(cell, e) for cell in _code_cells(stage, self.cells) for e in cell.events]
        binds_anywhere = {e.name for _, e in events if e.kind == "bind"}
        local: dict[str, Where] = {}
        local_deleted: dict[str, Where] = {}
        uses: dict[str, str] = {}
        modules: list[str] = []
        stars = [
            Star(stage.name, c.index, e.line, e.name, e.detail)
            for c, e in events
            if e.kind == "star" and e.detail
        ]
        local_star: Star | None = None
        for cell, event in events:
            if event.kind == "star":
                modules.append(event.name)
                if event.detail:
                    local_star = Star(stage.name, cell.index, event.line, event.name, event.detail)
                    # Any name may be bound again by it, a deleted one too.
                    local_deleted.clear()
                    self.deleted_at.clear()
                continue
            if event.kind == "bind":
                local[event.name] = Where(stage.name, cell.index, event.line, "bind")
                local_deleted.pop(event.name, None)
                continue
            if event.name in local or (event.deferred and event.name in binds_anywhere):
                pass
            elif event.name in local_deleted:
                self._deleted(stage, cell, event, local_deleted[event.name])
            else:
                star = local_star or (stars[-1] if event.deferred and stars else None)
                source = self._resolve(stage, cell, event, star)
                if source:
                    uses[event.name] = source
                if source and event.kind == "mutate":
                    self.mutations.append(
                        Mutation(
                            stage.name, cell.index, event.line, event.name, source, event.detail
                        )
                    )
            if event.kind == "delete":
                local.pop(event.name, None)
                local_deleted[event.name] = Where(stage.name, cell.index, event.line, event.detail)
        self.star = local_star or self.star
        for name, where in local.items():
            self.bound_at[name] = where
            self.deleted_at.pop(name, None)
        for name, where in local_deleted.items():
            self.bound_at.pop(name, None)
            self.deleted_at[name] = where
        depends = sorted(set(uses.values()), key=self.order.index)
        return replace(
            stage,
            depends_on=tuple(depends),
            defines=tuple(sorted(local)),
            uses=tuple(sorted(uses)),
            star_imports=tuple(modules),
        )

    def _resolve(
        self, stage: Stage, cell: Cell, event: Event, local_star: Star | None
    ) -> str | None:
        """The earlier stage that binds the name read, or None (with a diagnostic).

        `local_star` is an unlisted star import earlier in this stage (or anywhere in it,
        for a read inside a function), which comes before the earlier stages' ones."""
        name = event.name
        if name in self.bound_at:
            source = self.bound_at[name][0]
            self.edges.setdefault((source, stage.name), set()).add(name)
            return source
        if name in self.deleted_at:
            self._deleted(stage, cell, event, self.deleted_at[name])
            return None
        if name in BUILTINS and event.kind != "delete":
            return None
        star = local_star or self.star
        if star is None:
            self.problems.append(
                _undefined(self.notebook, stage.name, cell, event, self.first_bind.get(name))
            )
            return None
        if (name, star) not in self.assumed:
            self.assumed.add((name, star))
            self.problems.append(_assumed(self.notebook, stage.name, cell, event, star))
        if star.stage == stage.name:
            return None
        self.edges.setdefault((star.stage, stage.name), set()).add(name)
        return star.stage

    def _deleted(self, stage: Stage, cell: Cell, event: Event, where: Where) -> None:
        if event.name in BUILTINS and event.kind != "delete":
            return  # with the global gone, the name is the builtin again
        self.problems.append(_deleted(self.notebook, stage.name, cell, event, where))


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
    if event.kind == "delete" and not later:
        message = f"`del {event.name}` deletes a name that no earlier cell binds."
        hint = "remove the `del`, or bind the name first."
    elif later and later[1] >= cell.index:
        where = "this cell" if later[1] == cell.index else f"cell {later[1]} (stage `{later[0]}`)"
        message = (
            f"`{event.name}` is used before it is defined: it is first bound later, in {where}."
        )
        hint = "move the definition above this use, or this cell below it."
    else:
        message = f"`{event.name}` is used before any cell defines it."
        hint = "define it in an earlier cell, or check the spelling."
    if event.deferred:
        message = message.replace("is used", "is used inside a function", 1)
    return Diagnostic(ERROR, notebook, message, stage, cell.index, event.line, hint)


def _assumed(notebook: str, stage: str, cell: Cell, event: Event, star: Star) -> Diagnostic:
    statement = f"from {star.module} import *"
    return Diagnostic(
        WARNING,
        notebook,
        f"`{event.name}` is assumed to come from `{statement}` (cell {star.cell}, line "
        f"{star.line}): nothing earlier binds it, and the module's names could not be "
        f"listed ({star.reason}).",
        stage,
        cell.index,
        event.line,
        f"import it by name (`from {star.module} import {event.name}`), or make "
        f"{star.module} importable where `nbfreeze check` runs.",
    )


def _deleted(notebook: str, stage: str, cell: Cell, event: Event, where: Where) -> Diagnostic:
    if where.how == "except":
        message = (
            f"`{event.name}` is only bound inside the `except … as {event.name}` handler "
            f"(cell {where.cell}, line {where.line}); Python unbinds it when the handler ends."
        )
        hint = "assign it to another name inside the handler, and use that."
    else:
        message = (
            f"`{event.name}` is used after `del {event.name}` in cell {where.cell}, "
            f"line {where.line}, and nothing binds it again in between."
        )
        hint = "bind it again before this use, or remove the `del`."
    return Diagnostic(ERROR, notebook, message, stage, cell.index, event.line, hint)


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
