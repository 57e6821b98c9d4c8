"""The staged app in real Chromium: labelers and the owner walk their pages, pools too.

The app is started by the real command (`nbfreeze serve`), as an author would.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import nbformat
import pytest
from browser import HOSTNAME, READY, SCREENSHOTS, App, visit
from conftest import notebook_from
from playwright.sync_api import expect

ROOT = Path(__file__).resolve().parents[1]
FLAGSHIP = ROOT / "examples" / "digits.ipynb"
ANSWER_TIMEOUT_MS = 20_000


@pytest.fixture
def flagship(tmp_path: Path) -> Iterator[App]:
    notebook = tmp_path / "digits.ipynb"
    notebook.write_bytes(FLAGSHIP.read_bytes())
    app = App(notebook)
    yield app
    app.stop()


def shot(page, name: str) -> None:
    if os.environ.get("NBFREEZE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def label_cards(page, answers: list[str]) -> None:
    """Click one choice per card on a labeling page, in order."""
    page.wait_for_function(READY, timeout=ANSWER_TIMEOUT_MS)
    cards = page.locator(".widget-toggle-buttons:visible")
    for number, answer in enumerate(answers):
        cards.nth(number).get_by_role("button", name=answer, exact=True).click()
    page.get_by_text(f"{len(answers)} of {len(answers)} labeled").wait_for()


def submit(page, then: str) -> None:
    page.get_by_role("button", name="Submit").click()
    page.wait_for_url(f"**{then}", timeout=ANSWER_TIMEOUT_MS)


def pick_both_batches(page, answer: str) -> None:
    """The flagship's pool of 24 candidates comes in two batches of 12."""
    page.wait_for_url("**/stage/pick")
    label_cards(page, [answer] * 12)
    page.get_by_role("button", name="Submit").click()
    page.wait_for_function(
        "() => document.querySelector('.nbf-submit-status').textContent"
        " === 'Saved. Here is your next batch.'",
        timeout=ANSWER_TIMEOUT_MS,
    )
    label_cards(page, [answer] * 12)
    submit(page, "/stage/warmup")


def test_two_labelers_and_the_owner_walk_the_flagship(browser, flagship):
    alice = visit(browser, flagship.invite)
    alice.wait_for_url("**/stage/pick")
    alice.wait_for_function(READY, timeout=ANSWER_TIMEOUT_MS)
    shot(alice, "labeler-pool")
    pick_both_batches(alice, "3")
    shot(alice, "labeler-warmup")
    label_cards(alice, ["3", "not a 3", "3", "not a 3", "3", "not a 3"])
    submit(alice, "/stage/warmup_score")
    alice.get_by_text("You got 6 of 6 right.").wait_for()
    shot(alice, "labeler-report")

    bob = visit(browser, flagship.invite)
    pick_both_batches(bob, "3")
    label_cards(bob, ["not a 3"] * 6)
    submit(bob, "/stage/warmup_score")
    bob.get_by_text("You got 3 of 6 right.").wait_for()
    assert alice.get_by_text("You got 6 of 6 right.").is_visible()

    alice.get_by_role("button", name="Continue").click()
    alice.wait_for_url("**/waiting")
    assert alice.get_by_text("Your next step is not ready yet.").is_visible()
    shot(alice, "labeler-waiting")

    owner = visit(browser, flagship.owner)
    owner.wait_for_url("**/stage/sample_size")
    owner.wait_for_function(READY, timeout=ANSWER_TIMEOUT_MS)
    shot(owner, "owner-stage")
    submit(owner, "/owner")
    owner.get_by_role("cell", name="Samples per threshold").wait_for()

    # The owner's answer lets the shared stages run: alice's waiting page opens by itself.
    alice.wait_for_url("**/stage/check", timeout=ANSWER_TIMEOUT_MS)
    alice.wait_for_function(READY, timeout=ANSWER_TIMEOUT_MS)
    batch = alice.locator(".widget-toggle-buttons:visible").count()
    assert 0 < batch <= 8
    label_cards(alice, ["correct"] * batch)
    alice.get_by_role("button", name="Submit").click()
    check = owner.locator("tr[data-stage='check'] .nbf-progress")
    check.filter(has_text=re.compile(r"[1-9][0-9]* of 48 labels")).wait_for()
    owner.locator("#nbf-labelers").get_by_role("cell", name="labeler 2").wait_for()
    # A quarter of the 16 items alice's page holds (her batch and the next) is gold, mixed
    # in by chance: the first batch she answered holds some of the four known images.
    gold = owner.locator("section.nbf-gold-pool[data-stage='check'] .nbf-gold-labelers tbody tr")
    expect(gold).to_have_count(1, timeout=ANSWER_TIMEOUT_MS)
    expect(gold.locator("td").nth(1)).to_have_text(re.compile(r"^[0-4] of [1-4]$"))
    shot(owner, "owner-overview")


