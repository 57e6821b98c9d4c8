"""The security promises of docs/security.md, each against the real server: what a
labeler, a reviewer and a stranger are refused, how links and cookies are kept, and
what every response carries. docs/security.md maps each promise to its test here or
elsewhere, and `test_every_test_the_security_table_names_exists` keeps that map true."""

from __future__ import annotations

import contextlib
import html
import io
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import nbformat
import pytest
import tornado.web
from browser import READY, App, visit
from conftest import notebook_from
from playwright.sync_api import expect
from runtime_harness import NotebookTestCase
from staged_harness import Person, StagedTestCase
from test_browser_dashboard import WAIT_MS, label_and_submit
from test_review_app import DISAGREEING, REPORT, ReviewCase, pool
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.testing import AsyncHTTPSTestCase, gen_test
from tornado.websocket import websocket_connect

from freezer.cli import main
from runtime.app import handlers
from runtime.host import frontends
from runtime.server import HEADERS
from runtime.store.database import OWNER

ROOT = Path(__file__).resolve().parents[1]
HOSTILE = "<img src=x onerror=alert(1)>"
SCRIPT = "<script>alert(2)</script>"
START = (
    "import ipywidgets as widgets\nfrom freezer.widgets import ChoiceLabeler\n"
    f"items = {{f't{{i}}': f'text {{i}} {SCRIPT}' for i in range(6)}}"
)
# An each stage after the pool: not open to anyone until the pool has closed.
AFTER = "#| stage: after\n#| input: each\nafter = widgets.Text(str(len(labeler.labels)))\nafter"
SMALL_POOL = (
    "#| stage: label\n#| input: pool\n#| batch: 2\n"
    "labeler = ChoiceLabeler(items, choices=['good', 'bad'])\nlabeler"
)
EACH = (
    "import ipywidgets as widgets",
    "#| stage: name\n#| input: each\nname = widgets.Text(value='')\nname",
    "#| stage: limit\n#| input: owner\nlimit = widgets.IntSlider(value=2, min=1, max=4)\nlimit",
)


def route_table() -> list[tuple[str, type[tornado.web.RequestHandler]]]:
    return [(pattern, handler) for pattern, handler, _ in handlers.routes(None, False)]


def paths_of(pattern: str, stage: str = "label") -> list[str]:
    """The request paths one route pattern matches, its stage name being `stage`."""
    path = pattern.replace("([^/]+)", stage).replace("\\.", ".")
    choice = re.search(r"\(([^()]+)\)", path)
    if choice is None:
        return [path]
    return [path.replace(choice.group(0), one) for one in choice.group(1).split("|")]


def answers(handler: type[tornado.web.RequestHandler], method: str) -> bool:
    return getattr(handler, method) is not getattr(tornado.web.RequestHandler, method)


def owner_only(handler: type[tornado.web.RequestHandler]) -> bool:
    return issubclass(handler, handlers._OwnerApi) or handler in (
        handlers.OwnerPage,
        handlers.PipelineApi,
    )


def secured(response) -> bool:
    return all(response.headers.get(name) == value for name, value in HEADERS.items())


def cookie_attributes(response, name: str) -> list[str]:
    """The attributes of the cookie `name` that a response sets, lowercased."""
    for header in response.headers.get_list("Set-Cookie"):
        if header.startswith(f"{name}="):
            return [part.strip().lower() for part in header.split(";")[1:]]
    raise AssertionError(f"no {name} cookie in {response.headers.get_list('Set-Cookie')}")


async def socket(case, person: Person | None, path: str, origin: str | None = None):
    headers = person._headers() if person else {}
    if origin is not None:
        headers["Origin"] = origin
    url = case.get_url(path).replace("http", "ws", 1)
    return await websocket_connect(HTTPRequest(url, headers=headers))


