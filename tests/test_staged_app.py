"""The staged app as labelers and the owner use it, driven through the JSON API."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

from runtime_harness import notebook_bundle
from staged_harness import StagedTestCase
from tornado.testing import gen_test

from runtime.server import log_request

STAR_MODULE = "nbfreeze_star_module"

CELLS = (
    "import ipywidgets as widgets\nitems = ['a', 'b', 'c', 'd']",
    "md:What is your name?",
    "#| stage: name\n#| input: each\nname = widgets.Text(value='')\nname",
    "#| stage: greet\n#| show: true\nprint(f'hello {name.value}')",
    "#| stage: limit\n#| input: owner\nlimit = widgets.IntSlider(value=2, min=1, max=4)\nlimit",
    "#| stage: cut\nkept = items[: limit.value]\nprint(f'{len(kept)} kept')",
    "#| stage: review\n#| input: each\nchoice = widgets.Dropdown(options=kept)\nchoice",
    "#| stage: summary\n#| show: true\nprint(f'{name.value} picked {choice.value}')",
)


class TestWalk(StagedTestCase):
    cells = CELLS

    @gen_test
    async def test_labeler_starts_on_the_first_each_stage(self):
        await self.advance()
        alice = await self.labeler()
        status, data = await alice.get_json("/api/v1/stages")
        assert status == 200 and data["next"] == "/stage/name"
        states = {s["name"]: s["state"] for s in data["stages"]}
        assert states == {
            "name": "open",
            "greet": "waiting",
            "review": "waiting",
            "summary": "waiting",
        }

    @gen_test
    async def test_submitting_leads_to_the_next_page_and_user_stages_see_the_answer(self):
        await self.advance()
        alice = await self.labeler()
        status, reply = await alice.submit("name", {"": {"value": "Alice"}})
        assert (status, reply["next"]) == (200, "/stage/greet")
        page = await alice.open_stage("greet")
        assert "hello Alice" in page.html(4)

    @gen_test
    async def test_labelers_are_isolated(self):
        await self.advance()
        alice, bob = await self.labeler(), await self.labeler()
        await alice.submit("name", {"": {"value": "Alice"}})
        await bob.submit("name", {"": {"value": "Bob"}})
        assert "hello Bob" in (await bob.open_stage("greet")).html(4)
        assert "hello Alice" in (await alice.open_stage("greet")).html(4)

    @gen_test
    async def test_stages_after_an_owner_stage_wait_for_the_owner(self):
        await self.advance()
        alice = await self.labeler()
        await alice.submit("name", {"": {"value": "Alice"}})
        await alice.submit("greet")
        status, data = await alice.get_json("/api/v1/stages")
        assert data["next"] == "/waiting"
        review = next(s for s in data["stages"] if s["name"] == "review")
        assert review["state"] == "waiting" and "owner" in review["reason"]
        owner = await self.owner()
        assert (await owner.get_json("/api/v1/stages"))[1]["next"] == "/stage/limit"
        status, reply = await owner.submit("limit", {"": {"value": 3}})
        assert status == 200
        await self.advance()
        status, data = await alice.get_json("/api/v1/stages")
        assert data["next"] == "/stage/review"
        page = await alice.open_stage("review")
        dropdown = page.model("DropdownModel")
        assert page.models[dropdown]["_options_labels"] == ["a", "b", "c"]

    @gen_test
    async def test_a_page_submission_takes_the_widgets_live_value(self):
        await self.advance()
        alice = await self.labeler()
        page = await alice.open_stage("name")
        await page.set(page.model("TextModel"), value="Carol")
        status, reply = await alice.submit("name")
        assert status == 200
        assert self.store.answers(await user_id(alice))["name"][""]["value"] == "Carol"

    @gen_test
    async def test_going_back_and_resubmitting_recomputes_what_depends_on_it(self):
        await self.advance()
        alice = await self.labeler()
        await alice.submit("name", {"": {"value": "Alice"}})
        await alice.submit("greet")
        status, _ = await alice.submit("name", {"": {"value": "Alicia"}})
        assert status == 200
        assert "hello Alicia" in (await alice.open_stage("greet")).html(4)

    @gen_test
    async def test_a_retried_submission_is_applied_once(self):
        await self.advance()
        alice = await self.labeler()
        first = await alice.submit("name", {"": {"value": "A"}}, request_id="same")
        second = await alice.submit("name", {"": {"value": "B"}}, request_id="same")
        assert first[0] == second[0] == 200
        answers = self.store.answers(await user_id(alice))
        assert answers["name"][""]["value"] == "A"


class TestPages(StagedTestCase):
    cells = CELLS

    @gen_test
    async def test_a_stage_page_has_its_title_instructions_and_a_submit_button(self):
        await self.advance()
        alice = await self.labeler()
        assert await alice.enter() == "/stage/name"
        response = await alice.fetch("/stage/name")
        html = response.body.decode()
        assert response.code == 200
        assert "<h1>Name</h1>" in html and "What is your name?" in html
        assert '<button type="submit">Submit</button>' in html
        assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")

    @gen_test
    async def test_an_answered_page_says_so_and_a_show_page_has_continue(self):
        await self.advance()
        alice = await self.labeler()
        await alice.submit("name", {"": {"value": "Al"}})
        assert "You answered this" in (await alice.fetch("/stage/name")).body.decode()
        assert "Continue</button>" in (await alice.fetch("/stage/greet")).body.decode()

    @gen_test
    async def test_waiting_done_and_owner_pages(self):
        await self.advance()
        alice = await self.labeler()
        await alice.submit("name", {"": {"value": "Al"}})
        await alice.submit("greet")
        waiting = (await alice.fetch("/waiting")).body.decode()
        assert "Please wait" in waiting and "Review" in waiting
        owner = await self.owner()
        page = (await owner.fetch("/owner")).body.decode()
        assert "Limit" in page
        status, dashboard = await owner.get_json("/api/v1/dashboard")
        assert status == 200 and [p["answers"] for p in dashboard["labelers"]] == [2]
        await owner.submit("limit", {"": {"value": 1}})
        await self.advance()
        await alice.submit("review", {"": {"index": 0}})
        await alice.submit("summary")
        assert await alice.enter() == "/done"
        assert "You are done" in (await alice.fetch("/done")).body.decode()


class TestRefusals(StagedTestCase):
    cells = CELLS

    @gen_test
    async def test_a_value_the_widget_refuses_is_a_400_and_nothing_is_saved(self):
        await self.advance()
        owner = await self.owner()
        status, reply = await owner.submit("limit", {"": {"value": "lots"}})
        assert status == 400 and "IntSlider" in reply["error"]
        status, reply = await owner.submit("limit", {"": {"_model_module": "evil"}})
        assert status == 400
        assert self.store.answers(self.store.owner().id) == {}

    @gen_test
    async def test_a_labeler_cannot_reach_owner_pages_or_stages(self):
        await self.advance()
        alice = await self.labeler()
        assert (await alice.submit("limit", {"": {"value": 3}}))[0] == 404
        assert (await alice.fetch("/owner")).code == 403
        assert (await alice.get_json("/api/v1/pipeline"))[0] == 403

    @gen_test
    async def test_a_stage_that_is_not_open_is_refused(self):
        await self.advance()
        alice = await self.labeler()
        status, reply = await alice.submit("review", {"": {"value": "a"}})
        assert status == 409 and "not open yet" in reply["error"]

    @gen_test
    async def test_without_a_session_the_api_refuses(self):
        status, reply = await Person_without_cookies(self).get_json("/api/v1/stages")
        assert status == 401 and "invite link" in reply["error"]

    @gen_test
    async def test_a_bad_invite_token_is_refused(self):
        stranger = Person_without_cookies(self)
        response = await stranger.fetch("/?token=nope")
        assert response.code == 403 and b"not valid" in response.body

    @gen_test
    async def test_the_access_log_has_refusals_as_warnings_and_answers_only_at_debug(self):
        labeler = await self.labeler()
        with self.assertLogs("tornado.access", level="DEBUG") as logged:
            await labeler.get_json("/api/v1/stages")
            await Person_without_cookies(self).fetch("/?token=nope")
        levels = {record.getMessage().split()[0]: record.levelname for record in logged.records}
        assert levels["200"] == "DEBUG" and levels["403"] == "WARNING"

    def test_a_server_failure_is_logged_as_an_error(self):
        failed = SimpleNamespace(
            get_status=lambda: 500,
            request=SimpleNamespace(
                request_time=lambda: 0.01, method="GET", uri="/owner", remote_ip="127.0.0.1"
            ),
        )
        with self.assertLogs("tornado.access", level="DEBUG") as logged:
            log_request(failed)
        [record] = logged.records
        assert record.levelname == "ERROR" and "500 GET /owner" in record.getMessage()

    @gen_test
    async def test_a_post_without_the_xsrf_token_is_refused(self):
        await self.advance()
        alice = await self.labeler()
        alice.cookies.pop("_xsrf")
        status, reply = await alice.submit("name", {"": {"value": "x"}})
        assert status == 403
        assert self.store.answers(await user_id(alice)) == {}

    @gen_test
    async def test_malformed_bodies_are_400s(self):
        await self.advance()
        alice = await self.labeler()
        for body in (b"not json", b"[1]", b'{"request_id": 5}', b'{"request_id": "x", "state": 3}'):
            response = await alice.fetch("/api/v1/stages/name/submit", method="POST", body=body)
            assert response.code == 400, body

    @gen_test
    async def test_a_forged_cookie_lets_nobody_in(self):
        alice = await self.labeler()
        alice.cookies["nbfreeze_user"] = "1|forged"
        assert (await alice.get_json("/api/v1/stages"))[0] == 401


class TestErrors(StagedTestCase):
    cells = (
        "x = 1",
        "#| stage: broken\ny = x / 0",
        "#| stage: ask\n#| input: each\nimport ipywidgets as w\ns = w.IntSlider()\ns",
        "#| stage: after\n#| show: true\nprint(y)",
    )

    @gen_test
    async def test_a_failing_stage_shows_the_owner_its_traceback_and_labelers_wait(self):
        await self.advance()
        owner = await self.owner()
        status, data = await owner.get_json("/api/v1/pipeline")
        broken = data["stages"]["broken"]
        assert broken["state"] == "failed"
        assert "cell 2, line 2" in broken["reason"] and "ZeroDivisionError" in broken["error"]
        alice = await self.labeler()
        status, data = await alice.get_json("/api/v1/stages")
        assert data["next"] == "/stage/ask"
        assert "traceback" not in str(data).lower()


class TestRestart(StagedTestCase):
    cells = CELLS

    @gen_test
    async def test_a_restart_reuses_the_cache_and_puts_everyone_back(self):
        await self.advance()
        alice = await self.labeler()
        await alice.submit("name", {"": {"value": "Alice"}})
        owner = await self.owner()
        await owner.submit("limit", {"": {"value": 4}})
        await self.advance()
        await self.staged.shutdown()
        self._app = self.make()
        self.http_server.request_callback = self._app
        await self.advance()
        statuses = self.staged.pipeline.status
        assert statuses["start"].cached and statuses["cut"].cached
        status, data = await alice.get_json("/api/v1/stages")
        assert status == 200 and data["next"] == "/stage/greet"
        assert "hello Alice" in (await alice.open_stage("greet")).html(4)
        page = await alice.open_stage("review")
        assert page.models[page.model("DropdownModel")]["_options_labels"] == ["a", "b", "c", "d"]


class TestWalkOnPostgres(TestWalk):
    database = "postgresql"


class TestRestartOnPostgres(TestRestart):
    database = "postgresql"


def Person_without_cookies(case):  # noqa: N802 - reads as a constructor
    from staged_harness import Person

    return Person(case)


async def user_id(person) -> int:
    return (await person.get_json("/api/v1/stages"))[1]["user"]["id"]


class TestCache(StagedTestCase):
    cells = (
        "import ipywidgets as widgets\nbase = list(range(5))",
        "#| stage: double\ndoubled = [2 * x for x in base]",
        "#| stage: total\ntotal = sum(doubled)\nprint(total)",
        "#| stage: ask\n#| input: each\nw = widgets.IntSlider(value=total)\nw",
    )

    @gen_test
    async def test_a_changed_cell_recomputes_that_stage_and_what_follows_only(self):
        await self.advance()
        await self.staged.shutdown()
        changed = list(self.cells)
        changed[2] = "#| stage: total\ntotal = sum(doubled) + 1\nprint(total)"
        self.bundle_dir = notebook_bundle(self.tmp, tuple(changed))
        self._app = self.make()
        await self.advance()
        status = self.staged.pipeline.status
        assert status["start"].cached and status["double"].cached
        assert not status["total"].cached
        assert self.staged.pipeline.namespace["total"] == 21


class TestStarImport(StagedTestCase):
    """`from m import *` of a module the check could not import (it is installed only
    where the app is served): its names reach the later stages, after a restart too,
    when the star import's stage comes from the cache."""

    listed = False  # can the check import the module (and list its names)?
    cells = (
        f"from {STAR_MODULE} import *\nbase = list(range(LIMIT))",
        "#| stage: cut\nsmall = [x for x in base if x < LIMIT - 1]",
        "#| stage: ask\n#| input: each\nimport ipywidgets as w\ns = w.IntSlider(value=LIMIT)\ns",
    )

    def get_app(self):
        self.site = Path(tempfile.mkdtemp())
        # A lock cannot be pickled: the stage is cached because the module's own objects
        # are imported again, not pickled.
        (self.site / f"{STAR_MODULE}.py").write_text(
            "import threading\nLIMIT = 4\nlock = threading.Lock()\n"
        )
        if self.listed:
            sys.path.insert(0, str(self.site))
        return super().get_app()

    def make(self):
        if str(self.site) not in sys.path:  # after the build: the check could not import it
            sys.path.insert(0, str(self.site))
        return super().make()

    def tearDown(self):
        super().tearDown()
        sys.path.remove(str(self.site))
        sys.modules.pop(STAR_MODULE, None)
        shutil.rmtree(self.site)

    @gen_test
    async def test_star_imported_names_reach_later_stages_and_survive_a_restart(self):
        manifest = json.loads((self.bundle_dir / "manifest.json").read_text())
        assert ("LIMIT" in manifest["stages"][0]["defines"]) == self.listed
        await self.advance()
        assert self.staged.pipeline.namespace["small"] == [0, 1, 2]
        await self.staged.shutdown()
        self._app = self.make()
        self.http_server.request_callback = self._app
        await self.advance()
        status = self.staged.pipeline.status
        assert status["start"].cached and status["cut"].cached
        assert self.staged.pipeline.namespace["LIMIT"] == 4
        alice = await self.labeler()
        page = await alice.open_stage("ask")
        assert page.models[page.model("IntSliderModel")]["value"] == 4


