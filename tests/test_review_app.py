"""Reviewing a pool's disagreements: the pool waits in review, the owner or a reviewer
decides, the stages after it and the exports see the decisions; who may see what."""

from __future__ import annotations

import html
import json
import subprocess
import sys
from datetime import UTC, datetime

import numpy as np
from staged_harness import Person, StagedTestCase
from tornado.testing import gen_test

from freezer.widgets import ChoiceLabeler, Classify, showing_first, trusted_html
from runtime.app.pipeline import Pool, to_review
from runtime.app.review import display
from runtime.store.database import default_url, open_store
from runtime.store.merging import merge_labels
from runtime.store.pools import Row, annotations

START = (
    "from freezer.widgets import ChoiceLabeler\nitems = {f't{i}': f'text {i}' for i in range(6)}"
)
REPORT = (
    "#| stage: report\n#| show: true\n"
    "print(sorted(labeler.labels.items()))\nprint(sorted(labeler.probabilities.items()))"
)


def pool(review: str, merge: str = "majority") -> str:
    return (
        f"#| stage: label\n#| input: pool\n#| overlap: 3\n#| batch: 6\n#| merge: {merge}\n"
        f"#| review: {review}\nlabeler = ChoiceLabeler(items, choices=['good', 'bad'])\nlabeler"
    )


# Each labeler's labels, t0..t5: alice, bob and carol disagree on t1, t3 and t4.
DISAGREEING = {
    "alice": "good good bad good bad good",
    "bob": "good good bad bad good good",
    "carol": "good bad bad bad good good",
}


class ReviewCase(StagedTestCase):
    async def label(self, answers: dict[str, str]) -> dict[str, Person]:
        await self.advance()
        people = {}
        for name, labels in answers.items():
            person = people[name] = await self.labeler()
            assert (await person.fetch_json("/api/v1/me", {"name": name}))[0] == 200
            keys = (await person.get_json("/api/v1/stages/label/batch"))[1]["items"]
            status, reply = await person.submit(
                "label", {"__labels__": dict(zip(keys, labels.split(), strict=True))}
            )
            assert status == 200, reply
        await self.advance()
        return people

    async def reviewer(self, name: str = "rita") -> Person:
        owner = await self.owner()
        status, made = await owner.fetch_json("/api/v1/invites", {"name": name, "role": "reviewer"})
        assert status == 200 and made["role"] == "reviewer"
        person = Person(self)
        await person.enter(made["link"].rsplit("token=", 1)[1])
        return person


