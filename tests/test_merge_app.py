"""A pool stage's merge rule and gold answers in the served app, driven through the API."""

from __future__ import annotations

import html

import pytest
from runtime_harness import notebook_bundle
from staged_harness import StagedTestCase
from tornado.testing import gen_test

from runtime import bundle
from runtime.server import ServeOptions, make_staged_app

START = (
    "from freezer.widgets import ChoiceLabeler\nitems = {f't{i}': f'text {i}' for i in range(4)}"
)


async def label_all(case, person, label_of):
    """Label every batch the person gets, `label_of(key)` each, advancing after each."""
    while True:
        code, batch = await person.get_json("/api/v1/stages/label/batch")
        if code != 200 or not batch["items"]:
            return
        labels = {key: label_of(key) for key in batch["items"]}
        status, reply = await person.submit("label", {"__labels__": labels})
        assert status == 200, reply
        await case.advance()


class TestDawidSkeneWithGold(StagedTestCase):
    cells = (
        START + "\nanswers = {'t0': 'bad'}",
        "#| stage: label\n#| input: pool\n#| overlap: 2\n#| batch: 4\n"
        "#| merge: dawid-skene\n#| gold: answers\n#| gold_rate: 0.25\n"
        "labeler = ChoiceLabeler(items, choices=['good', 'bad'])\nlabeler",
        "#| stage: report\n#| show: true\n"
        "print(sorted(labeler.labels.items()))\n"
        "print(sorted((k, round(p, 2)) for k, p in labeler.probabilities.items()))\n"
        "print(sorted((who, sorted(rows)) for who, rows in labeler.confusion.items()))",
    )

    @gen_test
    async def test_the_stages_after_see_labels_probabilities_and_confusion_with_gold_as_truth(
        self,
    ):
        await self.advance()
        pool = self.staged.pipeline.pools["label"]
        assert (pool.merge, pool.gold, pool.gold_rate) == ("dawid-skene", {'"t0"': "bad"}, 0.25)
        alice, bob = await self.labeler(), await self.labeler()
        await label_all(self, alice, lambda key: "bad" if key == '"t0"' else "good")
        await label_all(self, bob, lambda key: "bad" if key == '"t0"' else "good")
        await self.advance()
        assert self.staged.pipeline.status["label"].state == "done"
        page = await alice.open_stage("report")
        text = html.unescape(page.html(3))
        assert "[('t0', 'bad'), ('t1', 'good'), ('t2', 'good'), ('t3', 'good')]" in text
        assert "('t0', 1.0)" in text  # a gold item is certain
        users = sorted({row["labeler"] for row in pool.widget.annotations})
        assert f"({users[0]}, ['bad', 'good'])" in text
        rows = pool.widget.confusion[users[0]]
        assert rows["bad"]["bad"] > 0.99 and rows["good"]["good"] > 0.99


class TestAMergeFunctionThatFails(StagedTestCase):
    cells = (
        START + "\ncalls = []\n"
        "def picky(labels):\n"
        "    calls.append(len(labels))\n"
        "    given = [label for by in labels.values() for label in by.values()]\n"
        "    if 'bad' not in given:\n"
        "        raise ValueError('no item is bad yet')\n"
        "    return {item: 'bad' for item in labels}",
        "#| stage: label\n#| input: pool\n#| batch: 4\n#| merge: picky\n"
        "labeler = ChoiceLabeler(items, choices=['good', 'bad'])\nlabeler",
        "#| stage: report\n#| show: true\nprint(sorted(labeler.labels.items()))",
    )

    @gen_test
    async def test_the_owner_sees_the_error_the_stage_waits_and_a_changed_label_retries(self):
        await self.advance()
        alice = await self.labeler()
        batch = (await alice.get_json("/api/v1/stages/label/batch"))[1]["items"]
        with self.assertNoLogs(level="WARNING"):
            await label_all(self, alice, lambda key: "good")
            await self.advance()
            await self.advance()
        status = self.staged.pipeline.status["label"]
        assert status.state == "labeling"
        assert "the merge function `picky` raised ValueError: no item is bad yet" in status.reason
        assert self.staged.pipeline.namespace["calls"] == [4]  # not again for the same labels
        owner = await self.owner()
        code, shown = await owner.get_json("/api/v1/dashboard")
        assert code == 200 and "no item is bad yet" in str(shown)
        code, preview = await owner.get_json("/api/v1/stages/label/preview")
        assert code == 200 and "no item is bad yet" in preview["error"]
        code, state = await alice.get_json("/api/v1/stages")
        assert "Traceback" not in str(state) and state["next"] != "/stage/report"
        code, reply = await alice.submit("label", {"__labels__": {batch[0]: "bad"}})
        assert code == 200, reply
        await self.advance()
        assert status.state == "done" and status.error is None
        page = await alice.open_stage("report")
        assert "('t3', 'bad')" in html.unescape(page.html(3))
        assert len(self.staged.pipeline.namespace["calls"]) == 3  # preview, then the retry


class TestAMergeFunctionThatFailsOnPostgres(TestAMergeFunctionThatFails):
    database = "postgresql"


