"""The ipywidgets documentation notebooks are served: widgets, or clear messages."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from peers import PEERS
from runtime_harness import Page
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port
from tornado.websocket import websocket_connect

from freezer.bundle import BuildError, build_bundle
from runtime import bundle
from runtime.server import ServeOptions, make_app

NOTEBOOKS = sorted(p.name for p in PEERS.glob("*.ipynb")) if PEERS.is_dir() else []
SERVER_MESSAGES = {
    "comm_open", "comm_msg", "comm_close", "output", "clear_output",
    "cell_error", "status", "unsupported",
}  # fmt: skip


async def first_page(bundle_dir: Path) -> Page:
    app = make_app(bundle.load(bundle_dir), ServeOptions(open_access=True))
    sock, port = bind_unused_port()
    server = HTTPServer(app)
    server.add_sockets([sock])
    try:
        response = await AsyncHTTPClient().fetch(f"http://127.0.0.1:{port}/")
        cookie = response.headers["Set-Cookie"].split(";", 1)[0]
        request = HTTPRequest(f"ws://127.0.0.1:{port}/api/v1/ws", headers={"Cookie": cookie})
        page = Page(await websocket_connect(request), 0)
        await page.until_idle()
        page.ws.close()
        for session in app.settings["sessions"]:
            await app.settings["sessions"].close(session)
        return page
    finally:
        server.stop()
        app.settings["sessions"].shutdown()


@pytest.mark.skipif(not NOTEBOOKS, reason=f"no peer notebooks in {PEERS}")
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_a_peer_notebook_runs_with_widgets_or_clear_messages(name, tmp_path, monkeypatch):
    try:
        bundle_dir = build_bundle(PEERS / name, tmp_path / "bundle")
    except BuildError as error:
        reasons = "; ".join(d.message for d in error.graph.diagnostics if d.severity == "error")
        pytest.skip(f"the compiler refuses {name}: {reasons}")
    monkeypatch.chdir(PEERS)  # the notebooks read their images relative to themselves
    page = asyncio.run(first_page(bundle_dir))

    assert {m["type"] for m in page.messages} <= SERVER_MESSAGES
    for message in page.messages:
        if message["type"] == "cell_error":
            assert re.match(rf"{re.escape(name)}, cell \d+, line \d+: \w+", message["message"])
        if message["type"] == "unsupported":
            assert message["class_name"] in message["message"]
    opened = {m["comm_id"] for m in page.messages if m["type"] == "comm_open"}
    shown = {m["widget"] for m in page.messages if m["type"] == "output" and "widget" in m}
    assert shown and shown <= opened