def key_in(page, keys: str, labeled: int, of: int) -> None:
    """Label a ChoiceLabeler page from the keyboard: focus its first card, press `keys`."""
    page.wait_for_function(READY, timeout=ANSWER_TIMEOUT_MS)
    page.locator(".nbfc-card:visible").first.focus()
    for key in keys:
        page.keyboard.press(key)
    page.get_by_text(f"{labeled} of {of} labeled").wait_for()


def test_a_labeler_walks_the_flagships_choice_labelers_from_the_keyboard(browser, flagship):
    """The pick pool and the warm-up are ChoiceLabelers: number keys label the focused
    card and move on, arrows move, u undoes, and Enter submits the page."""
    alice = visit(browser, flagship.invite)
    alice.wait_for_url("**/stage/pick")
    key_in(alice, "1" * 11, 11, 12)
    cards = alice.locator(".nbfc-card:visible")
    expect(cards.nth(11)).to_be_focused()
    alice.keyboard.press("?")
    keys = alice.get_by_role("dialog", name="Keys for labeling items")
    expect(keys).to_be_visible()
    if os.environ.get("NBFREEZE_SCREENSHOTS") == "1":
        alice.screenshot(path=str(SCREENSHOTS / "widget-keys.png"))
    alice.keyboard.press("Escape")
    expect(keys).to_be_hidden()
    expect(cards.nth(11)).to_be_focused()
    alice.keyboard.press("2")
    alice.get_by_text("12 of 12 labeled").wait_for()
    alice.keyboard.press("u")  # the last card is unlabeled again, and Enter would leave it
    alice.get_by_text("11 of 12 labeled").wait_for()
    alice.keyboard.press("1")
    alice.get_by_text("12 of 12 labeled").wait_for()
    alice.keyboard.press("Enter")
    status = alice.locator(".nbf-submit-status")
    # The next batch replaces this one in the same page.
    expect(status).to_have_text("Saved. Here is your next batch.", timeout=ANSWER_TIMEOUT_MS)
    expect(cards.first).to_be_focused()  # the keys go on to the new batch
    key_in(alice, "1" * 12, 12, 12)
    alice.keyboard.press("Enter")
    alice.wait_for_url("**/stage/warmup", timeout=ANSWER_TIMEOUT_MS)

    # The warm-up's known answers: 3, 8, 3, 5, 3, 9. One slip, undone, and a move back.
    key_in(alice, "12122", 5, 6)
    alice.keyboard.press("u")
    alice.get_by_text("4 of 6 labeled").wait_for()
    expect(cards.nth(4)).to_be_focused()
    alice.keyboard.press("1")
    alice.keyboard.press("ArrowRight")  # already on the last: it stays
    alice.keyboard.press("2")
    alice.get_by_text("6 of 6 labeled").wait_for()
    alice.keyboard.press("ArrowLeft")
    alice.keyboard.press("ArrowLeft")
    expect(cards.nth(3)).to_be_focused()
    alice.keyboard.press("Enter")
    alice.wait_for_url("**/stage/warmup_score", timeout=ANSWER_TIMEOUT_MS)
    alice.get_by_text("You got 6 of 6 right.").wait_for()


def test_a_labeler_goes_back_and_changes_an_answer(browser, flagship):
    alice = visit(browser, flagship.invite)
    pick_both_batches(alice, "not a 3")
    label_cards(alice, ["3"] * 6)
    submit(alice, "/stage/warmup_score")
    alice.get_by_text("You got 3 of 6 right.").wait_for()
    alice.get_by_role("link", name="Warm-up").click()
    alice.wait_for_url("**/stage/warmup")
    alice.wait_for_function(READY, timeout=ANSWER_TIMEOUT_MS)
    alice.get_by_text("6 of 6 labeled").wait_for()
    alice.get_by_text("You answered this").wait_for()
    second = alice.locator(".widget-toggle-buttons:visible").nth(1)
    second.get_by_role("button", name="not a 3").click()
    submit(alice, "/stage/warmup_score")
    alice.get_by_text("You got 4 of 6 right.").wait_for()


