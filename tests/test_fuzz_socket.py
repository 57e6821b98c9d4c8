"""The widget WebSocket, fuzzed: malformed, binary, oversized, out-of-order and replayed
frames, and comm messages for another labeler's models, answered with a `reply_error` or
a clean close, never a traceback; the session lives on and nothing saved changes but by
an accepted submit of the sender's own."""

from __future__ import annotations

import json

import pytest
from fuzz_live import live_app
from fuzz_socket import Page, fuzz_socket

from runtime.server import MAX_FRAME_BYTES
from runtime.store.database import LABELER


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_fuzzed_frames_are_refused_clearly_and_the_pages_live_on(database, request):
    url = request.getfixturevalue("postgres_database") if database == "postgresql" else None
    with live_app(url) as app:
        figures = fuzz_socket(app, 150, start=2, oversized_frames=1)
        assert app.errors.lines() == []
    assert figures.cases == 151
    assert figures.refused > 50
    assert figures.closed[1006] + figures.closed[1009] == 1  # the oversized frame's


def test_a_frame_under_the_documented_limit_reaches_a_staged_page():
    # The staged app took tornado's 10 MiB default and dropped the connection of a page
    # that sent a bigger file through a FileUpload; its limit is MAX_FRAME_BYTES.
    with live_app() as app:
        page = Page(app, app.enter(LABELER, "ada"), "name")
        page.send("x" * (MAX_FRAME_BYTES - 1024))
        read, closed = page.probe()
        page.close()
    assert closed is None
    assert any("not JSON" in m.get("message", "") for m in read)


def test_a_submit_holding_a_nul_is_refused_on_postgresql_and_the_page_lives_on(request):
    # The page's submit reached PostgreSQL, which refused the NUL: an uncaught exception.
    with live_app(request.getfixturevalue("postgres_database")) as app:
        page = Page(app, app.enter(LABELER, "ada"), "label")
        before = app.snapshot()
        page.send(json.dumps({"type": "submit", "request_id": "r\x00"}))
        read, closed = page.probe()
        page.close()
        assert app.snapshot() == before
        assert app.errors.lines() == []
    assert closed is None
    assert [m for m in read if m["type"] == "submit_error" and "NUL" in m["message"]]
