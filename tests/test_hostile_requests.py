"""Malformed and hostile requests get a clear 4xx (or a `reply_error`), never a 500, and
every response, refusals and unknown routes included, carries the security headers."""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import logging
import os
import socket
import struct

from runtime_harness import NotebookTestCase
from staged_harness import StagedTestCase
from tornado.testing import gen_test

from runtime.server import HEADERS

NESTED = "[" * 1000 + "]" * 1000
LONE_SURROGATE = '"\\ud800"'  # valid JSON, but no UTF-8 text: a database cannot store it
CELLS = (
    "import ipywidgets as widgets\nfrom freezer.widgets import ChoiceLabeler",
    "#| stage: name\n#| input: each\nname = widgets.Text(value='')\nname",
    "#| stage: label\n#| input: pool\n#| batch: 2\n"
    "labeler = ChoiceLabeler(['a', 'b', 'c'], choices=['yes', 'no'])\nlabeler",
    "#| stage: after\n#| show: true\nprint(labeler.labels)",
)


def secured(response) -> bool:
    return all(response.headers.get(name) == value for name, value in HEADERS.items())


def nested_frame() -> str:
    return '{"type": "comm_msg", "comm_id": "x", "data": ' + NESTED + "}"


class TestStagedAppRefusals(StagedTestCase):
    cells = CELLS

    async def owner_and_labeler(self):
        await self.advance()
        return await self.owner(), await self.labeler()

    @gen_test
    async def test_a_path_with_a_null_byte_is_refused_not_a_server_error(self):
        _, alice = await self.owner_and_labeler()
        for path in ("/static/%00", "/static/a%00b.js", "/stage/%00", "/api/v1/stages/%00"):
            response = await alice.fetch(path)
            assert 400 <= response.code < 500, (path, response.code)
            assert secured(response), path

    @gen_test
    async def test_deeply_nested_json_bodies_are_400s(self):
        owner, alice = await self.owner_and_labeler()
        for person, path in (
            (alice, "/api/v1/stages/name/submit"),
            (alice, "/api/v1/stages/label/submit"),
            (owner, "/api/v1/invites"),
            (owner, "/api/v1/invites/revoke"),
        ):
            response = await person.fetch(path, method="POST", body=NESTED)
            assert response.code == 400, (path, response.code)
            assert "error" in json.loads(response.body)

    @gen_test
    async def test_text_that_is_not_unicode_is_a_400_and_nothing_is_saved(self):
        owner, alice = await self.owner_and_labeler()
        bodies = [
            ("/api/v1/stages/name/submit", f'{{"request_id": {LONE_SURROGATE}}}'),
            ("/api/v1/stages/label/submit", f'{{"request_id": {LONE_SURROGATE}, "labels": {{}}}}'),
            (
                "/api/v1/stages/label/submit",
                f'{{"request_id": "r", "labels": {{{LONE_SURROGATE}: "yes"}}}}',
            ),
            (
                "/api/v1/stages/name/submit",
                f'{{"request_id": "r", "state": {{"": {{"value": {LONE_SURROGATE}}}}}}}',
            ),
        ]
        for path, body in bodies:
            response = await alice.fetch(path, method="POST", body=body)
            assert response.code == 400, (body, response.code)
            assert "Unicode" in json.loads(response.body)["error"]
        for path in ("/api/v1/invites", "/api/v1/invites/revoke"):
            body = f'{{"name": {LONE_SURROGATE}}}'
            response = await owner.fetch(path, method="POST", body=body)
            assert response.code == 400, (path, response.code)
        assert self.store.answers(self.store.users()[-1].id) == {}

    @gen_test
    async def test_a_deeply_nested_frame_on_a_stage_socket_gets_a_reply_error(self):
        _, alice = await self.owner_and_labeler()
        page = await alice.open_stage("name")
        await page.ws.write_message(nested_frame())
        [reply] = [m for m in await page.until(lambda m: m["type"] == "reply_error")][-1:]
        assert "JSON" in reply["message"]
        submit = json.dumps({"type": "submit", "request_id": "x" + NESTED})
        await page.ws.write_message(submit)
        await page.until(lambda m: m["type"] == "reply_error")
        text = page.model("TextModel")
        await page.set(text, value="Alice")
        assert (await alice.submit("name"))[0] == 200

    @gen_test
    async def test_a_draft_that_does_not_fit_is_refused_and_changes_nothing(self):
        _, alice = await self.owner_and_labeler()
        page = await alice.open_stage("name")
        junk = (
            [1, 2],
            {"answer": {"": {"value": 7}}},
            {"answer": {"9": {"value": "x"}}},
            {"answer": {"": {"_model_name": "ButtonModel"}}},
            {"labels": {"0": "yes"}},
        )
        for draft in junk:
            await page.ws.write_message(json.dumps({"type": "draft", "draft": draft}))
            read = await page.until(lambda m: m["type"] in ("draft_refused", "draft_restored"))
            assert read[-1]["type"] == "draft_refused", draft
        await page.ws.write_message(
            json.dumps({"type": "draft", "draft": {"answer": {"": {"value": "Bo"}}}})
        )
        await page.until(lambda m: m["type"] == "draft_restored")
        assert (await alice.submit("name"))[0] == 200
        assert self.store.answers(self.store.users()[-1].id)["name"][""]["value"] == "Bo"

    @gen_test
    async def test_every_route_and_every_unknown_one_answers_with_the_security_headers(self):
        owner, alice = await self.owner_and_labeler()
        paths = [
            "/",
            "/stage/name",
            "/stage/nope",
            "/waiting",
            "/done",
            "/owner",
            "/api/v1/stages",
            "/api/v1/stages/name",
            "/api/v1/stages/label/batch",
            "/api/v1/pipeline",
            "/api/v1/dashboard",
            "/api/v1/stages/label/labels.csv",
            "/api/v1/ws",
            "/static/page.js",
            "/static/missing.js",
            "/nope",
            "/api/v1/nope",
            "/favicon.ico",
        ]
        for person in (owner, alice):
            for path in paths:
                response = await person.fetch(path)
                assert secured(response), (path, response.code)
        for path in ("/nope", "/api/v1/nope"):
            response = await alice.fetch(path)
            assert response.code == 404
        assert "error" in json.loads((await alice.fetch("/api/v1/nope")).body)
        response = await alice.fetch("/done", method="POST", body="{}")
        assert secured(response) and 400 <= response.code < 500


