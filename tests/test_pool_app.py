"""Pooled labeling in the staged app: batches, overlap, merged labels after the pool."""

from __future__ import annotations

import html
import json
import logging
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from staged_harness import Person, StagedTestCase
from tornado.testing import gen_test

from freezer import load_labels
from runtime.app.dashboard import minutes_left, overview
from runtime.store.database import Annotation, LabelHistory, default_url, now, open_store
from runtime.store.pools import annotations, labels_of

CELLS = (
    "from freezer.widgets import ChoiceLabeler\nitems = {f't{i}': f'text {i}' for i in range(6)}",
    "md:Is this text good?",
    "#| stage: label\n#| input: pool\n#| overlap: 2\n#| batch: 2\n"
    "labeler = ChoiceLabeler(items, choices=['good', 'bad'])\nlabeler",
    "#| stage: report\n#| show: true\n"
    "print(sorted(labeler.labels.items()))\nprint(sorted(labeler.ties))\nprint(len(labeler.annotations))",
)


class TestPool(StagedTestCase):
    cells = CELLS

    async def label_everything(self, person, label_of) -> int:
        batches = 0
        while True:
            status, batch = await person.get_json("/api/v1/stages/label/batch")
            if status != 200 or not batch["items"]:
                return batches
            labels = {key: label_of(key) for key in batch["items"]}
            status, reply = await person.submit("label", labels_body(labels))
            assert status == 200, reply
            batches += 1
            await self.advance()

    @gen_test
    async def test_batches_overlap_and_merged_labels_reach_the_next_stage(self):
        await self.advance()
        alice, bob = await self.labeler(), await self.labeler()
        assert (await alice.get_json("/api/v1/stages"))[1]["next"] == "/stage/label"
        first = (await alice.get_json("/api/v1/stages/label/batch"))[1]
        second = (await bob.get_json("/api/v1/stages/label/batch"))[1]
        assert first["choices"] == ["good", "bad"] and len(first["items"]) == 2
        assert first["items"] == second["items"]  # overlap 2: both label the first items
        assert await self.label_everything(alice, lambda key: "good") == 3
        status, data = await alice.get_json("/api/v1/stages")
        assert data["next"] == "/waiting"
        report = next(s for s in data["stages"] if s["name"] == "report")
        assert "0 of 6 items" in report["reason"] or "label" in report["reason"]
        await self.label_everything(bob, lambda key: "good" if key in ('"t0"', '"t1"') else "bad")
        await self.advance()
        assert self.staged.pipeline.status["label"].state == "done"
        status, data = await alice.get_json("/api/v1/stages")
        assert data["next"] == "/stage/report"
        page = await alice.open_stage("report")
        text = html.unescape(page.html(4))
        assert "('t0', 'good')" in text and "('t5', 'good')" in text
        assert "['t2', 't3', 't4', 't5']" in text and "12" in text
        # The finished pool's page is what Bob answered, to read: no widget, no bounce.
        done = await bob.fetch("/stage/label")
        body = html.unescape(done.body.decode())
        assert done.code == 200 and "what you answered" in body
        assert "<td>t2</td><td>bad</td>" in body and "<td>t0</td><td>good</td>" in body
        assert "nbf-submit" not in body and "waiting.js" not in body

    @gen_test
    async def test_a_page_shows_only_the_batch_and_submits_its_live_labels(self):
        await self.advance()
        alice = await self.labeler()
        page = await alice.open_stage("label")
        buttons = [
            cid for cid, s in page.models.items() if s.get("_model_name") == "ToggleButtonsModel"
        ]
        grid = page.model("GridBoxModel")
        assert len(page.models[grid]["children"]) == 2
        for comm_id in buttons[:2]:
            await page.set(comm_id, index=1)
        status, reply = await alice.submit("label")
        assert status == 200 and reply["next"] == "/stage/label"
        saved = await self.saved_labels()
        assert sorted(saved.values()) == ["bad", "bad"]

    async def saved_labels(self):
        return {row.item_key: row.label for row in annotations(self.store, "label")}

    @gen_test
    async def test_refused_labels_write_nothing(self):
        await self.advance()
        alice, bob = await self.labeler(), await self.labeler()
        mine = (await alice.get_json("/api/v1/stages/label/batch"))[1]["items"]
        status, reply = await alice.submit("label", labels_body(dict.fromkeys(mine, "great")))
        assert status == 400 and "not one of the choices" in reply["error"]
        status, reply = await bob.submit("label", labels_body(dict.fromkeys(mine, "good")))
        assert status == 400 and "not in your batch" in reply["error"]
        status, reply = await alice.submit("label", {"labels": [1, 2]})
        assert status == 400
        assert await self.saved_labels() == {}

    @gen_test
    async def test_a_retried_batch_is_saved_once(self):
        await self.advance()
        alice = await self.labeler()
        mine = (await alice.get_json("/api/v1/stages/label/batch"))[1]["items"]
        body = labels_body(dict.fromkeys(mine, "good"))
        assert (await alice.submit("label", body, request_id="once"))[0] == 200
        assert (await alice.submit("label", body, request_id="once"))[0] == 200
        assert len(await self.saved_labels()) == 2


