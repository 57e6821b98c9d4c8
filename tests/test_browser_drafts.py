"""Nothing a person has not submitted is lost to a reload or a dropped connection:
real Chromium against the real `nbfreeze serve`.

The page keeps its draft in the browser's storage (runtime/static/drafts.js); the server
puts it back into the fresh widget, an `each` stage's as an answer is checked, a pool's
labels for the batch shown only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from browser import READY, App, visit
from conftest import notebook_from
from playwright.sync_api import expect

TIMEOUT_MS = 20_000
KEPT = "() => Object.keys(localStorage).some((key) => key.startsWith('nbfreeze-draft:'))"
KEPT_VALUE = (
    "(text) => Object.keys(localStorage).some((key) => key.startsWith('nbfreeze-draft:')"
    " && localStorage.getItem(key).includes(text))"
)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    cells = (
        "import ipywidgets as widgets\nfrom freezer.widgets import Classify",
        "#| stage: city\n#| input: each\ncity = widgets.Text(description='Your city')\ncity",
        "#| stage: sort\n#| input: pool\n#| overlap: 1\n#| batch: 4\n"
        "sorter = Classify([f'note {i}' for i in range(8)], ['good', 'bad'], per_page=4)\nsorter",
        "#| stage: report\n#| show: true\nprint(city.value, sorted(sorter.labels.items()))",
    )
    notebook = tmp_path / "drafts.ipynb"
    nbformat.write(notebook_from(cells), notebook)
    served = App(notebook)
    yield served
    served.stop()


def opened(page) -> None:
    page.wait_for_function(READY, timeout=TIMEOUT_MS)


def test_an_answer_not_yet_submitted_survives_a_reload_and_is_forgotten_once_submitted(
    browser, app
):
    page = visit(browser, app.invite)
    page.wait_for_url("**/stage/city")
    opened(page)
    page.get_by_label("Your city").fill("Lisbon")
    page.wait_for_function(KEPT_VALUE, arg="Lisbon", timeout=TIMEOUT_MS)

    page.reload()
    opened(page)
    expect(page.get_by_label("Your city")).to_have_value("Lisbon", timeout=TIMEOUT_MS)
    expect(page.locator(".nbf-submit-status")).to_have_text(
        "Your answers not yet submitted are back, as you left them."
    )

    page.get_by_role("button", name="Submit").click()
    page.wait_for_url("**/stage/sort", timeout=TIMEOUT_MS)
    assert not page.evaluate(KEPT), "a submitted answer is forgotten"


def test_a_pools_picks_survive_a_reload_and_a_dropped_connection(browser, app):
    page = visit(browser, app.invite)
    page.get_by_role("button", name="Submit").click()  # the city: left empty
    page.wait_for_url("**/stage/sort", timeout=TIMEOUT_MS)
    opened(page)
    page.get_by_role("button", name="good").first.click()
    page.get_by_text("1 of 4 items labeled", exact=False).wait_for()
    page.wait_for_function(KEPT_VALUE, arg="good", timeout=TIMEOUT_MS)

    page.reload()
    opened(page)
    page.get_by_text("1 of 4 items labeled", exact=False).wait_for(timeout=TIMEOUT_MS)

    page.get_by_role("button", name="bad").nth(1).click()
    page.get_by_text("2 of 4 items labeled", exact=False).wait_for()
    page.wait_for_function(KEPT_VALUE, arg="bad", timeout=TIMEOUT_MS)
    with page.expect_navigation(timeout=TIMEOUT_MS):  # the page reconnects by reloading
        page.evaluate("nbfreezeSocket.socket.close()")
    opened(page)
    page.get_by_text("2 of 4 items labeled", exact=False).wait_for(timeout=TIMEOUT_MS)


def test_a_draft_that_no_longer_fits_is_dropped_without_a_word_of_error(browser, app):
    page = visit(browser, app.invite)
    page.wait_for_url("**/stage/city")
    opened(page)
    slot = page.evaluate("document.querySelector('meta[name=\"nbf-draft\"]').content")
    stale = {"answer": {"7": {"value": "x"}}}  # a part the widget does not have
    page.evaluate(
        "([slot, draft]) => localStorage.setItem("
        "'nbfreeze-draft:' + slot, JSON.stringify({at: Date.now(), draft}))",
        [slot, stale],
    )
    page.reload()
    opened(page)
    page.wait_for_function(f"() => !({KEPT})()", timeout=TIMEOUT_MS)
    expect(page.get_by_label("Your city")).to_have_value("")
    assert not page.locator(".nbf-notice-error").count()


def test_a_labeler_sees_their_own_progress_and_what_a_partial_submit_keeps(browser, app):
    page = visit(browser, app.invite)
    page.get_by_role("button", name="Submit").click()
    page.wait_for_url("**/stage/sort", timeout=TIMEOUT_MS)
    opened(page)
    you = page.locator(".nbf-you")
    expect(you).to_have_text("You: 0 labeled, 4 left in this batch.", timeout=TIMEOUT_MS)
    for number in range(3):
        page.get_by_role("button", name="good").nth(number).click()
    expect(you).to_have_text(
        "You: 3 labeled, 1 left in this batch, under a minute.", timeout=TIMEOUT_MS
    )

    page.get_by_role("button", name="Submit").click()
    expect(page.locator(".nbf-submit-status")).to_have_text(
        "Saved. The item you left unlabeled is still yours: back in this batch.",
        timeout=TIMEOUT_MS,
    )
    # The item left unlabeled leads the next batch, which the page held ahead fills up.
    expect(page.locator(".nbfl-card").first).to_contain_text("note 3")
    expect(you).to_have_text("You: 3 labeled, 4 left in this batch, under a minute.")


def test_the_next_batch_replaces_the_last_in_the_page_without_a_page_load(browser, app):
    page = visit(browser, app.invite)
    page.get_by_role("button", name="Submit").click()
    page.wait_for_url("**/stage/sort", timeout=TIMEOUT_MS)
    opened(page)
    page.evaluate("window.nbfSamePage = true")  # gone if the browser loads a page
    first = page.get_by_text("note 0", exact=True)
    expect(first).to_be_visible()
    for number in range(4):
        page.get_by_role("button", name="good").nth(number).click()
    page.get_by_role("button", name="Submit").click()
    expect(page.locator(".nbf-submit-status")).to_have_text(
        "Saved. Here is your next batch.", timeout=TIMEOUT_MS
    )
    expect(page.get_by_text("note 4", exact=True)).to_be_visible(timeout=TIMEOUT_MS)
    expect(first).to_have_count(0)
    expect(page.locator(".nbf-you")).to_have_text(
        "You: 4 labeled, 4 left in this batch, under a minute.", timeout=TIMEOUT_MS
    )
    assert page.evaluate("window.nbfSamePage === true")

    for number in range(4):
        page.get_by_role("button", name="bad").nth(number).click()
    page.get_by_role("button", name="Submit").click()
    page.wait_for_url("**/stage/report", timeout=TIMEOUT_MS)  # nothing left: the next page
    page.get_by_text("(7, 'bad')]", exact=False).wait_for(timeout=TIMEOUT_MS)