class TestGoldThatIsWrong(StagedTestCase):
    cells = (
        START + "\nanswers = {k: 'maybe' for k in items}",
        "#| stage: label\n#| input: pool\n#| gold: answers\n"
        "labeler = ChoiceLabeler(items, choices=['good', 'bad'])\nlabeler",
    )

    @gen_test
    async def test_an_answer_outside_the_choices_fails_the_stage_naming_the_gold_line(self):
        await self.advance()
        status = self.staged.pipeline.status["label"]
        assert status.state == "failed"
        assert status.reason.startswith("stage `label`, cell 2, line 3: the gold answer 'maybe'")
        assert "['good', 'bad']" in status.reason


class TestAMergeThatIsNoFunction(StagedTestCase):
    cells = (
        START,
        "#| stage: label\n#| input: pool\n#| merge: items\n"
        "labeler = ChoiceLabeler(items, choices=['good', 'bad'])\nlabeler",
    )

    @gen_test
    async def test_a_merge_naming_a_value_that_is_no_function_fails_the_stage_at_its_line(self):
        await self.advance()
        status = self.staged.pipeline.status["label"]
        assert status.state == "failed"
        assert status.reason.startswith(
            "stage `label`, cell 2, line 3: `#| merge: items` names a dict"
        )


class TestAccuracyFloor(StagedTestCase):
    cells = (
        START + "\nanswers = {'t0': 'good', 't1': 'good'}",
        # Half of each batch gold: each labeler's batch of 4 is both gold items and t2, t3.
        "#| stage: label\n#| input: pool\n#| overlap: 3\n#| batch: 4\n#| gold: answers\n"
        "#| gold_rate: 0.5\nlabeler = ChoiceLabeler(items, choices=['good', 'bad'])\nlabeler",
        "#| stage: report\n#| show: true\nprint(sorted(labeler.labels.items()))",
    )

    @gen_test
    async def test_the_floor_leaves_a_bad_labeler_out_and_lowering_it_brings_them_back(self):
        await self.advance()
        pipeline = self.staged.pipeline
        sloppy, careful = await self.labeler(), await self.labeler()
        batch = (await sloppy.get_json("/api/v1/stages/label/batch"))[1]["items"]
        await sloppy.submit("label", {"__labels__": dict.fromkeys(batch, "bad")})
        batch = (await careful.get_json("/api/v1/stages/label/batch"))[1]["items"]
        await careful.submit("label", {"__labels__": dict.fromkeys(batch, "good")})
        scores = pipeline.gold_scores("label")
        assert [(s.correct, s.total) for s in scores.values()] == [(0, 2), (2, 2)]
        assert scores[max(scores)].low == pytest.approx(0.342, abs=1e-3)  # Wilson, 2 of 2
        owner = await self.owner()

        async def report():
            code, preview = await owner.get_json("/api/v1/stages/label/preview")
            return html.unescape("".join(preview["stages"]["report"]))

        # One label each: a tie, which keeps the label given first, the sloppy one's.
        assert "('t2', 'bad')" in await report()
        pipeline.set_accuracy_floor("label", 0.5)
        assert "('t2', 'good'), ('t3', 'good')" in await report()
        pipeline.set_accuracy_floor("label", None)
        assert "('t2', 'bad')" in await report()
        for wrong, message in ((1.5, "from 0 to 1"), ("high", "from 0 to 1")):
            try:
                pipeline.set_accuracy_floor("label", wrong)
            except ValueError as error:
                assert message in str(error)
            else:
                raise AssertionError(f"{wrong!r} was taken as a floor")
        assert "label" not in pipeline.floors


RULED = (
    START + "\ndef strictest(labels):\n"
    "    return {item: 'bad' if 'bad' in by.values() else 'good' for item, by in labels.items()}",
    "#| stage: label\n#| input: pool\n#| overlap: 2\n#| batch: 4\n#| merge: majority\n"
    "labeler = ChoiceLabeler(items, choices=['good', 'bad'])\nlabeler",
    "#| stage: report\n#| show: true\nprint(sorted(labeler.labels.values()))",
)


class TestAChangedRule(StagedTestCase):
    cells = RULED

    @gen_test
    async def test_a_changed_merge_rule_runs_the_stages_after_again_not_from_the_cache(self):
        await self.advance()
        alice, bob = await self.labeler(), await self.labeler()
        await label_all(self, alice, lambda key: "good")
        await label_all(self, bob, lambda key: "bad")
        await self.advance()
        report = self.staged.pipeline.status["report"]
        assert report.state == "done" and "['good', 'good', 'good', 'good']" in html.unescape(
            str(report.outputs)
        )
        changed = (RULED[0], RULED[1].replace("merge: majority", "merge: strictest"), RULED[2])
        (self.tmp / "changed").mkdir()
        app = make_staged_app(
            bundle.load(notebook_bundle(self.tmp / "changed", changed)),
            self.store,
            self.bundle_dir / "cache",  # the same cache as the first app's
            ServeOptions(),
        )
        staged = app.settings["staged"]
        try:
            await staged.pipeline.advance()
            again = staged.pipeline.status["report"]
            assert again.state == "done" and not again.cached
            assert "['bad', 'bad', 'bad', 'bad']" in html.unescape(str(again.outputs))
        finally:
            await staged.shutdown()
