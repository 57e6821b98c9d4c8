"""What the shared stages after an open pool would show with the labels given so far.

The owner's dashboard asks for it while labelers work: a scratch session starts from a
copy of the shared namespace, builds the pool's widget afresh with the partial labels
given as the finished stage would give them (labels merged by the pool's rule and the
owner's accuracy floor, with the review decisions so far, probabilities, ties, confusion
matrices, raw annotations), and runs the shared compute stages that follow whose other
inputs are ready, recording what they display; the others are reported as waiting.
Nothing of it touches the real shared namespace.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from freezer.widgets import showing_first
from runtime.app.pipeline import (
    HeadlessSession,
    Pipeline,
    Silent,
    decisions,
    give_merged,
    merged_labels,
    raw_annotations,
    with_decisions,
)
from runtime.app.stage_limits import run_limited
from runtime.app.stage_run import run_cells, stage_widget
from runtime.app.walk import requirements
from runtime.bundle import Stage
from runtime.store import pools
from runtime.store.merging import Merged, MergeError


@dataclass(frozen=True)
class Preview:
    """What the shared compute stages after an open pool display with the labels so far,
    by stage, and the later ones that cannot run yet (they wait for an owner's answer,
    another pool, or a stage that failed); `error` says why the labels so far could not
    be merged (the pool's own merge function failed), and then nothing ran."""

    outputs: dict[str, list[dict[str, Any]]]
    waiting: list[str]
    error: str | None = None


async def preview(pipeline: Pipeline, pool_name: str) -> Preview:
    notebook = pipeline.notebook
    pool_stage = notebook.stage(pool_name)
    pool = pipeline.pools.get(pool_name)
    if pool_stage is None or pool is None:
        return Preview({}, [])
    rows = pools.annotations(pipeline.store, pool_name)
    decided = decisions(pipeline.store, pool_name) if "review" in pool_stage.options else {}
    ready, waiting = _after(pipeline, pool_stage)
    session = HeadlessSession(
        notebook, Silent(), pipeline.executor, namespace=dict(pipeline.namespace)
    )
    outputs: dict[str, list[dict[str, Any]]] = {}
    failure: list[str] = []

    def merge() -> None:  # the merge function is under the limits of its own
        try:
            found.append(merged_labels(pool, rows, pipeline.floors.get(pool_name)))
        except MergeError as error:
            failure.append(f"stage `{pool_name}`: {error}")

    def run(merged: Merged) -> None:
        with showing_first(()):  # the widget is only a holder of the labels here
            run_cells(session, notebook, pool_stage)
        give_merged(stage_widget(session, pool_stage), merged, raw_annotations(pool, rows))
        for stage in ready:
            session.recording = outputs.setdefault(stage.name, [])
            run_cells(session, notebook, stage)
        session.recording = None

    found: list[Merged] = []
    await session.call(merge)
    stop = None
    if found:
        # The stages after the pool are the notebook's code, run here outside the
        # pipeline: under the same limits as when they run for real.
        what = f"the preview of the stages after `{pool_name}`"
        merged = with_decisions(pool, found[0], decided)
        stop = await run_limited(session.call, run, (merged,), pipeline.limits, what)
    if stop is None or not stop.stuck:
        await session.close()  # a session stuck in C is left, as the pipeline leaves one
    if stop is not None:
        failure.append(stop.message)
    if failure:
        return Preview({}, [s.name for s in ready + waiting], failure[0])
    return Preview(outputs, [s.name for s in waiting])


def _after(pipeline: Pipeline, pool_stage: Stage) -> tuple[list[Stage], list[Stage]]:
    """The shared compute stages after the pool that can run on it now (everything else
    they depend on is done, or is one of them), and those that cannot yet."""
    ready: list[Stage] = []
    waiting: list[Stage] = []
    for stage in pipeline.notebook.stages:
        if stage.scope != "shared" or stage.kind != "compute":
            continue
        needed = {s.name for s in requirements(pipeline.notebook, stage)}
        if pool_stage.name not in needed:
            continue
        others = needed - {pool_stage.name} - {s.name for s in ready}
        if all(pipeline.done(name) for name in others):
            ready.append(stage)
        else:
            waiting.append(stage)
    return ready, waiting