class TestNextBatchInTheAnswer(StagedTestCase):
    cells = CELLS

    @gen_test
    async def test_a_submission_can_bring_back_the_next_batch_already_leased(self):
        await self.advance()
        alice = await self.labeler()
        batch = (await alice.get_json("/api/v1/stages/label/batch"))[1]["items"]
        seen = list(batch)
        while batch:
            body = {"request_id": f"n{len(seen)}", "next_batch": True}
            body["labels"] = dict.fromkeys(batch, "good")
            status, reply = await alice.fetch_json("/api/v1/stages/label/submit", body)
            assert status == 200, reply
            batch = reply["batch"]["items"]
            assert not set(batch) & set(seen)  # never an item twice
            if batch:  # leased: asking for it again gives the same batch
                again = (await alice.get_json("/api/v1/stages/label/batch"))[1]["items"]
                assert again == batch and reply["next"] == "/stage/label"
            seen += batch
        assert len(seen) == 6 and reply["next"] != "/stage/label"
        assert reply["batch"]["choices"] == ["good", "bad"]
        body = {"request_id": "bad", "labels": {}, "next_batch": "yes"}
        status, reply = await alice.fetch_json("/api/v1/stages/label/submit", body)
        assert status == 400 and "next_batch" in reply["error"]


class TestDashboard(StagedTestCase):
    cells = CELLS

    @gen_test
    async def test_the_owner_sees_progress_agreement_pace_and_can_download_labels(self):
        await self.advance()
        alice, bob = await self.labeler(), await self.labeler()
        for person, label in ((alice, "good"), (bob, "bad")):
            batch = (await person.get_json("/api/v1/stages/label/batch"))[1]["items"]
            await person.submit("label", labels_body(dict.fromkeys(batch, label)))
        owner = await self.owner()
        status, data = await owner.get_json("/api/v1/dashboard")
        label = next(s for s in data["stages"] if s["name"] == "label")
        assert label["progress"] == {"items": 6, "complete": 2, "labels": 4, "needed": 12}
        assert label["agreement"]["pairwise"] == 0.0
        assert sorted(p["labels"] for p in data["labelers"]) == [2, 2]
        assert all(p["per_minute"] > 0 for p in data["labelers"])
        csv_text = (await owner.fetch("/api/v1/stages/label/labels.csv")).body.decode()
        assert csv_text.splitlines()[0].startswith("key,id,label,probability,")
        assert len(csv_text.splitlines()) == 5 and "t0" in csv_text
        jsonl = (await owner.fetch("/api/v1/stages/label/labels.jsonl")).body.decode()
        assert len(jsonl.splitlines()) == 2  # an item a line: both labeled the same two
        status, preview = await owner.get_json("/api/v1/stages/label/preview")
        assert status == 200 and "('t0', " in html.unescape("".join(preview["stages"]["report"]))
        assert self.staged.pipeline.status["report"].state == "waiting"
        assert (await alice.get_json("/api/v1/dashboard"))[0] == 403
        assert (await alice.fetch("/api/v1/stages/label/labels.csv")).code == 403