class TestWhoReachesWhat(ReviewCase):
    cells = (START, pool("disagreement"), REPORT, AFTER)

    @gen_test
    async def test_a_labeler_reviewer_or_stranger_reaches_no_owner_page_api_or_export(self):
        await self.advance()
        alice, rita, stranger = await self.labeler(), await self.reviewer(), Person(self)
        owner = await self.owner()
        people = len(self.store.users())
        owners = [(p, h) for p, h in route_table() if owner_only(h)]
        assert len(owners) >= 10, owners  # the table is read, not a list kept by hand
        for pattern, handler in owners:
            for path in paths_of(pattern):
                for method in ("get", "post"):
                    if not answers(handler, method):
                        continue
                    body = json.dumps({"name": "mallory", "item": '"t0"'})
                    kwargs = {"method": "POST", "body": body} if method == "post" else {}
                    for person, refused in ((alice, 403), (rita, 403), (stranger, None)):
                        response = await person.fetch(path, **kwargs)
                        expected = refused or (401 if path.startswith("/api/") else 403)
                        assert response.code == expected, (path, method, response.code)
                        assert b"thawed" not in response.body and b"t0," not in response.body
        assert len(self.store.users()) == people  # no invite was made, none revoked
        for path in ("/owner", "/api/v1/dashboard", "/api/v1/stages/label/labels.csv"):
            assert (await owner.fetch(path)).code == 200, path  # the routes are there
        for stage in ("label", "after"):
            with pytest.raises(HTTPClientError) as refused:
                await socket(self, rita, f"/api/v1/ws?stage={stage}")
            assert refused.value.code == 403

    @gen_test
    async def test_item_text_and_labeler_names_holding_html_are_shown_as_text(self):
        people = await self.label(DISAGREEING)
        assert (await people["bob"].fetch_json("/api/v1/me", {"name": HOSTILE}))[0] == 200
        rita = await self.reviewer(SCRIPT)
        body = (await rita.fetch("/review/label")).body.decode()
        assert body.count("<tr") >= 3  # every labeler's answer is there
        assert html.escape(HOSTILE) in body and HOSTILE not in body
        assert html.escape(SCRIPT) in body and SCRIPT not in body
        welcome = (await rita.fetch("/welcome")).body.decode()
        assert html.escape(SCRIPT) in welcome and SCRIPT not in welcome


class TestLeases(StagedTestCase):
    cells = (START, SMALL_POOL, AFTER)

    @gen_test
    async def test_a_label_for_an_item_not_leased_or_a_stage_not_open_is_refused(self):
        await self.advance()
        alice, bob = await self.labeler(), await self.labeler()
        mine = (await alice.get_json("/api/v1/stages/label/batch"))[1]["items"]
        theirs = dict.fromkeys(mine, "good")
        status, reply = await bob.submit("label", {"__labels__": theirs})
        assert status == 400 and "not in your batch" in reply["error"]
        page = await bob.open_stage("label")
        submit = {"type": "submit", "request_id": "s1", "labels": theirs, "ahead": mine}
        await page.ws.write_message(json.dumps(submit))
        [reply] = (await page.until(lambda m: m["type"] in ("submitted", "submit_error")))[-1:]
        assert reply["type"] == "submit_error" and "not in your batch" in reply["message"]
        status, reply = await alice.submit("after", {"": {"value": "7"}})
        assert status == 409 and "not open yet" in reply["error"]
        with pytest.raises(HTTPClientError) as refused:
            await socket(self, alice, "/api/v1/ws?stage=after")
        assert refused.value.code == 409
        assert self.store.answers((await alice.get_json("/api/v1/stages"))[1]["user"]["id"]) == {}
        with self.store.engine.connect() as connection:
            labels = connection.exec_driver_sql("SELECT count(*) FROM annotations").scalar()
        assert labels == 0


