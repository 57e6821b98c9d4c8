"""An app served under a root path (`--root-path /labels/`) lives there whole: its links,
scripts, redirects, API answers, downloads, cookies and invite links all stay under it;
and the `X-Forwarded-*` headers count only from a trusted proxy's address."""

from __future__ import annotations

import json
import re

import pytest
from runtime_harness import NotebookTestCase, Page
from staged_harness import Person, StagedTestCase
from tornado.httpclient import HTTPRequest
from tornado.testing import gen_test
from tornado.websocket import websocket_connect

from runtime import bundle, forwarded
from runtime.server import ServeOptions, make_staged_app
from runtime.store.database import LABELER, OWNER, open_store
from runtime.urls import root_path, under

POOL = (
    "from freezer.widgets import ChoiceLabeler\nitems = {i: f'item {i}' for i in range(4)}",
    "#| stage: label\n#| input: pool\n#| batch: 2\n"
    "labeler = ChoiceLabeler(items, choices=['a', 'b'], render=str)\nlabeler",
    "#| stage: after\n#| show: true\nprint(len(labeler.labels))",
)
# Every address a page names: href, src, content (the socket's meta) and data-next.
ADDRESSES = re.compile(r'(?:href|src|content|data-next)="(/[^"]*)"')


class Proxied(Person):
    """A person whose requests may carry more headers (as a proxy adds them)."""

    async def fetch(self, path: str, headers: dict[str, str] | None = None, **kwargs):
        request = HTTPRequest(
            self.case.get_url(path),
            headers=self._headers() | (headers or {}),
            follow_redirects=False,
            **kwargs,
        )
        response = await self.case.http_client.fetch(request, raise_error=False)
        self._remember(response)
        return response


class RootedCase(StagedTestCase):
    """The pool app served under /labels/, trusting the proxies in `trusted`."""

    cells = POOL
    trusted: tuple[str, ...] = ()

    def make(self):
        self.store = open_store(self.db_url)
        options = ServeOptions(root_path="/labels/", trusted_proxies=self.trusted)
        app = make_staged_app(
            bundle.load(self.bundle_dir), self.store, self.bundle_dir / "cache", options
        )
        self.owner_token = self.store.mint_token(OWNER, self.store.owner().id)
        self.invite_token = self.store.mint_token(LABELER)
        return app

    async def person(self, token: str, **headers: str) -> tuple[Proxied, str]:
        person = Proxied(self)
        entered = await person.fetch(f"/labels/?token={token}", headers=headers)
        assert entered.code == 302, entered.code
        self.entered_at = entered.headers["Location"]
        return person, "\n".join(entered.headers.get_list("Set-Cookie"))

    async def page(self, person: Proxied, path: str) -> str:
        response = await person.fetch(path)
        assert response.code == 200, (path, response.code)
        return response.body.decode()


class TestUnderTheRoot(RootedCase):
    @gen_test(timeout=60)
    async def test_a_labeler_walks_the_pool_with_every_address_under_the_root(self):
        await self.advance()
        alice, cookies = await self.person(self.invite_token)
        assert re.search(r"nbfreeze_user=[^;]+;.*Path=/labels/", cookies), cookies
        assert "_xsrf" not in cookies or "Path=/labels/" in cookies
        assert self.entered_at == "/labels/welcome"  # the token leaves the address bar
        assert (await alice.fetch("/labels/")).headers["Location"] == "/labels/stage/label"
        page = await self.page(alice, "/labels/welcome")
        assert 'data-next="/labels/stage/label"' in page
        stage = await self.page(alice, "/labels/stage/label")
        for address in ADDRESSES.findall(stage) + ADDRESSES.findall(page):
            assert address.startswith("/labels/"), address
            if "/static/" in address:  # the scripts and styles are there
                assert (await alice.fetch(address)).code == 200, address
        assert 'content="/labels/api/v1/ws?stage=label"' in stage
        status, stages = await alice.get_json("/labels/api/v1/stages")
        assert status == 200 and stages["next"] == "/labels/stage/label"
        assert [s["url"] for s in stages["stages"]] == [
            "/labels/stage/label",
            "/labels/stage/after",
        ]
        status, batch = await alice.get_json("/labels/api/v1/stages/label/batch")
        assert status == 200, batch
        response = await alice.fetch(
            "/labels/api/v1/stages/label/submit",
            method="POST",
            body=json.dumps({"request_id": "r1", "labels": dict.fromkeys(batch["items"], "a")}),
        )
        assert response.code == 200, response.body
        assert json.loads(response.body)["next"] == "/labels/stage/label"  # the next batch

    @gen_test(timeout=60)
    async def test_the_owners_links_downloads_and_invites_are_under_the_root(self):
        await self.advance()
        owner, _ = await self.person(self.owner_token)
        overview = await self.page(owner, "/labels/owner")
        downloads = re.findall(r'href="([^"]*labels\.csv)"', overview)
        assert downloads == ["/labels/api/v1/stages/label/labels.csv"]
        assert (await owner.fetch(downloads[0])).code == 200
        assert 'href="/labels/api/v1/thawed.ipynb"' in overview
        _, made = await owner.fetch_json("/labels/api/v1/invites", {"name": "bob"})
        link = made["link"]
        assert re.fullmatch(rf"http://127\.0\.0\.1:{self.get_http_port()}/labels/\?token=\S+", link)
        bob, _ = await self.person(link.split("token=")[1])
        status, me = await bob.get_json("/labels/api/v1/stages")
        assert status == 200, me

    @gen_test(timeout=60)
    async def test_outside_the_root_there_is_nothing_and_the_bare_root_redirects(self):
        alice, _ = await self.person(self.invite_token)
        bare = await alice.fetch("/labels")
        assert bare.code == 301 and bare.headers["Location"] == "/labels/"
        assert (await alice.fetch("/api/v1/stages")).code == 404
        assert (await alice.fetch("/stage/label")).code == 404
        status, missing = await alice.get_json("/labels/api/v1/nothing")
        assert status == 404 and "/labels/api/v1/nothing" in missing["error"]


