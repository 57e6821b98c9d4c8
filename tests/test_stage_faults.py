"""A shared stage that hangs, sleeps, raises or takes memory without end is stopped and
reported to the owner, and `nbfreeze serve` goes on serving: the stages that do not
depend on it run, the labelers' pages and the owner's dashboard answer."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from served import Labeler, Person, Served, notebook
from tornado.httpclient import AsyncHTTPClient

ASK = "#| stage: ask\n#| input: each\nimport ipywidgets as w\ns = w.IntSlider(value=total)\ns"

HANGING = (
    "import time\nx = 1",
    "#| stage: spin\nspun = 0\nwhile True:\n    try:\n        spun += 1\n    except Exception:\n"
    "        pass",
    "#| stage: nap\ntime.sleep(3600)\nnapped = 1",
    "#| stage: broken\nrows = [1, 2]\nvalue = rows[7]",
    "#| stage: count\ntotal = x + 1",
    ASK,
    "#| stage: report\n#| show: true\nprint(spun, napped, value)",
)

GROWING = (
    "x = 1",
    "#| stage: grow\nblocks = []\nwhile True:\n    blocks.append(b'x' * 2**23)",
    "#| stage: count\ntotal = x + 1",
    ASK,
)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


async def still_serving(served: Served) -> dict:
    """Check that a labeler and the owner are served; the owner's view of the stages."""
    client = AsyncHTTPClient(force_instance=True)
    try:
        alice = Person(served.port, client)
        await alice.enter(served.invite)
        _, stages, _ = await alice.call("/api/v1/stages")
        assert stages["next"] == "/stage/ask"
        assert (await alice.call("/stage/ask"))[0] == 200
        body = '{"request_id": "r1", "state": {"": {"value": 5}}}'
        status, reply, _ = await alice.call("/api/v1/stages/ask/submit", method="POST", body=body)
        assert status == 200, reply
        owner = Person(served.port, client)
        await owner.enter(served.owner)
        assert (await owner.call("/owner"))[0] == 200
        assert (await owner.call("/api/v1/dashboard"))[0] == 200
        status, pipeline, _ = await owner.call("/api/v1/pipeline")
        assert status == 200
        return pipeline["stages"]
    finally:
        client.close()


def test_a_hanging_a_sleeping_and_a_raising_stage_are_stopped_and_the_rest_goes_on(tmp_path):
    served = Served(notebook(tmp_path, HANGING), "--stage-timeout", "1")
    try:
        terminal = served.wait_for("[5/6] count: done")
        stages = asyncio.run(still_serving(served))
        spin, nap, broken = stages["spin"], stages["nap"], stages["broken"]
        assert spin["state"] == nap["state"] == "failed"
        assert "ran longer than 1 s" in spin["reason"] and "--stage-timeout" in spin["error"]
        assert "ran longer than 1 s" in nap["reason"]
        assert "cannot interrupt" in nap["error"] and "cannot interrupt" not in spin["error"]
        assert broken["state"] == "failed" and "cell 4, line 3" in broken["reason"]
        assert "IndexError" in broken["error"]
        assert stages["count"]["state"] == "done"
        assert stages["report"]["state"] == "waiting"
        assert "spin: failed: stage `spin` ran longer than 1 s" in terminal
        before = cpu_seconds(served.process.pid)
        asyncio.run(asyncio.sleep(2))
        assert cpu_seconds(served.process.pid) - before < 1, "the spinning stage still runs"
    finally:
        served.stop()


def test_a_stage_that_takes_memory_without_end_is_stopped_and_gives_it_back(tmp_path):
    served = Served(notebook(tmp_path, GROWING), "--stage-memory", "300")
    try:
        terminal = served.wait_for("[3/3] count: done")
        stages = asyncio.run(still_serving(served))
        grow = stages["grow"]
        assert grow["state"] == "failed"
        assert "MemoryError" in grow["reason"] and "300 MB" in grow["reason"]
        assert "--stage-memory" in grow["error"]
        assert "grow: failed: MemoryError" in terminal
        peak, now = (memory_kb(served.process.pid, f) for f in ("VmHWM", "VmRSS"))
        assert peak - now > 250 * 1024, (peak, now)
    finally:
        served.stop()