class TestOwnSession(StagedTestCase):
    cells = EACH

    @gen_test
    async def test_a_labeler_reads_and_changes_only_their_own_session_answers_and_socket(self):
        await self.advance()
        alice, bob = await self.labeler(), await self.labeler()
        alice_page = await alice.open_stage("name")
        await alice_page.set(alice_page.model("TextModel"), value="alice's secret")
        assert (await alice.submit("name"))[0] == 200
        bob_page = await bob.open_stage("name")
        assert bob_page.model("TextModel", value="")  # a session of his own
        await bob_page.set(bob_page.model("TextModel"), value="bob")
        assert (await bob.get_json("/api/v1/stages/name"))[1]["answer"] is None
        assert b"secret" not in (await bob.fetch("/stage/name")).body
        assert (await bob.submit("name"))[0] == 200
        status, mine = await alice.get_json("/api/v1/stages/name")
        assert mine["answer"][""]["value"] == "alice's secret"
        alice_id = (await alice.get_json("/api/v1/stages"))[1]["user"]["id"]
        forged = tornado.web.create_signed_value("another secret", "nbfreeze_user", str(alice_id))
        for cookie in (str(alice_id), forged.decode()):
            bob.cookies["nbfreeze_user"] = cookie
            status, reply = await bob.get_json("/api/v1/stages/name")
            assert status == 401 and "invite link" in reply["error"]
            with pytest.raises(HTTPClientError) as refused:
                await socket(self, bob, "/api/v1/ws?stage=name")
            assert refused.value.code == 403

    @gen_test
    async def test_a_page_sends_widget_values_and_labels_and_nothing_else(self):
        await self.advance()
        alice = await self.labeler()
        page = await alice.open_stage("name")
        text = page.model("TextModel")
        for state in (
            {"_model_module": "https://evil.example/x.js"},
            {"_view_name": "EvilView"},
            {"value": ["not", "text"]},
        ):
            answer = await page.set(text, **state)
            assert [m for m in answer if m["type"] == "reply_error"], state
        for frame in (
            {"type": "execute_request", "code": "open('/tmp/x', 'w')"},
            {
                "type": "comm_open",
                "comm_id": "mine",
                "target_name": "jupyter.widget",
                "data": {"state": {"_model_name": "EvilModel", "_model_module": "evil"}},
            },
        ):
            await page.ws.write_message(json.dumps(frame | {"msg_id": "m"}))
            [reply] = (await page.until(lambda m: m["type"] == "reply_error"))[-1:]
            assert reply["message"], frame
        assert page.models[text]["_model_module"] == "@jupyter-widgets/controls"
        status, reply = await alice.submit("name", {"": {"_model_module": "evil"}})
        assert status == 400
        assert self.store.answers((await alice.get_json("/api/v1/stages"))[1]["user"]["id"]) == {}


class TestFilesOutsideTheAssets(StagedTestCase):
    cells = EACH

    def setUp(self) -> None:
        super().setUp()
        # A widget library installed where Jupyter looks, whose directories hold links
        # out of them, and a secret beside them.
        root = self.tmp / "jupyter"
        self.secret = self.tmp / "secret.txt"
        self.secret.write_text("the owner's secret")
        lab = root / "labextensions" / "linked-widget"
        (lab / "static").mkdir(parents=True)
        (lab / "static" / "remoteEntry.0123456789abcdef.js").write_text("var _JUPYTERLAB;")
        (lab / "static" / "leak.js").symlink_to(self.secret)
        (lab / "static" / "up").symlink_to(self.tmp, target_is_directory=True)
        load = "static/remoteEntry.0123456789abcdef.js"
        manifest = {
            "name": "linked-widget",
            "version": "1.0.0",
            "jupyterlab": {"_build": {"load": load}},
        }
        (lab / "package.json").write_text(json.dumps(manifest))
        nb = root / "nbextensions" / "linked-widget"
        nb.mkdir(parents=True)
        (nb / "index.js").write_text("define([], {});")
        (nb / "leak.js").symlink_to(self.secret)
        self._path = os.environ.get("JUPYTER_PATH")
        os.environ["JUPYTER_PATH"] = str(root)

    def tearDown(self) -> None:
        if self._path is None:
            os.environ.pop("JUPYTER_PATH")
        else:
            os.environ["JUPYTER_PATH"] = self._path
        super().tearDown()

    @gen_test
    async def test_no_file_outside_the_apps_assets_is_served(self):
        await self.advance()
        alice = await self.labeler()
        assert "linked-widget" in frontends.installed().labextensions
        served = (
            "/static/page.js",
            "/labextensions/linked-widget/static/remoteEntry.0123456789abcdef.js",
            "/nbextensions/linked-widget/index.js",
        )
        for path in served:
            assert (await alice.fetch(path)).code == 200, path  # what is there is served
        secret = str(self.secret)
        for path in (
            "/static/../server.py",
            "/static/..%2Fserver.py",
            "/static/%2e%2e/server.py",
            "/static/%2E%2E%2F%2E%2E%2Fpyproject.toml",
            "/static/..%5Cserver.py",
            f"/static/{secret}",
            f"/static/%2F{secret.lstrip('/')}",
            "/static//etc/passwd",
            "/labextensions/linked-widget/static/leak.js",
            "/labextensions/linked-widget/static/up/secret.txt",
            "/labextensions/linked-widget/static/..%2Fpackage.json",
            "/labextensions/linked-widget/static/%2e%2e/package.json",
            f"/labextensions/linked-widget/static/{secret}",
            "/nbextensions/linked-widget/leak.js",
            "/nbextensions/linked-widget/%2e%2e/%2e%2e/%2e%2e/secret.txt",
        ):
            response = await alice.fetch(path)
            assert response.code in (403, 404), (path, response.code)
            assert b"secret" not in response.body and b"import" not in response.body, path
            assert secured(response), path