class TestUntrustedProxy(RootedCase):
    trusted = ("10.0.0.0/8",)  # the test's client, 127.0.0.1, is not one

    @gen_test(timeout=60)
    async def test_forwarded_headers_from_anyone_else_change_nothing(self):
        forged = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example.org"}
        owner, cookies = await self.person(self.owner_token, **forged)
        assert "Secure" not in cookies
        response = await owner.fetch(
            "/labels/api/v1/invites", method="POST", body='{"name": "bob"}', headers=forged
        )
        assert json.loads(response.body)["link"].startswith("http://127.0.0.1:")


class TestTrustedProxy(RootedCase):
    trusted = ("127.0.0.1",)

    @gen_test(timeout=60)
    async def test_a_trusted_proxys_https_makes_the_cookies_secure_and_the_links_https(self):
        told = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "labels.example.org"}
        owner, cookies = await self.person(self.owner_token, **told)
        assert re.search(r"^nbfreeze_user=.*; Secure$", cookies, re.M), cookies
        assert re.search(r"^_xsrf=.*; Secure$", cookies, re.M), cookies
        response = await owner.fetch(
            "/labels/api/v1/invites", method="POST", body='{"name": "bob"}', headers=told
        )
        link = json.loads(response.body)["link"]
        assert link.startswith("https://labels.example.org/labels/?token=")


class TestVisitorApp(NotebookTestCase):
    """A notebook without input stages, a page per visitor, under the root too."""

    cells = ("import ipywidgets\nipywidgets.IntSlider(value=7)",)
    open_access = False
    tokens = {"owner": "owner-secret", "visitor": "invite-secret"}
    serve_options = {"root_path": "/labels/"}

    @gen_test(timeout=60)
    async def test_the_page_its_files_and_its_socket_are_under_the_root(self):
        entered = await self.http_client.fetch(
            HTTPRequest(self.get_url("/labels/?token=invite-secret"), follow_redirects=False),
            raise_error=False,
        )
        assert entered.code == 302 and entered.headers["Location"] == "/labels/"
        cookie = entered.headers["Set-Cookie"].split(";", 1)[0]
        page = await self.http_client.fetch(
            HTTPRequest(self.get_url("/labels/"), headers={"Cookie": cookie})
        )
        addresses = ADDRESSES.findall(page.body.decode())
        assert addresses and all(a.startswith("/labels/static/") for a in addresses), addresses
        socket = await websocket_connect(
            HTTPRequest(
                self.get_url("/labels/api/v1/ws").replace("http", "ws", 1),
                headers={"Cookie": cookie},
            )
        )
        shown = Page(socket, 0)
        await shown.until_idle()
        assert any(m.get("value") == 7 for m in shown.models.values())
        socket.close()


def test_root_paths_are_normalised_and_bad_ones_named():
    assert root_path("labels") == root_path("/labels/") == "/labels/"
    assert root_path("/") == root_path("") == "/"
    assert root_path("/team/labels") == "/team/labels/"
    for bad in ("/a b/", "/../", "/lab?x", "/l%41bels/"):
        with pytest.raises(ValueError, match="is not a root path"):
            root_path(bad)
    assert under("/labels/", "/stage/x") == "/labels/stage/x"
    assert under("/labels/", "/labels/stage/x") == "/labels/stage/x"
    assert under("/labels/", "https://example.org/") == "https://example.org/"
    assert under("/", "/owner") == "/owner"


def test_a_proxy_address_must_be_an_address_or_a_network():
    assert str(forwarded.network("10.1.2.3/8")) == "10.0.0.0/8"
    with pytest.raises(ValueError, match="is not a proxy's address"):
        forwarded.network("nginx.local")
    with pytest.raises(ValueError, match="is not a proxy's address"):
        ServeOptions(trusted_proxies=("nginx.local",))