SLOW_MERGE = (
    "import time\nfrom freezer.widgets import ChoiceLabeler\n"
    "items = {i: f'item {i}' for i in range(4)}\n"
    "def spin(labels):\n    while True:\n        pass\n"
    "def nap(labels):\n    time.sleep(3600)",
    "#| stage: label\n#| input: pool\n#| batch: 4\n#| merge: spin\n"
    "labeler = ChoiceLabeler(items, choices=['a', 'b'], render=str)\nlabeler",
    "#| stage: other\n#| input: pool\n#| batch: 4\n#| merge: nap\n"
    "checker = ChoiceLabeler(items, choices=['a', 'b'], render=str)\nchecker",
    "#| stage: after\n#| show: true\nprint(len(labeler.labels), len(checker.labels))",
)


async def label_and_ask_the_owner(served: Served) -> dict:
    """Label both pools through the API, then ask what the owner sees of them: the
    pipeline, the preview and a download, each an answer, none a hang."""
    client = AsyncHTTPClient(force_instance=True)
    try:
        for stage in ("label", "other"):
            labeler = Labeler(served.port, client, stage)
            await labeler.work(served.invite)
            assert len(labeler.acknowledged) == 4
        owner = Person(served.port, client)
        await owner.enter(served.owner)
        for _ in range(100):
            _, pipeline, _ = await owner.call("/api/v1/pipeline")
            stages = pipeline["stages"]
            if all("could not be merged" in stages[s]["reason"] for s in ("label", "other")):
                break
            await asyncio.sleep(0.2)
        status, shown, _ = await owner.call("/api/v1/stages/label/preview")
        assert status == 200, shown
        status, refused, _ = await owner.call("/api/v1/stages/other/labels.jsonl")
        assert status == 400, refused
        assert (await owner.call("/api/v1/dashboard"))[0] == 200
        return {"stages": stages, "preview": shown, "download": refused}
    finally:
        client.close()


def test_a_merge_function_that_hangs_is_stopped_and_the_pool_waits(tmp_path):
    served = Served(notebook(tmp_path, SLOW_MERGE), "--stage-timeout", "1")
    try:
        seen = asyncio.run(label_and_ask_the_owner(served))
        label, other = seen["stages"]["label"], seen["stages"]["other"]
        assert label["state"] == other["state"] == "labeling"
        assert "the merge function `spin` of stage `label` ran longer than 1 s" in label["reason"]
        assert "the merge function `nap` of stage `other` ran longer than 1 s" in other["reason"]
        assert "--stage-timeout" in label["error"] and "cannot interrupt" in other["error"]
        assert seen["stages"]["after"]["state"] == "waiting"
        assert "`spin` of stage `label` ran longer than 1 s" in seen["preview"]["error"]
        assert "`nap` of stage `other` ran longer than 1 s" in seen["download"]["error"]
        before = cpu_seconds(served.process.pid)
        asyncio.run(asyncio.sleep(2))
        assert cpu_seconds(served.process.pid) - before < 1, "the spinning merge still runs"
    finally:
        served.stop()


SLOW_AFTER = (
    "from freezer.widgets import ChoiceLabeler\nitems = {i: f'item {i}' for i in range(4)}",
    "#| stage: label\n#| input: pool\n#| batch: 2\n"
    "labeler = ChoiceLabeler(items, choices=['a', 'b'], render=str)\nlabeler",
    "#| stage: after\nwhile labeler.labels:\n    pass",
)


async def preview_after_a_batch(served: Served) -> tuple[int, dict]:
    client = AsyncHTTPClient(force_instance=True)
    try:
        labeler = Labeler(served.port, client)
        await labeler.enter(served.invite)
        status, batch, _ = await labeler.call("/api/v1/stages/label/batch")
        assert status == 200 and len(batch["items"]) == 2, batch
        body = json.dumps({"request_id": "r1", "labels": dict.fromkeys(batch["items"], "a")})
        status, _, _ = await labeler.call("/api/v1/stages/label/submit", method="POST", body=body)
        assert status == 200
        owner = Person(served.port, client)
        await owner.enter(served.owner)
        status, shown, _ = await owner.call("/api/v1/stages/label/preview")
        assert (await owner.call("/api/v1/dashboard"))[0] == 200
        return status, shown
    finally:
        client.close()


def test_a_stage_that_hangs_in_the_owners_preview_is_stopped(tmp_path):
    served = Served(notebook(tmp_path, SLOW_AFTER), "--stage-timeout", "1")
    try:
        status, shown = asyncio.run(preview_after_a_batch(served))
        assert status == 200
        assert shown["error"] == "the preview of the stages after `label` ran longer than 1 s"
        assert shown["waiting"] == ["after"]
    finally:
        served.stop()