class TestErrorLog(StagedTestCase):
    """Tornado's own line for an uncaught exception prints the whole request, its address
    with the token; ours leaves the token out. A handler of the app's own base class that
    fails stands for any bug."""

    cells = EACH

    def get_app(self):
        from runtime.app.handlers import _Handler

        class Failing(_Handler):
            async def get(self) -> None:
                raise RuntimeError("a bug")

        app = super().get_app()
        given = {"staged": app.settings["staged"], "open_access": False}
        app.add_handlers(r".*", [(r"/failing", Failing, given)])
        return app

    @gen_test
    async def test_an_unexpected_error_is_logged_without_the_links_token(self):
        with self.assertLogs(level="ERROR") as logged:
            response = await Person(self).fetch("/failing?token=secret-token-value")
        assert response.code == 500
        lines = "\n".join(record.getMessage() for record in logged.records)
        assert "Uncaught exception GET /failing?token=…" in lines
        assert "secret-token-value" not in lines + "\n".join(
            str(record.exc_info) for record in logged.records
        )


class TestLinks(StagedTestCase):
    cells = EACH

    @gen_test
    async def test_a_link_token_never_reaches_the_log_or_a_referer(self):
        await self.advance()
        owner = await self.owner()
        status, made = await owner.fetch_json("/api/v1/invites", {"name": "alice"})
        personal = made["link"].rsplit("token=", 1)[1]
        with self.assertLogs(level="DEBUG") as logged:
            for token in (self.owner_token, self.invite_token, personal, "guessed-token"):
                person = Person(self)
                response = await person.fetch(f"/?token={token}")
                assert response.code in (302, 403)
                assert token not in response.headers.get("Location", "")
                assert response.headers["Referrer-Policy"] == "no-referrer"
                if response.code == 302:
                    page = await person.fetch(response.headers["Location"])
                    assert page.code in (200, 302) and token.encode() not in page.body
                    assert page.headers["Referrer-Policy"] == "no-referrer"
        lines = "\n".join(record.getMessage() for record in logged.records)
        assert "/?token=" in lines  # the requests are logged, their tokens not
        for token in (self.owner_token, self.invite_token, personal, "guessed-token"):
            assert token not in lines

    @gen_test
    async def test_every_kind_of_link_can_be_revoked(self):
        await self.advance()
        owner = await self.owner()
        status, made = await owner.fetch_json("/api/v1/invites", {"name": "alice"})
        personal = made["link"].rsplit("token=", 1)[1]
        status, reply = await owner.fetch_json("/api/v1/invites/revoke", {"name": "alice"})
        assert (status, reply["revoked"]) == (200, 1)
        said = io.StringIO()
        with contextlib.redirect_stdout(said):
            command = ["invite", str(self.bundle_dir), "--revoke-links", "--db", self.db_url]
            assert main(command) == 0
        assert "revoked 2 links" in said.getvalue()
        for token in (personal, self.owner_token, self.invite_token):
            response = await Person(self).fetch(f"/?token={token}")
            assert response.code == 403 and b"revoked" in response.body
        assert (await owner.get_json("/api/v1/dashboard"))[0] == 200  # already in: stays in
        fresh = self.store.mint_token(OWNER, self.store.owner().id)  # as the next serve does
        assert (await Person(self).fetch(f"/?token={fresh}")).code == 302

    @gen_test
    async def test_the_cookie_is_signed_http_only_and_same_site(self):
        response = await Person(self).fetch(f"/?token={self.invite_token}")
        [cookie] = [c for c in response.headers.get_list("Set-Cookie") if "nbfreeze_user" in c]
        assert cookie.startswith('nbfreeze_user="2|')  # tornado's signed value, version 2
        attributes = cookie_attributes(response, "nbfreeze_user")
        assert "httponly" in attributes and "samesite=lax" in attributes
        assert "secure" not in attributes  # plain http: a Secure cookie would not come back
        assert "samesite=strict" in cookie_attributes(response, "_xsrf")

    @gen_test
    async def test_every_state_changing_request_needs_the_xsrf_token(self):
        await self.advance()
        owner = await self.owner()
        posts = [(p, h) for p, h in route_table() if answers(h, "post")]
        assert len(posts) >= 6, posts
        people = len(self.store.users())
        for pattern, _ in posts:
            for path in paths_of(pattern, "name"):
                for xsrf in ("", "2|00|00|00"):
                    response = await self.post_with(owner, path, xsrf)
                    assert response.code == 403, (path, response.code)
                    assert "XSRF" in json.loads(response.body)["error"], path
        assert len(self.store.users()) == people
        assert self.store.answers(self.store.owner().id) == {}

    async def post_with(self, person: Person, path: str, xsrf: str):
        """A POST with the person's cookies and `xsrf` (not their token) as its header."""
        headers = person._headers() | {"X-XSRFToken": xsrf}
        body = json.dumps({"request_id": "x", "name": "mallory", "state": {}})
        request = HTTPRequest(self.get_url(path), method="POST", headers=headers, body=body)
        return await self.http_client.fetch(request, raise_error=False)

    @gen_test
    async def test_a_socket_from_another_origin_is_refused(self):
        await self.advance()
        alice = await self.labeler()
        for origin in (
            "http://evil.example",
            "null",
            f"http://127.0.0.1.evil.example:{self.get_http_port()}",
        ):
            with pytest.raises(HTTPClientError) as refused:
                await socket(self, alice, "/api/v1/ws?stage=name", origin)
            assert refused.value.code == 403, origin
        same = await socket(self, alice, "/api/v1/ws?stage=name", self.get_url("").rstrip("/"))
        same.close()

    @gen_test
    async def test_every_route_answers_with_the_security_headers_and_no_framing(self):
        await self.advance()
        owner, alice = await self.owner(), await self.labeler()
        for pattern, _ in route_table():
            for path in paths_of(pattern, "name"):
                for person in (owner, alice, Person(self)):
                    if person is owner and path == "/api/v1/thawed.ipynb":
                        continue  # a thaw runs the notebook; the others are refused it
                    response = await person.fetch(path)
                    assert secured(response), (path, response.code)
                    policy = response.headers["Content-Security-Policy"]
                    assert "frame-ancestors 'none'" in policy, path


