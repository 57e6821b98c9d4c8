"""Going back on a pool page, and the owner's look at an item's history, in real
Chromium against the real `nbfreeze serve`: Back (the button, the `b` key) shows the
labeler's previous batch with their answers, a change is saved and the page goes on to
the batch it held, with the picks not yet submitted; the owner sees the change and puts
the first answer back."""

from __future__ import annotations

import nbformat
import pytest
from browser import READY, App, visit
from nbformat import v4
from playwright.sync_api import expect

pytestmark = pytest.mark.browser
TIMEOUT_MS = 20_000
KEYS = "() => [...document.querySelectorAll('.nbfl-tile')].map((tile) => tile.dataset.key)"
PICKED = (
    "() => [...document.querySelectorAll('.nbfl-tile')]"
    ".filter((tile) => tile.getAttribute('aria-pressed') === 'true')"
    ".map((tile) => tile.dataset.key)"
)
SETTLED = (
    "(picked) => document.querySelector('.nbfl-status')?.textContent.startsWith(picked + ' of')"
    " && (document.body.dataset.nbfPending ?? '0') === '0'"
    " && !document.querySelector('form.nbf-submit button').disabled"
)
HISTORY = (
    "async ([stage, item]) => (await fetch(`/api/v1/stages/${stage}/history?item=${item}`)).json()"
)


def serve(tmp_path, stage: str) -> App:
    cells = [
        v4.new_code_cell(
            "import numpy as np\n"
            "from freezer.widgets import BoxEditor, ChoiceLabeler, Classify, ImageGrid\n"
            "pictures = [np.full((24, 24, 3), n * 20, dtype=np.uint8) for n in range(12)]\n"
            "notes = [f'note {n}' for n in range(6)]"
        ),
        v4.new_code_cell(f"#| stage: label\n#| input: pool\n#| batch: {stage[0]}\n{stage[1]}"),
        v4.new_code_cell("#| stage: report\n#| show: true\nprint('done')"),
    ]
    notebook = tmp_path / "back.ipynb"
    nbformat.write(v4.new_notebook(cells=cells), notebook)
    return App(notebook)


def opened(page, path: str = "/stage/label") -> None:
    page.wait_for_url(lambda url: url.endswith(path), timeout=TIMEOUT_MS)
    page.wait_for_function(READY, timeout=TIMEOUT_MS)


def saved_and_moved_on(page) -> None:
    status = page.locator(".nbf-submit-status")
    expect(status).to_have_text("Saved. Here is your next batch.", timeout=TIMEOUT_MS)


GRID = (3, "grid = ImageGrid(pictures, size=48)\ngrid")


def test_b_goes_back_with_the_answers_and_forward_keeps_the_held_batch_and_picks(browser, tmp_path):
    app = serve(tmp_path, GRID)
    try:
        page = visit(browser, app.invite)
        opened(page)
        page.wait_for_function("() => document.querySelector('[data-nbfreeze-ahead]')")
        first = page.evaluate(KEYS)
        assert page.get_by_role("link", name="Back").count() == 0  # nothing to go back to
        page.locator(".nbfl-tile").nth(0).click()
        page.wait_for_function(SETTLED, arg=1, timeout=TIMEOUT_MS)
        page.get_by_role("button", name="Submit").click()
        saved_and_moved_on(page)
        second = page.evaluate(KEYS)
        assert not set(second) & set(first)

        page.locator(".nbfl-tile").nth(1).click()  # a pick not yet submitted
        page.wait_for_function(SETTLED, arg=1, timeout=TIMEOUT_MS)
        page.locator(".nbfl-tile").nth(1).focus()
        page.keyboard.press("b")
        opened(page, "/stage/label?back=1")
        assert page.evaluate(KEYS) == first
        page.wait_for_function(SETTLED, arg=1, timeout=TIMEOUT_MS)
        assert page.evaluate(PICKED) == [first[0]]  # the answers as she gave them
        expect(page.get_by_role("link", name="On to new work")).to_be_visible()
        assert page.get_by_role("link", name="Back").count() == 0  # her first batch

        page.locator(".nbfl-tile").nth(2).click()  # a change of mind
        page.wait_for_function(SETTLED, arg=2, timeout=TIMEOUT_MS)
        page.get_by_role("button", name="Submit").click()
        opened(page)
        assert page.evaluate(KEYS) == second  # the batch she was labeling, still hers
        page.wait_for_function(SETTLED, arg=1, timeout=TIMEOUT_MS)
        assert page.evaluate(PICKED) == [second[1]]  # with her pick in it
        page.wait_for_function("() => document.querySelector('[data-nbfreeze-ahead]')")
        page.get_by_role("button", name="Submit").click()
        saved_and_moved_on(page)
        third = page.evaluate(KEYS)
        assert len(third) == 3 and not set(third) & set(first + second)

        owner = visit(browser, app.owner)
        owner.goto(app.owner.split("/?")[0] + "/owner")
        changed = owner.evaluate(HISTORY, ["label", first[2]])
        assert [(c["old"], c["new"]) for c in changed["changes"]] == [(None, "no"), ("no", "yes")]
        kept = owner.evaluate(HISTORY, ["label", first[0]])
        assert [(c["old"], c["new"]) for c in kept["changes"]] == [(None, "yes")]

        # The owner looks the item up on the dashboard and puts the first answer back.
        errors = []
        owner.on("pageerror", lambda e: errors.append(str(e)))
        owner.get_by_label("Item id").fill(first[2])
        owner.get_by_role("button", name="Show its history").click()
        changes = owner.locator("#nbf-history-changes tbody tr")
        expect(changes).to_have_count(2, timeout=TIMEOUT_MS)
        expect(changes.nth(1).locator("td").nth(2)).to_have_text("no")
        expect(changes.nth(1).locator("td").nth(3)).to_have_text("yes")
        owner.get_by_role("button", name="Put back “no”").click()
        expect(owner.locator("#nbf-history-result")).to_contain_text(
            "answer is “no” again", timeout=TIMEOUT_MS
        )
        expect(changes).to_have_count(3)
        expect(changes.nth(2).locator("td").nth(3)).to_have_text("no (put back by the owner)")
        restored = owner.evaluate(HISTORY, ["label", first[2]])
        assert restored["labelers"][0]["label"] == "no"

        owner.get_by_label("Item id").fill("nowhere")
        owner.get_by_role("button", name="Show its history").click()
        expect(owner.locator("#nbf-history-result")).to_have_text(
            "“Label” has no item 'nowhere'", timeout=TIMEOUT_MS
        )
        expect(changes.first).to_be_hidden()
        assert errors == []
    finally:
        app.stop()


