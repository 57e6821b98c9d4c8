"""Which pages a person sees, in what order, and which one they are on.

A labeler's pages are the `each` and `pool` input stages and the compute stages with
`show: true`; the owner's are the `owner` stages and the shared reports. A page is
open when everything it depends on is done: the shared stages by the pipeline, the
user's own input stages by their answers; a pool page is open while the pool is being
labeled and the person still has work in it. The current page is the first open page
the person has not answered; none open and some left means a waiting page.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from runtime.bundle import Notebook, Stage
from runtime.store.database import OWNER, REVIEWER

DONE, OPEN, WAITING = "done", "open", "waiting"


@dataclass(frozen=True)
class Page:
    """One of a person's pages and where it stands for them."""

    stage: Stage
    state: str
    reason: str = ""


def page_stages(notebook: Notebook, role: str) -> list[Stage]:
    """The stages that are pages for someone of `role`, in notebook order (a reviewer's
    pages are the review pages alone, `runtime.app.review`)."""
    if role == REVIEWER:
        return []
    if role == OWNER:
        return [
            s
            for s in notebook.stages
            if s.input == "owner" or (s.kind == "compute" and s.shown and s.scope == "shared")
        ]
    return [
        s
        for s in notebook.stages
        if s.input in ("each", "pool") or (s.kind == "compute" and s.shown)
    ]


def requirements(notebook: Notebook, stage: Stage) -> list[Stage]:
    """Every stage `stage` depends on, directly or not, in notebook order."""
    needed: set[str] = set()
    todo = list(stage.depends_on)
    while todo:
        name = todo.pop()
        if name not in needed:
            needed.add(name)
            todo.extend(notebook.stage(name).depends_on)  # type: ignore[union-attr]
    return [s for s in notebook.stages if s.name in needed]


def walk(
    notebook: Notebook,
    role: str,
    answered: set[str],
    shared_done: Callable[[str], bool],
    shared_reason: Callable[[str], str] = lambda name: "",
    pool_open: Callable[[str], bool] = lambda name: False,
) -> list[Page]:
    """Every page of the person, with its state for them. A pool page is open while its
    pool is being labeled and `answered` holds it once nothing is left for the person."""
    pages = []
    for stage in page_stages(notebook, role):
        if stage.name in answered or (stage.input == "pool" and shared_done(stage.name)):
            pages.append(Page(stage, DONE))
            continue
        if stage.input == "pool" and pool_open(stage.name):
            pages.append(Page(stage, OPEN))
            continue
        blockers = [
            s
            for s in requirements(notebook, stage)
            if (s.scope == "shared" and not shared_done(s.name))
            or (s.input == "each" and s.name not in answered)
        ]
        if blockers:
            first = blockers[0]
            reason = shared_reason(first.name) if first.scope == "shared" else ""
            waiting_for = f"waits for “{first.title}”" + (f" ({reason})" if reason else "")
            pages.append(Page(stage, WAITING, waiting_for))
        elif stage.input == "pool":  # its items are not handed out yet: its code runs
            pages.append(Page(stage, WAITING, "opens once its items are ready"))
        else:
            pages.append(Page(stage, OPEN))
    return pages


def current(pages: list[Page]) -> Page | None:
    """The page to show now: the first open one; None when all are done or waiting."""
    return next((page for page in pages if page.state == OPEN), None)


def lead_in(notebook: Notebook, role: str, stage: Stage) -> list[Stage]:
    """The compute stages without a page of their own just before `stage`: their output
    shows on its page."""
    pages = {s.name for s in page_stages(notebook, role)}
    before: list[Stage] = []
    for other in notebook.stages:
        if other.name == stage.name:
            return before
        if other.name in pages:
            before = []
        elif other.kind == "compute" and not other.shown:
            before.append(other)
    return before