class TestWidgetHostRefusals(NotebookTestCase):
    cells = ("import ipywidgets\nipywidgets.IntSlider()",)

    @gen_test
    async def test_null_bytes_and_unknown_routes_are_4xx_with_the_security_headers(self):
        for path in ("/static/%00", "/nope", "/api/v1/nope"):
            response = await self.http_client.fetch(self.get_url(path), raise_error=False)
            assert 400 <= response.code < 500, (path, response.code)
            assert secured(response), path

    @gen_test
    async def test_a_deeply_nested_frame_gets_a_reply_error_and_the_page_goes_on(self):
        page = await self.open_page()
        await page.ws.write_message(nested_frame())
        [reply] = (await page.until(lambda m: m["type"] == "reply_error"))[-1:]
        assert "JSON" in reply["message"]
        slider = page.model("IntSliderModel")
        await page.set(slider, value=3)
        assert page.models[slider]["value"] == 3

    @gen_test
    async def test_a_frame_with_text_that_is_not_unicode_gets_a_reply_error(self):
        page = await self.open_page()
        slider = page.model("IntSliderModel")
        frame = (
            '{"type": "comm_msg", "comm_id": "' + slider + '", "data": {"method": "update", '
            '"state": {"description": ' + LONE_SURROGATE + '}, "buffer_paths": []}}'
        )
        await page.ws.write_message(frame)
        [reply] = (await page.until(lambda m: m["type"] == "reply_error"))[-1:]
        assert "Unicode" in reply["message"]


class TestClosedPage(StagedTestCase):
    cells = (
        "import ipywidgets as widgets",
        "#| stage: many\n#| input: each\n"
        "answer = widgets.VBox([widgets.Label(str(i) * 500) for i in range(5000)])\nanswer",
    )

    @gen_test
    async def test_a_page_closed_while_its_session_sends_leaves_the_log_quiet(self):
        await self.advance()
        alice = await self.labeler()
        with self.assertLogs(level="DEBUG") as logged:
            stalled = await stalled_socket(self.get_http_port(), alice, "/api/v1/ws?stage=many")
            await asyncio.sleep(1.0)  # the server writes; this page reads nothing
            stalled.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            stalled.close()  # gone without a closing handshake: a killed tab, a lost network
            while self.staged.live:
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.2)
            gc.collect()  # an unretrieved future's exception is logged when it is collected
            logging.getLogger("nbfreeze.test").debug("done")
        noisy = [r for r in logged.records if r.levelno >= logging.WARNING]
        assert noisy == [], [r.getMessage()[:200] for r in noisy[:3]]


async def stalled_socket(port: int, person, path: str) -> socket.socket:
    """A WebSocket connected by hand, with a tiny receive buffer, that never reads."""
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect(("127.0.0.1", port))
    cookie = "; ".join(f"{k}={v}" for k, v in person.cookies.items())
    key = base64.b64encode(os.urandom(16)).decode()
    raw.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\nCookie: {cookie}\r\n\r\n"
        ).encode()
    )
    raw.setblocking(False)
    loop = asyncio.get_running_loop()
    head = b""
    while b"\r\n\r\n" not in head:
        head += await loop.sock_recv(raw, 1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return raw


class TestErrorPages(StagedTestCase):
    cells = CELLS

    @gen_test
    async def test_error_pages_are_the_apps_own_with_a_way_back_and_there_is_a_favicon(self):
        _, alice = await self.owner_and_labeler()
        for path, status, words in (
            ("/owner", 403, b"Only the owner"),
            ("/nope", 404, b"nothing at this address"),
        ):
            response = await alice.fetch(path)
            assert response.code == status
            assert b'class="nbf-app"' in response.body and words in response.body, path
        response = await alice.fetch("/owner")
        assert b'href="/"' in response.body and b"Back to where you are" in response.body
        response = await alice.fetch("/favicon.ico")
        assert response.code == 200 and response.body[:4] == b"\x00\x00\x01\x00"  # an icon
        assert (await alice.fetch("/static/favicon.svg")).code == 200

    async def owner_and_labeler(self):
        await self.advance()
        return await self.owner(), await self.labeler()
