"""A page's Submit while the database is away is sent again by the page itself, and
saved once when the database is back: real Chromium against the real `nbfreeze serve`
on SQLite, its write lock held by another process for as long as the test wants. And
nginx's 502 page, as it answers a POST whose process died behind it: a POST safe to
repeat is sent again, another says in words that the server is not answering."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from browser import READY, App, visit
from conftest import notebook_from
from playwright.sync_api import expect
from sqlalchemy import create_engine, text
from test_unavailable import sqlite_locked

TIMEOUT_MS = 60_000
CELLS = (
    "from freezer.widgets import Classify",
    "#| stage: sort\n#| input: pool\n#| batch: 4\n"
    "sorter = Classify([f'note {i}' for i in range(8)], ['good', 'bad'], per_page=4)\nsorter",
)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    notebook = tmp_path / "faults.ipynb"
    nbformat.write(notebook_from(CELLS), notebook)
    served = App(notebook, "--db", f"sqlite:///{tmp_path / 'app.sqlite'}")
    yield served
    served.stop()


def test_a_submit_while_the_database_is_locked_is_retried_by_the_page_and_saved_once(
    browser, app, tmp_path
):
    page = visit(browser, app.invite)
    page.wait_for_url("**/stage/sort", timeout=TIMEOUT_MS)
    page.wait_for_function(READY, timeout=TIMEOUT_MS)
    for number in range(4):
        page.get_by_role("button", name="good").nth(number).click()
    status = page.locator(".nbf-submit-status")
    with sqlite_locked(tmp_path / "app.sqlite"):
        page.get_by_role("button", name="Submit").click()
        expect(status).to_contain_text("Not saved yet", timeout=TIMEOUT_MS)
        expect(status).to_contain_text("Trying again")
    expect(status).to_have_text("Saved. Here is your next batch.", timeout=TIMEOUT_MS)
    engine = create_engine(f"sqlite:///{tmp_path / 'app.sqlite'}")
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT item_key, label FROM annotations WHERE stage = 'sort'")
        ).all()
    engine.dispose()
    assert sorted(label for _, label in rows) == ["good"] * 4


NGINX_502 = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"


def test_a_name_answered_by_nginxs_502_is_sent_again_and_the_labeler_goes_on(
    browser, app, tmp_path
):
    page = browser.new_context().new_page()
    calls: list[str] = []

    def gateway_once(route):
        calls.append(route.request.method)
        if len(calls) == 1:  # its process died with the request: nginx answers
            route.fulfill(status=502, content_type="text/html", body=NGINX_502)
        else:
            route.continue_()

    page.route("**/api/v1/me", gateway_once)
    page.goto(app.invite)
    page.get_by_label("Your name").fill("erin")
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url("**/stage/sort", timeout=TIMEOUT_MS)
    assert calls == ["POST", "POST"]
    engine = create_engine(f"sqlite:///{tmp_path / 'app.sqlite'}")
    with engine.connect() as connection:
        names = connection.execute(text("SELECT name FROM users")).scalars().all()
    engine.dispose()
    assert "erin" in names


def test_an_invite_answered_by_nginxs_502_is_not_made_twice_and_says_why_in_words(browser, app):
    page = visit(browser, app.owner)
    page.goto(app.owner.split("?", 1)[0] + "owner")
    calls: list[str] = []

    def gateway(route):
        calls.append(route.request.method)
        route.fulfill(status=502, content_type="text/html", body=NGINX_502)

    page.route("**/api/v1/invites", gateway)
    page.locator("#nbf-invite-name").fill("frank")
    page.get_by_role("button", name="Make their link", exact=True).click()
    result = page.locator("#nbf-invite-result")
    expect(result).to_have_text("the server is not answering just now: try again in a moment")
    page.wait_for_timeout(1500)  # a repeat would have been sent by now
    assert calls == ["POST"]