class TestDashboardPace(StagedTestCase):
    cells = CELLS

    async def label_first_batch(self):
        """Alice and Bob label the same two items; they agree on one of them."""
        alice, bob = await self.labeler(), await self.labeler()
        batch = (await alice.get_json("/api/v1/stages/label/batch"))[1]["items"]
        assert (await bob.get_json("/api/v1/stages/label/batch"))[1]["items"] == batch
        await alice.submit("label", labels_body(dict.fromkeys(batch, "good")))
        await bob.submit("label", labels_body(dict(zip(batch, ["good", "bad"], strict=True))))
        return batch

    def move_labels(self, user_id: int, moment: datetime) -> None:
        """As if the labeler had given their labels at `moment` (a label's moment is its
        last change in the history)."""
        with self.store.engine.begin() as connection:
            connection.execute(
                update(Annotation)
                .where(Annotation.stage == "label", Annotation.user_id == user_id)
                .values(created_at=moment)
            )
            connection.execute(
                update(LabelHistory)
                .where(LabelHistory.stage == "label", LabelHistory.user_id == user_id)
                .values(changed_at=moment)
            )

    @gen_test
    async def test_the_owner_sees_pace_time_left_and_labels_per_minute(self):
        await self.advance()
        await self.label_first_batch()
        owner = await self.owner()
        status, data = await owner.get_json("/api/v1/dashboard")
        label = next(s for s in data["stages"] if s["name"] == "label")
        # 4 labels in the last 10 minutes: 0.4 a minute, and 8 of 12 still to give.
        assert label["pace"] == {"per_minute": 0.4, "minutes_left": 20.0}
        assert len(label["timeline"]["counts"]) == 30 and sum(label["timeline"]["counts"]) == 4
        start = datetime.fromisoformat(label["timeline"]["start"])
        assert timedelta(minutes=29) < now() - start <= timedelta(minutes=30)
        people = {p["name"]: p for p in data["labelers"]}
        assert people["labeler 2"]["agreement"] == 0.5 and people["labeler 2"]["compared"] == 2
        assert people["labeler 3"]["agreement"] == 0.5 and people["labeler 3"]["compared"] == 2

    @gen_test
    async def test_only_the_last_ten_minutes_set_the_pace(self):
        await self.advance()
        await self.label_first_batch()
        # Alice labeled 25 minutes ago, Bob 2 minutes ago: only Bob's labels set the pace.
        at = datetime(2030, 1, 1, 12, 0, 30, tzinfo=UTC)
        alice, bob = sorted({row.user_id for row in annotations(self.store, "label")})
        self.move_labels(alice, at - timedelta(minutes=25))
        self.move_labels(bob, at - timedelta(minutes=2))
        label = next(s for s in overview(self.staged, at)["stages"] if s["name"] == "label")
        assert label["pace"] == {"per_minute": 0.2, "minutes_left": 40.0}
        timeline = label["timeline"]
        assert datetime.fromisoformat(timeline["start"]) == datetime(2030, 1, 1, 11, 31, tzinfo=UTC)
        assert timeline["counts"] == [0] * 4 + [2] + [0] * 22 + [2] + [0] * 2
        # An hour later nothing is recent: no pace, so no estimate.
        later = overview(self.staged, at + timedelta(hours=1))
        label = next(s for s in later["stages"] if s["name"] == "label")
        assert label["pace"] == {"per_minute": 0.0, "minutes_left": None}
        assert label["timeline"]["counts"] == [0] * 30

    @gen_test
    async def test_a_finished_pool_has_no_time_left(self):
        await self.advance()
        alice, bob = await self.labeler(), await self.labeler()
        for person in (alice, bob):
            while batch := (await person.get_json("/api/v1/stages/label/batch"))[1]["items"]:
                await person.submit("label", labels_body(dict.fromkeys(batch, "good")))
        label = next(s for s in overview(self.staged)["stages"] if s["name"] == "label")
        assert label["progress"] == {"items": 6, "complete": 6, "labels": 12, "needed": 12}
        assert label["pace"] == {"per_minute": 1.2, "minutes_left": 0.0}
        assert label["agreement"]["pairwise"] == 1.0
        assert minutes_left(3, 0.0) is None and minutes_left(3, 1.5) == 2.0