class TestStarImportListed(TestStarImport):
    """The same notebook where the check could import the module and list its names."""

    listed = True


class TestTimeLimit(StagedTestCase):
    cells = (
        "import time\nx = 1",
        "#| stage: slow\ntime.sleep(2)\ny = 2",
        "#| stage: ask\n#| input: each\nimport ipywidgets as w\ns = w.IntSlider()\ns",
    )
    stage_timeout = 0.2

    @gen_test(timeout=30)
    async def test_a_stage_that_runs_too_long_is_reported_failed(self):
        await self.advance()
        slow = self.staged.pipeline.status["slow"]
        assert slow.state == "failed" and "longer than 0.2 s" in slow.reason


class TestSocketRefusals(StagedTestCase):
    cells = CELLS

    @gen_test
    async def test_a_labeler_cannot_open_the_owners_stage_socket(self):
        await self.advance()
        alice = await self.labeler()
        for stage in ("limit", "review", "nope"):
            try:
                await alice.open_stage(stage)
            except Exception as error:  # the handshake is refused
                assert "404" in str(error) or "409" in str(error)
            else:
                raise AssertionError(f"{stage} opened for a labeler")


class TestCacheOfDefinitions(StagedTestCase):
    cells = (
        "import threading\nimport ipywidgets as widgets\nscale = 3",
        "#| stage: define\n"
        "def blend(x):\n    return scale * x\n\n"
        "class Box:\n    def __init__(self, v):\n        self.v = v\n\n"
        "boxed = Box(blend(2))",
        "#| stage: lock\nguard = threading.Lock()\nnumber = 7",
        "#| stage: ask\n#| input: each\nw = widgets.IntSlider(value=boxed.v + number)\nw",
    )

    @gen_test
    async def test_functions_and_classes_of_the_notebook_are_cached_and_a_blocker_is_named(self):
        lines: list[str] = []
        self.staged.pipeline.progress = lines.append
        await self.advance()
        assert any("lock" in line and "'guard'" in line and "not cached" in line for line in lines)
        await self.staged.shutdown()
        self._app = self.make()
        await self.advance()
        status = self.staged.pipeline.status
        assert status["define"].cached and not status["lock"].cached
        namespace = self.staged.pipeline.namespace
        assert namespace["blend"](5) == 15 and namespace["boxed"].v == 6
