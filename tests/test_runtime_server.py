"""The HTTP side: the page shell, static files, invite links, cookies, headers."""

from __future__ import annotations

import base64
import gzip
import hashlib
import re

import pytest
from runtime_harness import NotebookTestCase
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.testing import gen_test
from tornado.websocket import websocket_connect

from runtime.frontend import STATIC
from runtime.host import render
from runtime.server import CSP, ServeOptions

CELLS = ("md:# Labels\nPick the *right* ones.", "import ipywidgets\nipywidgets.IntSlider()")


class TestPage(NotebookTestCase):
    cells = CELLS

    @gen_test
    async def test_the_page_is_markdown_and_one_container_per_code_cell(self):
        response = await self.http_client.fetch(self.get_url("/"))
        body = response.body.decode()
        assert "<title>notebook</title>" in body
        assert "<em>right</em>" in body
        assert '<div class="nbf-cell" data-cell="2"></div>' in body
        for asset in ("widgets.css", "page.css", "page.js"):
            assert re.search(rf'/static/{asset}\?v=[0-9a-f]+"', body)

    @gen_test
    async def test_the_page_fetches_every_module_of_its_first_widget_at_once(self):
        # The browser would find each import only after parsing the module above it;
        # the page starts the socket on its own and preloads the bundle and its chunks.
        body = (await self.http_client.fetch(self.get_url("/"))).body.decode()
        entry = (await self.http_client.fetch(self.get_url("/static/widgets.js"))).body.decode()
        imported = set(re.findall(r'from\s*"\./([\w.-]+\.js)"', entry))
        assert imported  # the bundle is split: widgets.js imports its shared chunk
        preloaded = set(re.findall(r'<link rel="modulepreload" href="/static/([\w.-]+)">', body))
        assert imported | {"widgets.js"} <= preloaded
        # The socket opens during parsing, before the style sheets hold up scripts.
        assert body.index("new WebSocket(") < body.index('rel="stylesheet"')
        assert body.index("modulepreload") < body.index("page.js")

    @gen_test
    async def test_the_inline_script_that_opens_the_socket_is_allowed_by_the_csp(self):
        response = await self.http_client.fetch(self.get_url("/"))
        [script] = re.findall(r"<script>(.*?)</script>", response.body.decode(), re.S)
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in response.headers["Content-Security-Policy"]
        assert (
            "unsafe-inline"
            not in response.headers["Content-Security-Policy"]
            .split("script-src", 1)[1]
            .split(";", 1)[0]
        )

    @gen_test
    async def test_every_response_has_a_content_security_policy(self):
        for path in ("/", "/static/page.js", "/static/missing.js"):
            response = await self.http_client.fetch(self.get_url(path), raise_error=False)
            assert response.headers["Content-Security-Policy"] == CSP
            assert response.headers["X-Content-Type-Options"] == "nosniff"

    @gen_test
    async def test_the_session_cookie_is_signed_and_http_only(self):
        response = await self.http_client.fetch(self.get_url("/"))
        cookie = response.headers["Set-Cookie"]
        assert cookie.startswith("nbfreeze_visitor=2|")  # tornado's signed value, version 2
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie

    @gen_test
    async def test_static_files_are_compressed_and_cached_when_versioned(self):
        page = (await self.http_client.fetch(self.get_url("/"))).body.decode()
        versioned = re.search(r"/static/widgets.css\?v=[0-9a-f]+", page).group(0)
        request = HTTPRequest(
            self.get_url(versioned), headers={"Accept-Encoding": "gzip"}, decompress_response=False
        )
        response = await self.http_client.fetch(request)
        assert response.headers["Content-Encoding"] == "gzip"
        assert "max-age=315360000" in response.headers["Cache-Control"]
        assert "Accept-Encoding" in response.headers["Vary"]
        original = (STATIC / "widgets.css").read_bytes()
        assert gzip.decompress(response.body) == original
        again = await self.http_client.fetch(request)  # kept compressed: the same bytes
        assert again.body == response.body
        plain = HTTPRequest(self.get_url(versioned), decompress_response=False)
        identity = await self.http_client.fetch(plain)
        assert "Content-Encoding" not in identity.headers and identity.body == original

    @gen_test
    async def test_a_socket_without_the_cookie_is_refused(self):
        url = self.get_url("/api/v1/ws").replace("http", "ws", 1)
        try:
            await websocket_connect(url)
        except HTTPClientError as error:
            assert error.code == 403
        else:
            raise AssertionError("connected without a cookie")
        assert len(self.sessions) == 0