class TestDashboardPaceOnPostgres(TestDashboardPace):
    database = "postgresql"


class TestInvites(StagedTestCase):
    cells = CELLS

    @gen_test
    async def test_a_personal_link_names_the_labeler_and_can_be_revoked(self):
        await self.advance()
        alice = Person(self)
        await alice.enter(self.store.invite("alice"))
        batch = (await alice.get_json("/api/v1/stages/label/batch"))[1]["items"]
        await alice.submit("label", labels_body(dict.fromkeys(batch, "good")))
        owner = await self.owner()
        names = [p["name"] for p in (await owner.get_json("/api/v1/dashboard"))[1]["labelers"]]
        assert names == ["alice"]
        frame = load_labels(self.db_url, "label")
        assert list(frame.columns) == ["item", "labeler", "labeler_name", "label", "time"]
        assert sorted(frame["item"]) == ["t0", "t1"] and set(frame["labeler_name"]) == {"alice"}
        assert self.store.revoke("alice") == 1
        assert (await alice.get_json("/api/v1/stages"))[0] == 401


class TestDashboardInvites(StagedTestCase):
    cells = CELLS

    @gen_test
    async def test_the_owner_invites_and_revokes_a_labeler_from_the_dashboard(self):
        await self.advance()
        owner = await self.owner()
        status, reply = await owner.fetch_json("/api/v1/invites", {"name": "dora"})
        assert status == 200 and reply["name"] == "dora"
        dora = Person(self)
        await dora.enter(reply["link"].rsplit("token=", 1)[1])
        assert (await dora.get_json("/api/v1/stages"))[0] == 200
        assert (await owner.fetch_json("/api/v1/invites", {"name": ""}))[0] == 400
        status, reply = await owner.fetch_json("/api/v1/invites/revoke", {"name": "dora"})
        assert (status, reply["revoked"]) == (200, 1)
        assert (await dora.get_json("/api/v1/stages"))[0] == 401
        assert (await dora.fetch_json("/api/v1/invites", {"name": "x"}))[0] == 401