class TestOverTls(StagedTestCase, AsyncHTTPSTestCase):
    cells = EACH

    @gen_test
    async def test_cookies_are_secure_over_tls(self):
        assert self.get_url("/").startswith("https://")
        response = await Person(self).fetch(f"/?token={self.invite_token}")
        assert response.code == 302
        assert "secure" in cookie_attributes(response, "nbfreeze_user")
        assert "secure" in cookie_attributes(response, "_xsrf")


class TestVisitorApp(NotebookTestCase):
    cells = ("import ipywidgets\nipywidgets.IntSlider()",)
    open_access = False
    tokens = {"owner": "owner-secret-token", "visitor": "visitor-secret-token"}

    async def enter(self, token: str) -> str:
        request = HTTPRequest(self.get_url(f"/?token={token}"), follow_redirects=False)
        response = await self.http_client.fetch(request, raise_error=False)
        assert response.code == 302 and token not in response.headers["Location"]
        assert response.headers["Referrer-Policy"] == "no-referrer"
        return response.headers["Set-Cookie"].split(";", 1)[0]

    @gen_test
    async def test_a_link_token_never_reaches_the_log_or_a_referer(self):
        with self.assertLogs(level="DEBUG") as logged:
            for token in self.tokens.values():
                await self.enter(token)
            request = HTTPRequest(self.get_url("/?token=guessed"), follow_redirects=False)
            assert (await self.http_client.fetch(request, raise_error=False)).code == 403
        lines = "\n".join(record.getMessage() for record in logged.records)
        assert "/?token=" in lines
        for token in (*self.tokens.values(), "guessed"):
            assert f"token={token}" not in lines

    @gen_test
    async def test_a_socket_from_another_origin_is_refused(self):
        cookie = await self.enter("visitor-secret-token")
        url = self.get_url("/api/v1/ws").replace("http", "ws", 1)
        headers = {"Cookie": cookie, "Origin": "http://evil.example"}
        with pytest.raises(HTTPClientError) as refused:
            await websocket_connect(HTTPRequest(url, headers=headers))
        assert refused.value.code == 403
        same = {"Cookie": cookie, "Origin": self.get_url("").rstrip("/")}
        (await websocket_connect(HTTPRequest(url, headers=same))).close()


