"""The owner's gold-accuracy floor through the API: kept in the database, used by the
preview, the dashboard, the exports and the thawed notebook, and refused with a clear
message when it cannot be a floor."""

from __future__ import annotations

import html
import json

import pytest
from staged_harness import StagedTestCase
from tornado.testing import gen_test

from runtime import bundle
from runtime.app import thaw
from runtime.app.dashboard import overview
from runtime.app.preview import preview
from runtime.server import ServeOptions, make_staged_app
from runtime.store.database import open_store
from runtime.store.floors import accuracy_floors

START = (
    "from freezer.widgets import ChoiceLabeler\nitems = {f't{i}': f'text {i}' for i in range(4)}"
    "\nanswers = {'t0': 'good', 't1': 'good'}"
)
CELLS = (
    START,
    # Half of each batch gold: each labeler's batch of 4 is both gold items and t2, t3.
    "#| stage: label\n#| input: pool\n#| overlap: 3\n#| batch: 4\n#| gold: answers\n"
    "#| gold_rate: 0.5\nlabeler = ChoiceLabeler(items, choices=['good', 'bad'])\nlabeler",
    "#| stage: plain\n#| input: pool\nplain = ChoiceLabeler(items, choices=['good', 'bad'])\nplain",
    "#| stage: report\n#| show: true\nprint(sorted(labeler.labels.items()))",
)


class TestFloorApi(StagedTestCase):
    cells = CELLS

    async def two_labelers(self):
        """A sloppy labeler who gets both gold items wrong, then a careful one."""
        await self.advance()
        sloppy, careful = await self.labeler(), await self.labeler()
        for person, label in ((sloppy, "bad"), (careful, "good")):
            batch = (await person.get_json("/api/v1/stages/label/batch"))[1]["items"]
            await person.submit("label", {"__labels__": dict.fromkeys(batch, label)})
        return sloppy, careful

    async def report(self, owner):
        code, preview = await owner.get_json("/api/v1/stages/label/preview")
        return html.unescape("".join(preview["stages"]["report"]))

    async def gold(self, owner):
        code, data = await owner.get_json("/api/v1/dashboard")
        return next(s for s in data["stages"] if s["name"] == "label")["gold"]

    @gen_test
    async def test_a_floor_set_through_the_api_leaves_the_sloppy_labeler_out_until_cleared(self):
        sloppy, careful = await self.two_labelers()
        owner = await self.owner()
        gold = await self.gold(owner)
        assert (gold["items"], gold["floor"], gold["settable"]) == (2, None, True)
        assert [(g["correct"], g["total"], g["left_out"]) for g in gold["labelers"]] == [
            (0, 2, False),
            (2, 2, False),
        ]
        # 2 of 2 right: the 95% Wilson interval is 0.342 to 1.
        assert (gold["labelers"][1]["low"], gold["labelers"][1]["high"]) == pytest.approx(
            (0.342, 1.0), abs=1e-3
        )
        assert "('t2', 'bad')" in await self.report(owner)  # a tie keeps the first label

        status, reply = await owner.fetch_json("/api/v1/stages/label/floor", {"floor": 0.5})
        assert (status, reply) == (200, {"stage": "label", "floor": 0.5})
        assert accuracy_floors(self.store) == {"label": 0.5}
        assert "('t2', 'good'), ('t3', 'good')" in await self.report(owner)
        gold = await self.gold(owner)
        assert gold["floor"] == 0.5
        assert [g["left_out"] for g in gold["labelers"]] == [True, False]
        rows = await self.jsonl(owner)
        assert rows['"t2"'] == "good"
        pool = thaw.answers(self.store, self.staged.notebook)["stages"]["label"]
        assert pool["floor"] == 0.5

        status, reply = await owner.fetch_json("/api/v1/stages/label/floor", {"floor": None})
        assert (status, reply) == (200, {"stage": "label", "floor": None})
        assert accuracy_floors(self.store) == {}
        assert "('t2', 'bad')" in await self.report(owner)
        assert [g["left_out"] for g in (await self.gold(owner))["labelers"]] == [False, False]
        assert (await self.jsonl(owner))['"t2"'] == "bad"

    async def jsonl(self, owner):
        response = await owner.fetch("/api/v1/stages/label/labels.jsonl")
        assert response.code == 200
        rows = [json.loads(line) for line in response.body.decode().splitlines()]
        return {row["key"]: row["label"] for row in rows}

    @gen_test
    async def test_a_wrong_floor_is_refused_with_what_to_send_and_keeps_the_one_set(self):
        sloppy, _ = await self.two_labelers()
        owner = await self.owner()
        assert (await owner.fetch_json("/api/v1/stages/label/floor", {"floor": 0.25}))[0] == 200
        refusals = [
            (
                "label",
                {"floor": 1.5},
                400,
                "pool `label`: an accuracy floor is a share from 0 to 1",
            ),
            ("label", {"floor": -0.1}, 400, "a share from 0 to 1, not -0.1"),
            ("label", {"floor": "high"}, 400, "a share from 0 to 1, not 'high'"),
            ("label", {"floor": True}, 400, "a share from 0 to 1, not True"),
            ("label", {}, 400, '{"floor": null} to clear'),
            ("plain", {"floor": 0.5}, 400, "pool `plain` has no gold answers (`#| gold:`)"),
            ("report", {"floor": 0.5}, 400, "`report` is not a pool stage"),
            ("nothing", {"floor": 0.5}, 404, "there is no stage `nothing`"),
        ]
        for stage, body, code, message in refusals:
            status, reply = await owner.fetch_json(f"/api/v1/stages/{stage}/floor", body)
            assert status == code and message in reply["error"], (stage, body, reply)
        status, reply = await sloppy.fetch_json("/api/v1/stages/label/floor", {"floor": 0.0})
        assert (status, reply["error"]) == (403, "only the owner can see this")
        assert accuracy_floors(self.store) == {"label": 0.25}

    @gen_test
    async def test_a_restarted_app_merges_with_the_floor_set_before(self):
        await self.two_labelers()
        owner = await self.owner()
        assert (await owner.fetch_json("/api/v1/stages/label/floor", {"floor": 0.5}))[0] == 200
        store = open_store(self.db_url)
        restarted = make_staged_app(
            bundle.load(self.bundle_dir), store, self.bundle_dir / "cache", ServeOptions()
        ).settings["staged"]
        try:
            await restarted.pipeline.advance()
            assert restarted.pipeline.floors == {"label": 0.5}
            stages = overview(restarted)["stages"]
            gold = next(stage for stage in stages if stage["name"] == "label")["gold"]
            assert [g["left_out"] for g in gold["labelers"]] == [True, False]
            shown = await preview(restarted.pipeline, "label")
            report = html.unescape("".join(m.get("html", "") for m in shown.outputs["report"]))
            assert "('t2', 'good'), ('t3', 'good')" in report
        finally:
            await restarted.shutdown()
            store.dispose()


class TestFloorApiOnPostgres(TestFloorApi):
    database = "postgresql"