class TestReviewOfDisagreements(ReviewCase):
    cells = (START, pool("disagreement"), REPORT)

    @gen_test
    async def test_the_pool_waits_for_the_reviewer_whose_decisions_the_next_stage_sees(self):
        people = await self.label(DISAGREEING)
        status = self.staged.pipeline.status["label"]
        assert (status.state, status.reason) == ("reviewing", "0 of 3 items reviewed")
        alice = people["alice"]
        assert (await alice.get_json("/api/v1/stages"))[1]["next"] == "/waiting"
        rita = await self.reviewer()
        _, mine = await rita.get_json("/api/v1/stages")
        assert mine["user"]["role"] == "reviewer" and mine["stages"] == []
        assert mine["next"] == "/review/label"
        decided = {}
        for decision in ("bad", "good", "bad"):
            status, batch = await rita.get_json("/api/v1/stages/label/review")
            assert status == 200 and batch["choices"] == ["good", "bad"]
            [item] = batch["items"]
            if item["key"] == '"t1"':
                assert item["label"] == "good" and abs(item["probability"] - 2 / 3) < 1e-9
                assert [(a["labeler_name"], a["label"]) for a in item["annotations"]] == [
                    ("alice", "good"),
                    ("bob", "good"),
                    ("carol", "bad"),
                ]
                assert item["display"] == {"kind": "text", "text": "text 1"}
            body = {"request_id": f"d-{item['key']}", "decisions": {item["key"]: decision}}
            status, reply = await rita.fetch_json("/api/v1/stages/label/review", body)
            assert status == 200 and reply["saved"] == [item["key"]], reply
            decided[item["id"]] = decision
        assert sorted(decided) == ["t1", "t3", "t4"]
        assert reply["next"] == "/waiting"  # every item is decided: the pool closes soon
        owner = await self.owner()
        _, preview = await owner.get_json("/api/v1/stages/label/preview")
        shown = html.unescape(" ".join(preview["stages"]["report"]))
        assert "('t1', 'bad'), ('t2', 'bad'), ('t3', 'good'), ('t4', 'bad')" in shown
        await self.advance()
        assert self.staged.pipeline.status["label"].state == "done"
        assert (await alice.get_json("/api/v1/stages"))[1]["next"] == "/stage/report"
        text = html.unescape((await alice.open_stage("report")).html(3))
        assert "('t1', 'bad'), ('t2', 'bad'), ('t3', 'good'), ('t4', 'bad')" in text
        assert "('t1', 1.0)" in text and "('t4', 1.0)" in text and "('t0', 1.0)" in text
        download = await owner.fetch("/api/v1/stages/label/labels.jsonl")
        rows = {r["id"]: r for r in map(json.loads, download.body.decode().splitlines())}
        assert [(i, r["review"], r["label"]) for i, r in sorted(rows.items())] == [
            ("t0", False, "good"),
            ("t1", True, "bad"),
            ("t2", False, "bad"),
            ("t3", True, "good"),
            ("t4", True, "bad"),
            ("t5", False, "good"),
        ]
        assert rows["t1"]["reviewer_name"] == "rita" and rows["t1"]["probability"] == 1.0
        assert rows["t0"]["reviewer"] is None
        csv = (await owner.fetch("/api/v1/stages/label/labels.csv")).body.decode()
        assert '"""t3""",t3,good,1.0,False,True,' in csv and ",rita," in csv

    @gen_test
    async def test_a_decision_outside_the_choices_or_for_an_item_not_leased_is_refused(self):
        await self.label(DISAGREEING)
        rita = await self.reviewer()
        [item] = (await rita.get_json("/api/v1/stages/label/review"))[1]["items"]
        refusals = [
            ({item["key"]: "great"}, "not one of the choices"),
            ({'"t0"': "good"}, "not in your batch"),
            ({}, "`decisions` must map"),
        ]
        for decisions, why in refusals:
            body = {"request_id": "x", "decisions": decisions}
            status, reply = await rita.fetch_json("/api/v1/stages/label/review", body)
            assert status == 400 and why in reply["error"], reply
        status, reply = await rita.fetch_json("/api/v1/stages/label/review", {"decisions": {}})
        assert status == 400 and "request_id" in reply["error"]
        assert self.staged.pipeline.review_progress("label") == {"items": 3, "reviewed": 0}

    @gen_test
    async def test_the_owner_reviews_too_and_a_second_reviewer_gets_another_item(self):
        await self.label(DISAGREEING)
        owner, rita = await self.owner(), await self.reviewer()
        first = (await owner.get_json("/api/v1/stages/label/review"))[1]["items"]
        second = (await rita.get_json("/api/v1/stages/label/review"))[1]["items"]
        assert first[0]["key"] != second[0]["key"]
        overview = (await owner.fetch("/owner")).body.decode()
        assert '<a href="/review/label">review</a>' in overview
        assert "Make their reviewer link" in overview
        _, dashboard = await owner.get_json("/api/v1/dashboard")
        [entry] = [s for s in dashboard["stages"] if s["name"] == "label"]
        assert (entry["state"], entry["review"]) == ("reviewing", {"items": 3, "reviewed": 0})
        assert [who["name"] for who in dashboard["labelers"]] == ["alice", "bob", "carol"]
        page = await owner.fetch("/review/label")
        body = html.unescape(page.body.decode())
        assert page.code == 200 and first[0]["id"] in body and "Merged: <b>" in body
        assert "review.js" in body and "<kbd>2</kbd> bad" in body

    @gen_test
    async def test_decisions_survive_a_restart_and_the_pool_reopens_in_review(self):
        await self.label(DISAGREEING)
        rita = await self.reviewer()
        [item] = (await rita.get_json("/api/v1/stages/label/review"))[1]["items"]
        body = {"request_id": "first", "decisions": {item["key"]: "bad"}}
        assert (await rita.fetch_json("/api/v1/stages/label/review", body))[0] == 200
        await self.staged.shutdown()
        self._app = self.make()
        self.http_server.request_callback = self._app
        await self.advance()
        status = self.staged.pipeline.status["label"]
        assert (status.state, status.reason) == ("reviewing", "1 of 3 items reviewed")
        [after] = (await rita.get_json("/api/v1/stages/label/review"))[1]["items"]
        assert after["key"] != item["key"]


class TestReviewOfDisagreementsOnPostgres(TestReviewOfDisagreements):
    database = "postgresql"