class TestVisitorAppOverTls(NotebookTestCase, AsyncHTTPSTestCase):
    cells = ("1 + 1",)

    @gen_test
    async def test_cookies_are_secure_over_tls(self):
        response = await self.http_client.fetch(self.get_url("/"))
        attributes = cookie_attributes(response, "nbfreeze_visitor")
        assert {"secure", "httponly", "samesite=strict"} <= set(attributes)


def security_table() -> list[tuple[str, str]]:
    """The (promise, test) rows of docs/security.md's table of promises."""
    text = (ROOT / "docs" / "security.md").read_text()
    section = text.split("## What is promised, and the test that proves it", 1)[1]
    section = section.split("\n## ", 1)[0]
    rows = re.findall(r"^\| (.+?) \| (`tests/.+?`) \|$", section, re.M)
    return [(promise, test) for promise, cell in rows for test in re.findall(r"`([^`]+)`", cell)]


def test_every_test_the_security_table_names_exists():
    rows = security_table()
    assert len(rows) >= 20, rows
    for promise, test in rows:
        path, _, name = test.partition("::")
        source = (ROOT / path).read_text()
        *classes, function = name.split("::")
        for one in classes:
            assert re.search(rf"^class {one}\b", source, re.M), (
                f"{promise}: no class {one} in {path}"
            )
        assert re.search(rf"^\s*(async )?def {function}\(", source, re.M), (
            f"{promise}: docs/security.md names {test}, which does not exist"
        )


@pytest.fixture
def hostile_app(tmp_path: Path) -> Iterator[App]:
    notebook = tmp_path / "hostile.ipynb"
    cells = (START, pool("disagreement").replace("overlap: 3", "overlap: 2").replace("6\n", "3\n"))
    nbformat.write(notebook_from(cells), notebook)
    served = App(notebook)
    yield served
    served.stop()


def test_labeler_names_holding_html_are_shown_as_text_on_the_dashboard(browser, hostile_app):
    owner = visit(browser, hostile_app.owner)
    dialogs: list[str] = []
    owner.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    for name in (HOSTILE, SCRIPT):
        page = visit(browser, hostile_app.invite, name)
        page.wait_for_url("**/stage/label")
        page.wait_for_function(READY, timeout=WAIT_MS)
        label_and_submit(page, ["good", "bad", "good"])
    owner.goto(urlsplit(hostile_app.owner)._replace(path="/owner", query="").geturl())
    rows = owner.locator("#nbf-labelers tbody tr")
    expect(rows).to_have_count(2, timeout=WAIT_MS)
    expect(rows.filter(has_text=HOSTILE)).to_have_count(1)
    expect(rows.filter(has_text=SCRIPT)).to_have_count(1)
    assert owner.locator("img[src='x']").count() == 0
    assert owner.locator("#nbf-labelers script").count() == 0
    assert dialogs == []