def test_invite_command_prints_a_link_that_lets_the_labeler_in(tmp_path):
    bundle = tmp_path / "app"
    bundle.mkdir()
    store = open_store(default_url(bundle))
    result = subprocess.run(
        [sys.executable, "-m", "freezer", "invite", str(bundle), "--name", "bob"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip().rsplit("token=", 1)[1]
    assert store.redeem(token).name == "bob"
    revoked = subprocess.run(
        [sys.executable, "-m", "freezer", "invite", str(bundle), "--revoke", "bob"],
        capture_output=True,
        text=True,
    )
    assert revoked.returncode == 0 and store.redeem(token) is None


def test_invite_command_without_an_app_database_says_so(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "freezer", "invite", str(tmp_path), "--name", "x"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and "serve it once first" in result.stderr


class TestNotALabeler(StagedTestCase):
    cells = (
        "import ipywidgets as widgets",
        "#| stage: label\n#| input: pool\nw = widgets.IntSlider()\nw",
    )

    @gen_test
    async def test_a_pool_stage_without_a_labeling_widget_fails_clearly(self):
        await self.advance()
        status = self.staged.pipeline.status["label"]
        assert status.state == "failed" and "not a labeling widget" in status.reason


def labels_body(labels):
    """A pool submission's `state`: the labels by item key."""
    return {"__labels__": labels}


class TestUndo(StagedTestCase):
    cells = CELLS

    @gen_test
    async def test_a_labeler_changes_a_label_of_their_last_batch_while_the_pool_is_open(self):
        await self.advance()
        alice = await self.labeler()
        while True:
            batch = (await alice.get_json("/api/v1/stages/label/batch"))[1]["items"]
            if not batch:
                break
            await alice.submit("label", labels_body(dict.fromkeys(batch, "good")))
        page = await alice.open_stage("label")
        grid = page.model("GridBoxModel")
        assert len(page.models[grid]["children"]) == 2
        pressed = [
            s.get("index")
            for s in page.models.values()
            if s.get("_model_name") == "ToggleButtonsModel"
        ]
        assert pressed.count(0) == 2  # the last batch's "good" labels are shown
        toggles = [
            c
            for c, s in page.models.items()
            if s.get("_model_name") == "ToggleButtonsModel" and s.get("index") == 0
        ]
        await page.set(toggles[0], index=1)
        status, reply = await alice.submit("label")
        assert status == 200, reply
        labels = sorted(row.label for row in annotations(self.store, "label"))
        assert labels == ["bad"] + ["good"] * 5


class TestLeavingAPool(StagedTestCase):
    cells = (
        CELLS[0],
        "#| stage: label\n#| input: pool\n#| batch: 6\n"
        "labeler = ChoiceLabeler(items, choices=['good', 'bad'])\nlabeler",
        "#| stage: warmup\n#| input: each\n"
        "practice = ChoiceLabeler(['x'], choices=['good', 'bad'])\npractice",
    )

    @gen_test
    async def test_a_labeler_with_nothing_left_moves_on_while_the_pool_is_being_closed(self):
        await self.advance()
        alice = await self.labeler()
        status, batch = await alice.get_json("/api/v1/stages/label/batch")
        status, reply = await alice.submit(
            "label", labels_body(dict.fromkeys(batch["items"], "good"))
        )
        assert status == 200 and reply["next"] == "/stage/warmup", reply
        self.staged.pipeline.status["label"].state = "running"  # the pipeline closing it
        assert (await alice.get_json("/api/v1/stages"))[1]["next"] == "/stage/warmup"


class TestOnlyTheBatchIsSent(StagedTestCase):
    cells = (
        "import numpy as np\nfrom freezer.widgets import ImageGrid\n"
        "pictures = {f'p{i}': np.full((4, 4), i) for i in range(12)}",
        "#| stage: pick\n#| input: pool\n#| batch: 2\ngrid = ImageGrid(pictures)\ngrid",
    )

    @gen_test
    async def test_a_labelers_page_gets_the_images_of_their_batch_and_the_next_alone(self):
        await self.advance()
        alice = await self.labeler()
        page = await alice.open_stage("pick")
        states = [
            m["data"]["state"] for m in page.messages if m["type"] in ("comm_open", "comm_msg")
        ]
        shown = [state["_items"] for state in states if "_items" in state]
        ahead = [state["_ahead_items"] for state in states if state.get("_ahead_items")]
        assert [len(items) for items in shown] == [2]
        assert [len(items) for items in ahead] == [2]  # the next batch, held and not shown
        assert not {i["key"] for i in ahead[0]} & {i["key"] for i in shown[0]}
        images = sum(len(buffers) for buffers in page.buffers.values())
        assert images == 4


class TestHeldBatch(StagedTestCase):
    cells = TestOnlyTheBatchIsSent.cells

    async def submitted(self, page, request_id: str, **moved: object) -> tuple[dict, list]:
        """Submit from the page's socket; the server's reply and the messages before it."""
        await page.ws.write_message(
            json.dumps({"type": "submit", "request_id": request_id, **moved})
        )
        read = await page.until(lambda m: m["type"] in ("submitted", "submit_error"))
        return read[-1], read[:-1]

    @gen_test
    async def test_the_server_takes_the_pages_move_to_its_held_batch_or_shows_its_own(self):
        await self.advance()
        alice = await self.labeler()
        page = await alice.open_stage("pick")
        [where] = self.staged.batches
        shown, held = self.staged.batches[where], self.staged.ahead[where]
        assert len(shown) == len(held) == 2 and not set(shown) & set(held)

        labels = dict.fromkeys(shown, "no")
        reply, before = await self.submitted(page, "r1", labels=labels, ahead=held)
        assert reply["swapped"] and reply["kept"], reply
        assert self.staged.batches[where] == held
        updates = [m["data"]["state"] for m in before if m["type"] == "comm_msg"]
        assert any("_items" in state for state in updates)
        assert not any("labels" in state for state in updates)  # the page has them

        # Nothing was held ahead this time (the store gave the held batch alone): the
        # page did not move, and the server swaps its next batch in, as without prefetch.
        reply, _ = await self.submitted(page, "r2")
        assert reply["swapped"] and not reply["kept"], reply
        now_shown, now_held = self.staged.batches[where], self.staged.ahead[where]
        assert len(now_shown) == len(now_held) == 2

        # A page that says it moved to items it does not hold is shown the server's.
        stale = [key for key in self.staged.pipeline.pools["pick"].ids if key not in now_held]
        moved = {"labels": dict.fromkeys(now_shown, "yes"), "ahead": stale[-2:]}
        reply, _ = await self.submitted(page, "r3", **moved)
        assert reply["swapped"] and not reply["kept"], reply
        assert self.staged.batches[where] == now_held
        mine = labels_of(self.staged.store, "pick", where[0])
        assert mine == {**labels, **dict.fromkeys(held, "no"), **moved["labels"]}


class TestPreview(StagedTestCase):
    cells = (
        "from freezer.widgets import ChoiceLabeler\nitems = {f't{i}': i for i in range(4)}",
        "#| stage: label\n#| input: pool\n#| overlap: 2\n#| batch: 4\n"
        "labeler = ChoiceLabeler(items, choices=['good', 'bad'])\nlabeler",
        "#| stage: counted\n"
        "print(f'{len(labeler.labels)} labeled, {len(labeler.ties)} tied, '"
        "f'{len(labeler.annotations)} raw')",
        "#| stage: cutoff\n#| input: owner\nimport ipywidgets\n"
        "cutoff = ipywidgets.IntSlider(value=1)\ncutoff",
        "#| stage: after_cutoff\nprint('cut at', cutoff.value, len(labeler.labels))",
    )

    @gen_test
    async def test_the_preview_runs_only_ready_stages_with_what_the_finished_stage_gives(self):
        await self.advance()
        alice, bob = await self.labeler(), await self.labeler()
        for person, label in ((alice, "good"), (bob, "bad")):
            batch = (await person.get_json("/api/v1/stages/label/batch"))[1]["items"]
            await person.submit("label", labels_body({batch[0]: label, batch[1]: "good"}))
        owner = await self.owner()
        with self.assertLogs(level="DEBUG") as logged:
            status, preview = await owner.get_json("/api/v1/stages/label/preview")
            logging.getLogger("nbfreeze.test").debug("done")
        assert status == 200
        text = html.unescape("".join(preview["stages"]["counted"]))
        assert "2 labeled, 1 tied, 4 raw" in text
        assert "after_cutoff" not in preview["stages"]
        assert preview["waiting"] == ["after_cutoff"]
        assert not [r for r in logged.records if r.levelno >= logging.WARNING]


class TestNames(StagedTestCase):
    cells = CELLS

    @gen_test
    async def test_a_labeler_from_the_shared_invite_is_asked_a_name_and_the_owner_sees_it(self):
        await self.advance()
        ada = Person(self)
        response = await ada.fetch(f"/?token={self.invite_token}")
        assert response.headers["Location"] == "/welcome"
        page = await ada.fetch("/welcome")
        assert page.code == 200 and b"Your name" in page.body
        status, reply = await ada.fetch_json("/api/v1/me", {"name": "  Ada Lovelace "})
        assert status == 200 and reply["user"]["name"] == "Ada Lovelace"
        assert (await ada.fetch_json("/api/v1/me", {"name": ""}))[0] == 400
        owner = await self.owner()
        names = [p["name"] for p in (await owner.get_json("/api/v1/dashboard"))[1]["labelers"]]
        assert "Ada Lovelace" in names


class TestLabelerProgress(StagedTestCase):
    cells = CELLS

    @gen_test
    async def test_a_pool_page_says_what_you_did_and_what_happens_to_what_you_left(self):
        await self.advance()
        alice = await self.labeler()
        batch = (await alice.get_json("/api/v1/stages/label/batch"))[1]["items"]
        assert (await alice.submit("label", labels_body({batch[0]: "good"})))[0] == 200
        body = html.unescape((await alice.fetch("/stage/label")).body.decode())
        assert "You: 1 labeled." in body
        assert "stays yours and comes back with the next batch" in body
        again = (await alice.get_json("/api/v1/stages/label/batch"))[1]["items"]
        assert batch[1] in again  # the one left unlabeled came back

    @gen_test
    async def test_a_pool_page_leads_with_its_task_and_folds_the_notebooks_earlier_output(self):
        await self.advance()
        alice = await self.labeler()
        body = (await alice.fetch("/stage/label")).body.decode()
        # Cells are numbered from 1: the first stage's code, the Markdown, the pool's code.
        task, submit = body.index('data-cell="3"'), body.index('class="nbf-submit"')
        folded = body.index('<details class="nbf-lead-in">')
        assert task < submit < folded  # the widget's cell and Submit, then the rest
        assert body.index('data-cell="1"') > folded  # the first stage's output, folded
        assert body.index("Is this text good?") < submit  # the instructions lead


class TestOverlapRange(StagedTestCase):
    cells = (
        "from freezer.widgets import ChoiceLabeler\nitems = {'t0': 'text 0', 't1': 'text 1'}",
        "#| stage: label\n#| input: pool\n#| overlap: 2..3\n#| batch: 2\n"
        "labeler = ChoiceLabeler(items, choices=['good', 'bad'])\nlabeler",
        "#| stage: report\n#| show: true\nprint(sorted(labeler.labels.items()), len(labeler.ties))",
    )

    @gen_test
    async def test_a_tied_item_goes_to_a_third_labeler_before_the_pool_closes(self):
        await self.advance()
        alice, bob, carol = await self.labeler(), await self.labeler(), await self.labeler()
        for person, first in ((alice, "good"), (bob, "bad")):
            status, batch = await person.get_json("/api/v1/stages/label/batch")
            assert (batch["overlap"], batch["overlap_max"]) == (2, 3)
            labels = {'"t0"': first, '"t1"': "good"}
            assert (await person.submit("label", labels_body(labels)))[0] == 200
        await self.advance()
        assert self.staged.pipeline.status["label"].state == "labeling"
        owner = await self.owner()
        [pool] = [
            s for s in (await owner.get_json("/api/v1/dashboard"))[1]["stages"] if "progress" in s
        ]
        assert pool["progress"] == {"items": 2, "complete": 1, "labels": 4, "needed": 5}
        status, batch = await carol.get_json("/api/v1/stages/label/batch")
        assert batch["items"] == ['"t0"']  # the tied one alone
        assert (await carol.submit("label", labels_body({'"t0"': "good"})))[0] == 200
        await self.advance()
        assert self.staged.pipeline.status["label"].state == "done"
        page = await alice.open_stage("report")
        assert "[('t0', 'good'), ('t1', 'good')] 0" in html.unescape(page.html(3))