class TestWhoSeesReviews(ReviewCase):
    cells = (START, pool("disagreement"), REPORT)

    @gen_test
    async def test_a_labeler_gets_403_on_review_pages_and_a_reviewer_on_labeling_and_owner_pages(
        self,
    ):
        people = await self.label(DISAGREEING)
        alice = people["alice"]
        assert (await alice.fetch("/review/label")).code == 403
        status, reply = await alice.get_json("/api/v1/stages/label/review")
        assert status == 403 and "owner and reviewers" in reply["error"]
        body = {"request_id": "x", "decisions": {'"t1"': "good"}}
        assert (await alice.fetch_json("/api/v1/stages/label/review", body))[0] == 403
        # A labeler's finished pool shows their own labels, nobody else's.
        done = html.unescape((await alice.fetch("/stage/label")).body.decode())
        assert "<td>t3</td><td>good</td>" in done and "carol" not in done and "bob" not in done
        rita = await self.reviewer()
        assert (await rita.fetch("/stage/label")).code == 403
        assert (await rita.fetch("/stage/report")).code == 403
        assert (await rita.fetch("/owner")).code == 403
        for path in ("/api/v1/stages/label/batch", "/api/v1/stages/label", "/api/v1/dashboard"):
            assert (await rita.get_json(path))[0] == 403, path
        status, reply = await rita.submit("label", {"__labels__": {'"t1"': "good"}})
        assert status == 403 and "review pages only" in reply["error"]
        assert (await rita.fetch("/review/label")).code == 200

    @gen_test
    async def test_review_pages_refuse_before_the_labels_are_in_and_for_a_pool_without_review(
        self,
    ):
        await self.advance()
        rita = await self.reviewer()
        status, reply = await rita.get_json("/api/v1/stages/label/review")
        assert status == 409 and "not in review; it is labeling" in reply["error"]
        assert (await rita.get_json("/api/v1/stages/report/review"))[0] == 404
        assert (await rita.get_json("/api/v1/stages"))[1]["next"] == "/waiting"


class TestReviewUnderAProbability(ReviewCase):
    cells = (START, pool("0.8", merge="dawid-skene"), REPORT)

    @gen_test
    async def test_dawid_skene_items_under_the_probability_are_reviewed_and_no_others(self):
        await self.label(
            {
                "alice": "bad good good good bad bad",
                "bob": "good good bad bad bad good",
                "carol": "bad bad bad bad good bad",
            }
        )
        keys = self.staged.pipeline.pools["label"].review_keys
        by_item = {}
        for row in annotations(self.store, "label"):
            by_item.setdefault(row.item_key, {})[row.user_id] = row.label
        merged = merge_labels("dawid-skene", by_item, ["good", "bad"])
        expected = sorted(k for k, p in merged.probabilities.items() if p < 0.8)
        assert keys == expected == ['"t0"', '"t1"', '"t2"', '"t3"', '"t5"']  # not t4
        status = self.staged.pipeline.status["label"]
        assert (status.state, status.reason) == ("reviewing", "0 of 5 items reviewed")


def test_invite_command_makes_a_reviewer_link(tmp_path):
    bundle = tmp_path / "app"
    bundle.mkdir()
    store = open_store(default_url(bundle))
    result = subprocess.run(
        [sys.executable, "-m", "freezer", "invite", str(bundle), "--reviewer", "rita"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("rita (reviewer): http://127.0.0.1:8866/?token=")
    user = store.redeem(result.stdout.strip().rsplit("token=", 1)[1])
    assert (user.name, user.role) == ("rita", "reviewer")


def test_a_review_item_is_shown_as_the_pool_widget_shows_it():
    square = np.zeros((4, 4), dtype=np.uint8)
    classify = Classify({"a": square, "b": "<b>text</b>"}, choices=["x", "y"])
    assert display(classify, "a")["src"].startswith("data:image/png;base64,iVBOR")
    assert display(classify, "b") == {"kind": "text", "text": "<b>text</b>"}
    marked = Classify({"c": trusted_html("<i>mine</i>")}, choices=["x", "y"])
    assert display(marked, "c") == {"kind": "html", "text": "<i>mine</i>"}
    choice = ChoiceLabeler({"a": square, "b": "plain"}, choices=["x", "y"])
    assert display(choice, "a")["kind"] == "image"
    assert display(choice, "b") == {"kind": "text", "text": "plain"}


def test_an_item_the_notebook_cannot_draw_is_shown_by_its_id():
    def broken(item):
        if item == 2:
            raise ValueError("no picture")
        return str(item)

    with showing_first(()):  # as the app builds a pool's shared widget: nothing drawn
        widget = Classify({"a": 1, "b": 2}, choices=["x", "y"], show=broken)
    assert display(widget, "a") == {"kind": "text", "text": "1"}
    assert display(widget, "b") == {"kind": "text", "text": "b"}


def test_disagreement_and_a_probability_pick_their_items_and_never_gold_ones():
    at = datetime(2026, 1, 5, tzinfo=UTC)
    ids = {'"a"': "a", '"b"': "b", '"c"': "c", '"d"': "d"}
    given = {"a": "x x x", "b": "x y x", "c": "y y x", "d": "x y y"}
    rows = [
        Row(f'"{item}"', who, label, at)
        for item, labels in given.items()
        for who, label in enumerate(labels.split(), start=2)
    ]
    pool = Pool(None, ids, ("x", "y"), 3, 3, 10, 600, gold={'"d"': "y"})
    merged = merge_labels("majority", {i: {} for i in ids.values()}, ["x", "y"])
    merged.probabilities.update({"a": 1.0, "b": 2 / 3, "c": 2 / 3, "d": 2 / 3})
    assert to_review(pool, rows, merged, "disagreement") == ['"b"', '"c"']
    assert to_review(pool, rows, merged, 0.5) == []
    assert to_review(pool, rows, merged, 0.7) == ['"b"', '"c"']
