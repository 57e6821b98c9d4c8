"""What the shared stages after an open pool would show with the labels given so far.

The owner's dashboard asks for it while labelers work: a scratch session starts from a
copy of the shared namespace, builds the pool's widget afresh with the partial labels
merged in, and runs the shared compute stages that follow, recording what they display.
Nothing of it touches the real shared namespace.
"""

from __future__ import annotations

from typing import Any

from runtime.app.pipeline import DONE, HeadlessSession, Pipeline, Silent
from runtime.app.stage_run import run_cells, stage_widget
from runtime.app.walk import requirements
from runtime.bundle import Stage
from runtime.store import pools
from runtime.store.agreement import merge


async def preview(pipeline: Pipeline, pool_name: str) -> dict[str, list[dict[str, Any]]]:
    """Each previewable stage's recorded output messages, by stage name."""
    notebook = pipeline.notebook
    pool_stage = notebook.stage(pool_name)
    pool = pipeline.pools.get(pool_name)
    if pool_stage is None or pool is None:
        return {}
    rows = pools.annotations(pipeline.store, pool_name)
    merged = merge(pools.labels_by_item(rows)).labels
    later = [s for s in _after(pipeline, pool_stage) if s.kind == "compute"]
    session = HeadlessSession(
        notebook, Silent(), pipeline.executor, namespace=dict(pipeline.namespace)
    )
    outputs: dict[str, list[dict[str, Any]]] = {}

    def run() -> None:
        run_cells(session, notebook, pool_stage)
        stage_widget(session, pool_stage).labels = {
            pool.ids[key]: label for key, label in merged.items() if key in pool.ids
        }
        for stage in later:
            session.recording = outputs.setdefault(stage.name, [])
            run_cells(session, notebook, stage)
        session.recording = None

    try:
        await session.call(run)
    finally:
        await session.close()
    return outputs


def _after(pipeline: Pipeline, pool_stage: Stage) -> list[Stage]:
    """Shared stages that depend on the pool and on nothing else that is not done."""
    chosen = []
    for stage in pipeline.notebook.stages:
        if stage.scope != "shared" or stage.name == pool_stage.name:
            continue
        needed = {s.name for s in requirements(pipeline.notebook, stage)}
        if pool_stage.name not in needed:
            continue
        others = needed - {pool_stage.name} - {s.name for s in chosen}
        if all(pipeline.status[name].state == DONE for name in others if name in pipeline.status):
            chosen.append(stage)
    return chosen