def test_the_waiting_page_opens_the_next_stage_by_itself(browser, tmp_path):
    cells = (
        "import ipywidgets as widgets",
        "#| stage: limit\n#| input: owner\nlimit = widgets.IntSlider(value=2, max=5)\nlimit",
        "#| stage: pick\n#| input: each\npick = widgets.IntSlider(value=0, max=limit.value)\npick",
    )
    notebook = tmp_path / "wait.ipynb"
    nbformat.write(notebook_from(cells), notebook)
    app = App(notebook)
    try:
        labeler = visit(browser, app.invite)
        labeler.wait_for_url("**/waiting")
        owner = visit(browser, app.owner)
        owner.wait_for_url("**/stage/limit")
        owner.wait_for_function(READY, timeout=ANSWER_TIMEOUT_MS)
        owner.get_by_role("button", name="Submit").click()
        owner.wait_for_url("**/owner")
        labeler.wait_for_url("**/stage/pick", timeout=ANSWER_TIMEOUT_MS)
        labeler.wait_for_function(READY, timeout=ANSWER_TIMEOUT_MS)
        assert labeler.locator(".widget-slider").count() == 1
    finally:
        app.stop()


def test_a_labeler_submits_over_plain_http_on_a_hostname(hostname_browser, tmp_path):
    """Served as http://labeling.example.org/, as on a LAN, the page is not a secure
    context (no crypto.randomUUID): its Submit must still save and move on."""
    cells = (
        "import ipywidgets as widgets\nfrom freezer.widgets import Classify",
        "#| stage: name\n#| input: each\nname = widgets.Text(description='Name')\nname",
        "#| stage: sort\n#| input: pool\n#| batch: 2\n"
        "sorter = Classify(['good', 'bad'], ['up', 'down'])\nsorter",
        "#| stage: report\n#| show: true\nprint('sorted', sorted(sorter.labels.items()))",
    )
    notebook = tmp_path / "lan.ipynb"
    nbformat.write(notebook_from(cells), notebook)
    app = App(notebook)
    try:
        link = urlsplit(app.invite)._replace(netloc=f"{HOSTNAME}:{app.port}").geturl()
        page = visit(hostname_browser, link)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.wait_for_url(f"http://{HOSTNAME}:{app.port}/stage/name")
        page.wait_for_function(READY, timeout=ANSWER_TIMEOUT_MS)
        assert page.evaluate("() => window.isSecureContext") is False
        page.get_by_role("textbox").fill("Alice")
        submit(page, "/stage/sort")
        # From the page: Playwright's own requests would not resolve the hostname.
        saved = page.evaluate("async () => (await fetch('/api/v1/stages/name')).json()")
        assert saved["answer"][""]["value"] == "Alice"

        page.wait_for_function(READY, timeout=ANSWER_TIMEOUT_MS)
        for answer in ("up", "down"):
            page.get_by_role("button", name=answer, exact=True).click()
        page.get_by_text("2 of 2 items labeled").wait_for()
        submit(page, "/stage/report")
        page.get_by_text("sorted [(0, 'up'), (1, 'down')]").wait_for(timeout=ANSWER_TIMEOUT_MS)
        assert errors == []
    finally:
        app.stop()


def test_a_labeler_gives_a_name_on_the_first_visit_and_the_owner_sees_it(browser, flagship):
    ada = visit(browser, flagship.invite, name="Ada Lovelace")
    ada.wait_for_url("**/stage/pick")
    owner = visit(browser, flagship.owner)
    people = owner.evaluate("async () => (await fetch('/api/v1/dashboard')).json()")
    assert "Ada Lovelace" in [p["name"] for p in people["labelers"]]


def test_the_owner_makes_a_labelers_link_and_copies_it(browser, flagship):
    owner = visit(browser, flagship.owner)
    owner.goto(urlsplit(flagship.owner)._replace(path="/owner", query="").geturl())
    owner.get_by_label("Their name").fill("Grace")
    owner.get_by_role("button", name="Make their link").click()
    link = owner.get_by_label("Their personal link: send it to them alone")
    expect(link).to_be_visible()
    assert "?token=" in link.input_value()
    owner.get_by_role("button", name="Copy").click()
    expect(owner.locator("#nbf-invite-result")).to_have_text("Copied.")
    shot(owner, "owner-invite")
    grace = visit(browser, link.input_value())
    grace.wait_for_url("**/stage/pick")  # a personal link: no welcome page, a name already