class TestLongPage(NotebookTestCase):
    # A long notebook: its first screen, then the rest, which the page shows once its
    # first widget is drawn.
    cells = (
        *(f"md:## Part {n}\n" + "Some words about this part. " * 40 for n in range(1, 9)),
        "import ipywidgets\nipywidgets.IntSlider()",
        "md:## The end",
    )

    @gen_test
    async def test_the_page_holds_everything_after_its_first_screen_hidden(self):
        body = (await self.http_client.fetch(self.get_url("/"))).body.decode()
        first, rest = body.split('<div class="nbf-rest" hidden>')
        assert "Part 1" in first and "Part 8" not in first
        assert "Part 8" in rest and '<div class="nbf-cell" data-cell="9"></div>' in rest
        assert "The end" in rest

    @gen_test
    async def test_a_short_page_hides_nothing(self):
        body = render.page_html("short", [(1, "<p>short</p>"), (2, "")], lambda path: path)
        assert 'class="nbf-rest"' not in body
        assert '<div class="nbf-cell" data-cell="2"></div>' in body


class TestInvites(NotebookTestCase):
    cells = CELLS
    open_access = False
    tokens = {"owner": "owner-secret", "visitor": "invite-secret"}

    async def fetch(self, path: str, cookie: str = ""):
        request = HTTPRequest(
            self.get_url(path), headers={"Cookie": cookie}, follow_redirects=False
        )
        return await self.http_client.fetch(request, raise_error=False)

    @gen_test
    async def test_without_an_invite_the_page_is_refused(self):
        assert (await self.fetch("/")).code == 403
        assert (await self.fetch("/?token=guessed")).code == 403

    @gen_test
    async def test_an_invite_link_gives_a_cookie_and_drops_the_token_from_the_url(self):
        for token in ("invite-secret", "owner-secret"):
            response = await self.fetch(f"/?token={token}")
            assert response.code == 302 and response.headers["Location"] == "/"
            cookie = response.headers["Set-Cookie"].split(";", 1)[0]
            assert (await self.fetch("/", cookie)).code == 200

    @gen_test
    async def test_a_forged_cookie_is_refused(self):
        assert (await self.fetch("/", "nbfreeze_visitor=owner:1234")).code == 403


class TestFrames(NotebookTestCase):
    # Text and binary frames of every length encoding (7-bit, 16-bit and 64-bit sizes),
    # sent in one burst, as the server writes a burst of frames at once.
    cells = (
        "import ipywidgets\n"
        "texts = [ipywidgets.Text(value='t' * n) for n in (10, 300, 70_000)]\n"
        "images = [ipywidgets.Image(value=bytes(range(256)) * n) for n in (1, 4, 300)]\n"
        "ipywidgets.VBox(texts + images)",
    )

    @gen_test
    async def test_a_burst_of_frames_of_every_size_arrives_whole_and_in_order(self):
        page = await self.open_page()
        for n in (10, 300, 70_000):
            assert page.model("TextModel", value="t" * n)
        sizes = sorted(len(b[0]) for b in page.buffers.values())
        assert sizes == [256, 1024, 76_800]
        assert [m["type"] for m in page.messages][-2:] == ["output", "status"]
        assert all(
            bytes(b[0]) == bytes(range(256)) * (len(b[0]) // 256) for b in page.buffers.values()
        )


def directives(policy: str) -> dict[str, list[str]]:
    return {d.split()[0]: d.split()[1:] for d in policy.split("; ")}


class TestPolicy(NotebookTestCase):
    cells = CELLS

    @gen_test
    async def test_by_default_no_script_is_evaluated_from_text_and_nothing_is_framed(self):
        response = await self.http_client.fetch(self.get_url("/"))
        policy = directives(response.headers["Content-Security-Policy"])
        assert "'unsafe-eval'" not in policy["script-src"]
        assert policy["frame-src"] == ["'none'"]
        assert policy["frame-ancestors"] == ["'none'"]


class TestLoosenedPolicy(NotebookTestCase):
    cells = CELLS
    serve_options = {"allow_eval": True, "allow_frames": ("https://www.youtube.com",)}

    @gen_test
    async def test_the_serve_options_open_eval_and_the_frames_they_name_and_nothing_else(self):
        for path in ("/", "/static/page.js"):
            response = await self.http_client.fetch(self.get_url(path))
            policy = directives(response.headers["Content-Security-Policy"])
            assert policy["script-src"][-1] == "'unsafe-eval'"
            assert policy["frame-src"] == ["https://www.youtube.com"]
            default = directives(CSP)
            changed = {k for k in default if policy[k] != default[k]}
            assert changed == {"script-src", "frame-src"}


@pytest.mark.parametrize(
    "origin",
    ["https://a.example; script-src *", "*", "'unsafe-inline'", "javascript:", "https://a b", ""],
)
def test_a_frame_origin_that_is_not_one_origin_is_refused(origin):
    with pytest.raises(ValueError, match="origin"):
        ServeOptions(allow_frames=(origin,))
