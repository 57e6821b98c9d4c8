"""Going back and an item's history in the staged app, through the JSON API and a page's
socket: a labeler changes an answer of an earlier batch while the pool is open (never
another's, never once it is finished), and the owner sees every change of an item and
puts an earlier answer back."""

from __future__ import annotations

import html
import json

from staged_harness import StagedTestCase
from tornado.testing import gen_test

from runtime.store.pools import annotations, history, progress

CELLS = (
    "from freezer.widgets import ChoiceLabeler\nitems = {f't{i}': f'text {i}' for i in range(6)}",
    "#| stage: label\n#| input: pool\n#| overlap: 2\n#| batch: 2\n"
    "labeler = ChoiceLabeler(items, choices=['good', 'bad'])\nlabeler",
    "#| stage: report\n#| show: true\n"
    "print(sorted(labeler.labels.items()))\nprint('ties', sorted(labeler.ties))",
)


def key(item: str) -> str:
    return json.dumps(item)


class TestGoingBack(StagedTestCase):
    cells = CELLS

    async def label_batch(self, person, label_of=lambda key: "good") -> list[str]:
        status, batch = await person.get_json("/api/v1/stages/label/batch")
        assert status == 200 and batch["items"], batch
        labels = {k: label_of(k) for k in batch["items"]}
        status, reply = await person.submit("label", {"__labels__": labels})
        assert status == 200, reply
        return batch["items"]

    def labels_of(self, user_id: int) -> dict[str, str]:
        rows = annotations(self.store, "label")
        return {row.item_key: row.label for row in rows if row.user_id == user_id}

    async def user_id(self, person) -> int:
        return (await person.get_json("/api/v1/stages"))[1]["user"]["id"]

    @gen_test
    async def test_a_labeler_goes_back_batch_by_batch_and_changes_an_answer(self):
        await self.advance()
        alice = await self.labeler()
        first = await self.label_batch(alice)
        second = await self.label_batch(alice)
        status, back = await alice.get_json("/api/v1/stages/label/earlier?back=1")
        assert status == 200 and back["items"] == second and back["batches"] == 2
        assert back["labels"] == dict.fromkeys(second, "good")
        status, older = await alice.get_json("/api/v1/stages/label/earlier?back=2")
        assert status == 200 and older["items"] == first
        status, none = await alice.get_json("/api/v1/stages/label/earlier?back=3")
        assert status == 404 and "no batch 3 back" in none["error"]
        status, bad = await alice.get_json("/api/v1/stages/label/earlier?back=two")
        assert status == 400 and "`back` must be a whole number" in bad["error"]

        status, reply = await alice.submit("label", {"__labels__": {first[0]: "bad"}})
        assert status == 200, reply
        assert self.labels_of(await self.user_id(alice))[first[0]] == "bad"
        changes = history(self.store, "label", first[0])
        assert [(c.old_label, c.new_label) for c in changes] == [(None, "good"), ("good", "bad")]
        # Still one label per labeler: the item's counts are as they were.
        assert progress(self.store, "label").labels == 4
        # The changed batch stays the batch it was; new work carries on after it.
        assert (await alice.get_json("/api/v1/stages/label/earlier?back=2"))[1]["labels"] == {
            first[0]: "bad",
            first[1]: "good",
        }
        third = await self.label_batch(alice)
        assert not set(third) & set(first + second)

    @gen_test
    async def test_the_changed_answer_reaches_the_merge(self):
        await self.advance()
        alice, bob = await self.labeler(), await self.labeler()
        for _ in range(3):
            await self.label_batch(alice)
        status, reply = await alice.submit("label", {"__labels__": {key("t0"): "bad"}})
        assert status == 200, reply
        for _ in range(3):
            await self.label_batch(bob, lambda k: "bad" if k == key("t0") else "good")
        await self.advance()
        assert self.staged.pipeline.status["label"].state == "done"
        page = await alice.open_stage("report")
        shown = html.unescape(page.html(3))
        assert "('t0', 'bad')" in shown and "ties []" in shown  # not Alice's first "good"

    @gen_test
    async def test_a_finished_pool_is_read_only(self):
        await self.advance()
        alice, bob = await self.labeler(), await self.labeler()
        for person in (alice, bob):
            for _ in range(3):
                await self.label_batch(person)
        await self.advance()
        status, reply = await alice.get_json("/api/v1/stages/label/earlier?back=1")
        assert status == 409 and "read-only" in reply["error"]
        status, reply = await alice.submit("label", {"__labels__": {key("t0"): "bad"}})
        assert status == 409 and "read-only" in reply["error"]
        assert self.labels_of(await self.user_id(alice))[key("t0")] == "good"

    @gen_test
    async def test_a_page_gone_back_shows_the_answers_and_keeps_the_held_batch(self):
        await self.advance()
        alice = await self.labeler()
        first = await self.label_batch(alice)
        held = (await alice.get_json("/api/v1/stages/label/batch"))[1]["items"]
        page = await alice.open_stage("label&back=1")
        buttons = [
            cid for cid, s in page.models.items() if s.get("_model_name") == "ToggleButtonsModel"
        ]
        assert len(buttons) == 2  # the earlier batch alone
        assert [page.models[cid]["index"] for cid in buttons] == [0, 0]  # "good", as given
        await page.set(buttons[1], index=1)
        await page.ws.write_message(json.dumps({"type": "submit", "request_id": "again"}))
        reply = (await page.until(lambda m: m["type"].startswith("submit")))[-1]
        assert reply["type"] == "submitted" and reply["next"] == "/stage/label", reply
        assert "swapped" not in reply  # the page goes on to new work as a new page
        assert self.labels_of(await self.user_id(alice)) == {first[0]: "good", first[1]: "bad"}
        # The batch held while she went back is hers still.
        assert (await alice.get_json("/api/v1/stages/label/batch"))[1]["items"] == held
        body = (await alice.fetch("/stage/label?back=1")).body.decode()
        assert "back=1" in body and "On to new work" in body

    @gen_test
    async def test_a_labeler_can_change_see_or_restore_only_their_own_answers(self):
        await self.advance()
        alice, bob = await self.labeler(), await self.labeler()
        first = await self.label_batch(alice)
        status, reply = await bob.get_json("/api/v1/stages/label/earlier?back=1")
        assert status == 404  # Bob has submitted nothing: Alice's batch is not his
        await self.label_batch(bob, lambda k: "bad")  # the same items: overlap 2
        status, reply = await bob.submit("label", {"__labels__": {key("t5"): "bad"}})
        assert status == 400 and "not in your batch" in reply["error"]
        status, reply = await bob.get_json(f"/api/v1/stages/label/history?item={first[0]}")
        assert status == 403 and "only the owner" in reply["error"]
        body = {"item": "t0", "labeler": await self.user_id(alice), "label": "bad"}
        status, reply = await bob.fetch_json("/api/v1/stages/label/history", body)
        assert status == 403
        assert self.labels_of(await self.user_id(alice)) == dict.fromkeys(first, "good")
        assert "nbf-history" not in (await bob.fetch("/owner")).body.decode()

    @gen_test
    async def test_the_owner_sees_an_items_changes_and_puts_an_answer_back(self):
        await self.advance()
        alice, owner = await self.labeler(), await self.owner()
        alice_id = await self.user_id(alice)
        await self.label_batch(alice)
        await alice.submit("label", {"__labels__": {key("t0"): "bad"}})
        status, seen = await owner.get_json("/api/v1/stages/label/history?item=t0")
        assert status == 200 and seen["item"] == "t0" and seen["open"]
        assert [(c["labeler"]["id"], c["old"], c["new"]) for c in seen["changes"]] == [
            (alice_id, None, "good"),
            (alice_id, "good", "bad"),
        ]
        assert seen["labelers"] == [
            {
                "labeler": {"id": alice_id, "name": seen["labelers"][0]["labeler"]["name"]},
                "label": "bad",
                "earlier": ["good"],
            }
        ]
        body = {"item": "t0", "labeler": alice_id, "label": "good"}
        status, reply = await owner.fetch_json("/api/v1/stages/label/history", body)
        assert status == 200 and reply["change"]["old"] == "bad" and reply["change"]["restored"]
        assert self.labels_of(alice_id)[key("t0")] == "good"
        status, seen = await owner.get_json("/api/v1/stages/label/history?item=t0")
        assert [c["new"] for c in seen["changes"]] == ["good", "bad", "good"]

        status, reply = await owner.fetch_json(
            "/api/v1/stages/label/history", body | {"label": "great"}
        )
        assert status == 400 and "never the answer" in reply["error"]
        status, reply = await owner.get_json("/api/v1/stages/label/history?item=t99")
        assert status == 404 and "no item 't99'" in reply["error"]
        status, reply = await owner.get_json("/api/v1/stages/nowhere/history?item=t0")
        assert status == 404
        # Without the XSRF token a restore is refused and nothing changes.
        del owner.cookies["_xsrf"]
        status = (
            await owner.fetch(
                "/api/v1/stages/label/history",
                method="POST",
                body=json.dumps(body | {"label": "bad"}),
            )
        ).code
        assert status == 403 and self.labels_of(alice_id)[key("t0")] == "good"


class TestGoingBackOnPostgres(TestGoingBack):
    database = "postgresql"
