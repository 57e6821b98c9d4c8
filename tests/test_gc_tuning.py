"""The served process keeps the shared namespace out of the cyclic collector's reach.

The shared namespace (a notebook's data, its models, a pool's items) is many objects
that live as long as the server; every full collection used to walk them all while
every request waited. `nbfreeze serve` freezes them (`gc.freeze`) once the shared
stages have run, and again when another stage finishes or a pool opens; what requests
make is still collected.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import subprocess
import sys
import weakref

import nbformat
from conftest import notebook_from
from staged_harness import StagedTestCase
from tornado.testing import bind_unused_port, gen_test

from runtime.app import gc_tuning

ITEMS = 200
CELLS = (
    "from freezer.widgets import ChoiceLabeler\n"
    f"items = {{i: f'item {{i}}' for i in range({ITEMS})}}",
    "#| stage: label\n#| input: pool\n#| batch: 100\n"
    "labeler = ChoiceLabeler(items, choices=['a', 'b'], render=str)\nlabeler",
    "#| stage: report\n#| show: true\nsummary = {'labeled': len(labeler.labels)}\nsummary",
)


def test_the_served_process_freezes_the_pool_widget_before_it_says_ready(tmp_path):
    notebook = tmp_path / "pool.ipynb"
    nbformat.write(notebook_from(CELLS), notebook)
    probe = tmp_path / "gc.jsonl"
    sock, port = bind_unused_port()
    sock.close()
    process = subprocess.Popen(
        [sys.executable, "-m", "freezer", "serve", str(notebook), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=os.environ | {gc_tuning.PROBE_ENV: str(probe)},
    )
    try:
        lines = []
        while not any(line.startswith("Ready.") for line in lines):
            line = process.stdout.readline()  # type: ignore[union-attr]
            assert line, "".join(lines)
            lines.append(line)
        froze = [json.loads(line).get("froze") for line in probe.read_text().splitlines()]
        froze = [line for line in froze if line is not None]
    finally:
        process.terminate()
        process.wait(timeout=30)
    # Everything the process holds once the shared stages ran: the imported libraries,
    # the notebook's values, the pool's items.
    assert froze and froze[-1] > 10 * ITEMS


class TestFreezing(StagedTestCase):
    cells = CELLS

    def tearDown(self) -> None:
        gc.unfreeze()  # the rest of the test run is collected as before
        super().tearDown()

    async def frozen_more_than(self, count: int) -> int:
        for _ in range(100):  # the task wakes when the pipeline changes
            if gc.get_freeze_count() > count:
                return gc.get_freeze_count()
            await asyncio.sleep(0)
        raise AssertionError(f"still {gc.get_freeze_count()} objects frozen, not more")

    @gen_test
    async def test_a_finished_stage_is_frozen_too_and_new_garbage_is_still_collected(self):
        await self.advance()
        pipeline = self.staged.pipeline
        task = gc_tuning.keep_frozen(pipeline)
        try:
            frozen = gc.get_freeze_count()
            labeler = pipeline.namespace["labeler"]
            assert not any(o is labeler for o in gc.get_objects())  # out of reach

            person = await self.labeler()
            for _ in range(ITEMS // 100):
                status, batch = await person.get_json("/api/v1/stages/label/batch")
                assert status == 200
                status, _ = await person.submit(
                    "label", {"__labels__": dict.fromkeys(batch["items"], "a")}
                )
                assert status == 200
            await self.advance()
            assert pipeline.status["report"].state == "done"
            await self.frozen_more_than(frozen)
            summary = pipeline.namespace["summary"]
            assert not any(o is summary for o in gc.get_objects())

            class Cycle:
                pass

            made = Cycle()
            made.self = made  # type: ignore[attr-defined]
            alive = weakref.ref(made)
            del made
            gc.collect()
            assert alive() is None
        finally:
            task.cancel()