CHOOSING = {
    "Classify": (2, "sorter = Classify(notes, ['good', 'bad'], per_page=2)\nsorter"),
    "ChoiceLabeler": (2, "labeler = ChoiceLabeler(notes, ['good', 'bad'])\nlabeler"),
}


@pytest.mark.parametrize("widget", sorted(CHOOSING))
def test_the_back_button_changes_an_answer_and_new_work_carries_on(browser, tmp_path, widget):
    app = serve(tmp_path, CHOOSING[widget])
    try:
        page = visit(browser, app.invite)
        opened(page)
        pressed = page.locator("button[aria-pressed='true']")
        for n in range(2):
            page.get_by_role("button", name="good", exact=True).nth(n).click()
        expect(pressed).to_have_count(2)
        page.get_by_role("button", name="Submit").click()
        saved_and_moved_on(page)
        expect(pressed).to_have_count(0)

        page.get_by_role("link", name="Back").click()
        opened(page, "/stage/label?back=1")
        expect(pressed).to_have_count(2, timeout=TIMEOUT_MS)  # her answers, shown
        for n in range(2):
            button = page.get_by_role("button", name="good", exact=True).nth(n)
            expect(button).to_have_attribute("aria-pressed", "true")
        page.get_by_role("button", name="bad", exact=True).nth(0).click()
        expect(page.get_by_role("button", name="bad", exact=True).nth(0)).to_have_attribute(
            "aria-pressed", "true"
        )
        page.wait_for_function(
            "() => (document.body.dataset.nbfPending ?? '0') === '0'", timeout=TIMEOUT_MS
        )
        page.get_by_role("button", name="Submit").click()
        opened(page)
        expect(pressed).to_have_count(0, timeout=TIMEOUT_MS)  # the next batch, unlabeled
        for n in range(2):
            page.get_by_role("button", name="good", exact=True).nth(n).click()
        expect(pressed).to_have_count(2)
        page.get_by_role("button", name="Submit").click()
        saved_and_moved_on(page)

        owner = visit(browser, app.owner)
        owner.goto(app.owner.split("/?")[0] + "/owner")
        changed = owner.evaluate(HISTORY, ["label", "0"])
        assert [(c["old"], c["new"]) for c in changed["changes"]] == [
            (None, "good"),
            ("good", "bad"),
        ]
        assert [c["new"] for c in owner.evaluate(HISTORY, ["label", "2"])["changes"]] == ["good"]
    finally:
        app.stop()


BOXES = (
    2,
    "editor = BoxEditor(np.zeros((60, 200)), [(5 + 40 * n, 5, 35 + 40 * n, 35) for n in range(4)],"
    " labels=['cat', 'dog'])\neditor",
)


def test_back_shows_a_box_editors_names_to_change(browser, tmp_path):
    app = serve(tmp_path, BOXES)
    try:
        page = visit(browser, app.invite)
        opened(page)
        tags = page.locator(".nbfb-tag")
        page.locator(".nbfb-root").focus()
        for _ in range(2):
            page.keyboard.press("Tab")
            page.keyboard.press("2")
        expect(tags).to_have_text(["dog", "dog", "?", "?"])  # the others' boxes, faint
        page.get_by_role("button", name="Submit").click()
        saved_and_moved_on(page)

        page.get_by_role("link", name="Back").click()
        opened(page, "/stage/label?back=1")
        expect(tags).to_have_text(["dog", "dog", "?", "?"], timeout=TIMEOUT_MS)
        page.locator(".nbfb-root").focus()
        page.keyboard.press("Tab")
        page.keyboard.press("1")
        expect(tags).to_have_text(["cat", "dog", "?", "?"])
        page.wait_for_function(
            "() => (document.body.dataset.nbfPending ?? '0') === '0'", timeout=TIMEOUT_MS
        )
        page.get_by_role("button", name="Submit").click()
        opened(page)

        owner = visit(browser, app.owner)
        owner.goto(app.owner.split("/?")[0] + "/owner")
        changed = owner.evaluate(HISTORY, ["label", "0"])
        assert [(c["old"], c["new"]) for c in changed["changes"]] == [(None, "dog"), ("dog", "cat")]
    finally:
        app.stop()
