"""A pool page that holds the next batch ahead, in real Chromium: Submit shows it in the
click's own task, with its images decoded and no page load; the server's reply then
confirms it without a redraw, or its own state wins; labels land on their items across
batches with two labelers, and the pool ends with every item at its overlap."""

from __future__ import annotations

import time

import nbformat
import pytest
from browser import READY, App, visit
from nbformat import v4
from playwright.sync_api import expect

pytestmark = pytest.mark.browser
TIMEOUT_MS = 20_000

KEYS = "() => [...document.querySelectorAll('.nbfl-tile')].map((tile) => tile.dataset.key)"
HOLDS = "() => document.querySelector('[data-nbfreeze-ahead]') !== null"
# Submit clicked from a script: what the page shows when the click's task ends, before
# any frame from the server can have been handled.
IN_THE_CLICK = """() => {
  const keys = () => [...document.querySelectorAll('.nbfl-tile')].map((tile) => tile.dataset.key);
  let replied = false;
  document.addEventListener('nbf:submitted', () => { replied = true; }, { once: true });
  const before = keys();
  document.querySelector('form.nbf-submit button').click();
  const images = [...document.querySelectorAll('.nbfl-tile img')];
  window.nbfFirstTile = document.querySelector('.nbfl-tile');
  return {
    before,
    after: keys(),
    drawn: images.map((img) => img.complete && img.naturalWidth > 0),
    picked: document.querySelectorAll('.nbfl-tile[aria-pressed="true"]').length,
    replied,
  };
}"""
SETTLED = (
    "(picked) => document.querySelector('.nbfl-status')?.textContent.startsWith(picked + ' of')"
    " && (document.body.dataset.nbfPending ?? '0') === '0'"
    " && !document.querySelector('form.nbf-submit button').disabled"
)


def pool_notebook(path, items: int, overlap: int, lease: str = "10m"):
    cells = [
        v4.new_code_cell(
            "import numpy as np\nfrom collections import Counter\n"
            "from freezer.widgets import ImageGrid\n"
            "pictures = [np.full((24, 24, 3), (n * 20) % 256, dtype=np.uint8)"
            f" for n in range({items})]"
        ),
        v4.new_code_cell(
            f"#| stage: pick\n#| input: pool\n#| overlap: {overlap}\n#| batch: 3\n"
            f"#| lease: {lease}\n#| title: Pick the even ones\n"
            "grid = ImageGrid(pictures, size=48)\ngrid"
        ),
        v4.new_code_cell(
            "#| stage: tally\n#| show: true\n"
            "print('picked', sorted(grid.selected))\n"
            "counts = Counter(a['item'] for a in grid.annotations)\n"
            "print('labels per item', sorted(set(counts.values())), 'items', len(counts))"
        ),
    ]
    nbformat.write(v4.new_notebook(cells=cells), path)
    return path


def opened(page) -> None:
    page.wait_for_url("**/stage/pick", timeout=TIMEOUT_MS)
    page.wait_for_function(READY, timeout=TIMEOUT_MS)
    page.wait_for_function(HOLDS, timeout=TIMEOUT_MS)


def test_submit_shows_the_held_batch_in_the_clicks_task_and_the_reply_keeps_it(browser, tmp_path):
    app = App(pool_notebook(tmp_path / "pick.ipynb", items=12, overlap=1))
    try:
        page = visit(browser, app.invite)
        opened(page)
        page.evaluate("window.nbfSamePage = true")  # gone if the browser loads a page
        page.locator(".nbfl-tile").nth(1).click()
        page.wait_for_function(SETTLED, arg=1, timeout=TIMEOUT_MS)

        shown = page.evaluate(IN_THE_CLICK)
        assert len(shown["after"]) == 3
        assert not set(shown["after"]) & set(shown["before"])
        assert shown["drawn"] == [True, True, True]  # decoded ahead, complete at once
        assert shown["picked"] == 0  # the submitted batch's pick is not carried over
        assert not shown["replied"]
        status = page.locator(".nbf-submit-status")
        expect(status).to_have_text("Saved. Here is your next batch.", timeout=TIMEOUT_MS)
        assert page.evaluate(KEYS) == shown["after"]
        # The reply confirmed what the page drew: the same tile, not a new drawing.
        assert page.evaluate("document.querySelector('.nbfl-tile') === window.nbfFirstTile")
        assert page.evaluate("window.nbfSamePage === true")

        # Enter in the grid submits; the keyboard stays in the grid, on the next batch
        # (held ahead again, or, with nothing held, swapped in by the server's reply).
        page.locator(".nbfl-tile").first.focus()
        page.keyboard.press("Space")
        page.wait_for_function(SETTLED, arg=1, timeout=TIMEOUT_MS)
        before = page.evaluate(KEYS)
        page.keyboard.press("Enter")
        page.wait_for_function(
            "(before) => !before.includes(document.querySelector('.nbfl-tile').dataset.key)",
            arg=before,
            timeout=TIMEOUT_MS,
        )
        expect(status).to_have_text("Saved. Here is your next batch.", timeout=TIMEOUT_MS)
        page.wait_for_function(
            "(before) => document.activeElement.closest('.nbfl-tile')"
            " && !before.includes(document.activeElement.closest('.nbfl-tile').dataset.key)",
            arg=before,
            timeout=TIMEOUT_MS,
        )
        page.keyboard.press("?")  # the key list still opens from the new batch
        expect(page.get_by_text("pick or unpick the focused image")).to_be_visible()
        assert page.evaluate("window.nbfSamePage === true")
    finally:
        app.stop()


def label_until_done(pages, pick) -> None:
    """Each page in turn picks its batch's tiles for which `pick(key)` holds and submits,
    labeling the batch it moved to while the server is still answering, until every
    page has left the pool."""
    labeling = list(pages)
    while labeling:
        for page in list(labeling):
            if "/stage/pick" not in page.url:
                labeling.remove(page)
                continue
            keys = page.evaluate(KEYS)
            chosen = [n for n, key in enumerate(keys) if pick(key)]
            for n in chosen:
                page.locator(".nbfl-tile").nth(n).click()
            page.wait_for_function(SETTLED, arg=len(chosen), timeout=TIMEOUT_MS)
            page.get_by_role("button", name="Submit").click()
            page.wait_for_function(
                "(before) => !location.pathname.endsWith('/stage/pick')"
                " || !document.querySelector('.nbfl-tile')"
                " || !before.includes(document.querySelector('.nbfl-tile').dataset.key)",
                arg=keys,
                timeout=TIMEOUT_MS,
            )
            page.wait_for_load_state()


def test_two_labelers_labels_land_on_their_items_and_no_item_passes_its_overlap(
    browser, tmp_path, database_url
):
    notebook = pool_notebook(tmp_path / "pick.ipynb", items=18, overlap=2)
    app = App(notebook, "--db", database_url)
    try:
        alice, bob = visit(browser, app.invite), visit(browser, app.invite)
        for page in (alice, bob):
            opened(page)
        label_until_done([alice, bob], lambda key: int(key) % 2 == 0)
        for page in (alice, bob):
            page.wait_for_url("**/stage/tally", timeout=TIMEOUT_MS)
        expect(alice.get_by_text("picked [0, 2, 4, 6, 8, 10, 12, 14, 16]")).to_be_visible(
            timeout=TIMEOUT_MS
        )
        expect(alice.get_by_text("labels per item [2] items 18")).to_be_visible()
    finally:
        app.stop()


def test_a_held_batch_whose_lease_went_to_another_labeler_gives_way_to_the_server(
    browser, tmp_path
):
    app = App(pool_notebook(tmp_path / "pick.ipynb", items=6, overlap=1, lease="1s"))
    try:
        alice = visit(browser, app.invite)
        opened(alice)  # she leases all six: three shown, three held
        time.sleep(1.5)  # her lease expires
        bob = visit(browser, app.invite)  # the pool's items are his now
        opened(bob)
        shown = alice.evaluate(IN_THE_CLICK)
        assert len(shown["after"]) == 3  # she moved to her held batch at once
        # The server gave those items to Bob: nothing is left for her, and she goes on.
        alice.wait_for_url("**/waiting", timeout=TIMEOUT_MS)
        label_until_done([bob], lambda key: int(key) % 2 == 0)
        bob.wait_for_url("**/stage/tally", timeout=TIMEOUT_MS)
        # Her labels of the first three came first; his came too late for them.
        expect(bob.get_by_text("picked [4]")).to_be_visible(timeout=TIMEOUT_MS)
        expect(bob.get_by_text("labels per item [1] items 6")).to_be_visible()
    finally:
        app.stop()


def test_a_submit_refused_after_the_move_brings_the_submitted_batch_back(browser, tmp_path):
    app = App(pool_notebook(tmp_path / "pick.ipynb", items=12, overlap=1))
    try:
        page = visit(browser, app.invite)
        opened(page)
        page.locator(".nbfl-tile").nth(2).click()
        page.wait_for_function(SETTLED, arg=1, timeout=TIMEOUT_MS)
        # The refusal is told in the click's own task, before the server's reply.
        back = page.evaluate(
            """() => {
              const tiles = () => [...document.querySelectorAll('.nbfl-tile')];
              const keys = () => tiles().map((t) => t.dataset.key);
              const before = keys();
              const form = document.querySelector('form.nbf-submit');
              form.querySelector('button').click();
              const moved = keys();
              const detail = { request_id: form.dataset.requestId, message: 'refused' };
              document.dispatchEvent(new CustomEvent('nbf:submit_error', { detail }));
              const picked = [...document.querySelectorAll('.nbfl-tile[aria-pressed="true"]')];
              return {
                before,
                moved,
                after: keys(),
                picked: picked.map((t) => t.dataset.key),
                holds: document.querySelector('[data-nbfreeze-ahead]') !== null,
                status: document.querySelector('.nbf-submit-status').textContent,
              };
            }"""
        )
        assert back["moved"] != back["before"]
        assert back["after"] == back["before"]
        assert back["picked"] == [back["before"][2]]  # its labels as they were
        assert back["holds"]  # the batch it moved to is held again
        assert back["status"] == "Not saved: refused"
    finally:
        app.stop()


# ChoiceLabeler: its cards are standard ipywidgets in two grids, the held one hidden.
CARDS = (
    "() => [...document.querySelectorAll('.nbfc-grid')]"
    ".filter((grid) => grid.style.display !== 'none')"
    ".flatMap((grid) => [...grid.querySelectorAll('.nbfc-card .nbft-name')])"
    ".map((name) => name.textContent)"
)
CHOICE_IN_THE_CLICK = """() => {
  const front = () => [...document.querySelectorAll('.nbfc-grid')]
    .filter((grid) => grid.style.display !== 'none');
  const names = () => front().flatMap((g) => [...g.querySelectorAll('.nbft-name')])
    .map((name) => name.textContent);
  let replied = false;
  document.addEventListener('nbf:submitted', () => { replied = true; }, { once: true });
  document.addEventListener('nbf:submit_error', () => { replied = true; }, { once: true });
  const before = names();
  document.querySelector('form.nbf-submit button').click();
  const images = front().flatMap((g) => [...g.querySelectorAll('.nbfc-card img')]);
  window.nbfFirstCard = front()[0]?.querySelector('.nbfc-card');
  return {
    before,
    after: names(),
    drawn: images.map((img) => img.complete && img.naturalWidth > 0),
    chosen: front().flatMap((g) => [...g.querySelectorAll('.mod-active')]).length,
    replied,
  };
}"""


def choice_notebook(path, items: int, lease: str = "10m"):
    cells = [
        v4.new_code_cell(
            "import numpy as np\nimport ipywidgets as widgets\n"
            "from freezer.widgets import ChoiceLabeler\nfrom freezer.widgets.choice import"
            " render_item\n"
            f"pictures = [(f'p{{n}}', np.full((24, 24, 3), n * 20, dtype=np.uint8))"
            f" for n in range({items})]\n"
            "def card(picture):\n"
            "    name = widgets.Label(picture[0])\n"
            "    name.add_class('nbft-name')\n"
            "    return widgets.VBox([render_item(picture[1]), name])"
        ),
        v4.new_code_cell(
            f"#| stage: sort\n#| input: pool\n#| batch: 3\n#| lease: {lease}\n"
            "choice = ChoiceLabeler(pictures, ['keep', 'drop'], render=card,"
            " key=lambda p: p[0])\nchoice"
        ),
        v4.new_code_cell("#| stage: tally\n#| show: true\nprint('kept', len(choice.labels))"),
    ]
    nbformat.write(v4.new_notebook(cells=cells), path)
    return path


def choice_opened(page) -> None:
    page.wait_for_url("**/stage/sort", timeout=TIMEOUT_MS)
    page.wait_for_function(READY, timeout=TIMEOUT_MS)
    page.wait_for_function(HOLDS, timeout=TIMEOUT_MS)


def choose_all(page, choice: str = "keep") -> None:
    """Click `choice` on every shown card, and wait for the server to have them all."""
    shown = page.locator(".nbfc-grid:visible .nbfc-card")
    for n in range(shown.count()):
        shown.nth(n).get_by_role("button", name=choice).click()
    page.wait_for_function(
        "(n) => document.querySelector('.nbfc-grid:not([style*=none]) ') !== null"
        " && [...document.querySelectorAll('.nbfc-grid')].filter((g) => g.style.display !== 'none')"
        "[0].querySelectorAll('.mod-active').length === n"
        " && document.querySelector('.widget-html')?.textContent.startsWith(n + ' of')"
        " && (document.body.dataset.nbfPending ?? '0') === '0'",
        arg=shown.count(),
        timeout=TIMEOUT_MS,
    )


def test_a_choice_labeler_shows_its_held_cards_at_submit_and_its_keys_go_on(browser, tmp_path):
    app = App(choice_notebook(tmp_path / "sort.ipynb", items=12))
    try:
        page = visit(browser, app.invite)
        choice_opened(page)
        page.evaluate("window.nbfSamePage = true")  # gone if the browser loads a page
        assert page.evaluate(CARDS) == ["p0", "p1", "p2"]
        choose_all(page)

        shown = page.evaluate(CHOICE_IN_THE_CLICK)
        assert shown["before"] == ["p0", "p1", "p2"]
        assert shown["after"] == ["p3", "p4", "p5"]  # drawn before the server answered
        assert shown["drawn"] == [True, True, True]  # their images loaded ahead
        assert shown["chosen"] == 0 and not shown["replied"]
        status = page.locator(".nbf-submit-status")
        expect(status).to_have_text("Saved. Here is your next batch.", timeout=TIMEOUT_MS)
        page.wait_for_function(HOLDS, timeout=TIMEOUT_MS)  # the batch after, held again
        assert page.evaluate(CARDS) == ["p3", "p4", "p5"]
        # The reply confirmed what the page drew: the same card, not a new drawing.
        first = (
            "[...document.querySelectorAll('.nbfc-grid')]"
            ".find((g) => g.style.display !== 'none').querySelector('.nbfc-card')"
        )
        assert page.evaluate(f"() => {first} === window.nbfFirstCard")

        # From the keyboard: the number keys label the moved-to cards, Enter submits.
        page.locator(".nbfc-grid:visible .nbfc-card").first.focus()
        for _ in range(3):
            page.keyboard.press("2")
        page.wait_for_function(
            "() => document.querySelector('.widget-html')?.textContent.startsWith('3 of')",
            timeout=TIMEOUT_MS,
        )
        page.keyboard.press("Enter")
        page.wait_for_function(f"() => ({CARDS})()[0] === 'p6'", timeout=TIMEOUT_MS)
        expect(status).to_have_text("Saved. Here is your next batch.", timeout=TIMEOUT_MS)
        page.keyboard.press("?")  # the key list still opens from the new batch
        expect(page.get_by_text("give the focused item that choice")).to_be_visible()
        assert page.evaluate("window.nbfSamePage === true")
    finally:
        app.stop()


def test_a_choice_labelers_move_gives_way_to_the_server(browser, tmp_path):
    app = App(choice_notebook(tmp_path / "sort.ipynb", items=6, lease="1s"))
    try:
        alice = visit(browser, app.invite)
        choice_opened(alice)  # she leases all six: three shown, three held
        choose_all(alice)
        time.sleep(1.5)  # her lease expires
        bob = visit(browser, app.invite)  # the pool's items are his now
        choice_opened(bob)
        shown = alice.evaluate(CHOICE_IN_THE_CLICK)
        assert shown["after"] == ["p3", "p4", "p5"]  # she moved to her held cards at once
        # The server gave those to Bob: nothing is left for her, and she goes on.
        alice.wait_for_url("**/waiting", timeout=TIMEOUT_MS)
    finally:
        app.stop()


def test_a_choice_labelers_move_the_server_does_not_take_is_redrawn_in_place(browser, tmp_path):
    app = App(choice_notebook(tmp_path / "sort.ipynb", items=12))
    try:
        page = visit(browser, app.invite)
        choice_opened(page)
        page.evaluate("window.nbfSamePage = true")
        choose_all(page)
        # The page says it moved to its held cards in another order than the server holds
        # them: the server shows its own batch, in the grid it shows, and the page follows.
        page.evaluate(
            """() => document.querySelector('[data-nbfreeze-ahead]').addEventListener(
              'nbfreeze:advance',
              (event) => { event.detail.keys = [...event.detail.keys].reverse(); },
              { once: true },
            )"""
        )
        shown = page.evaluate(CHOICE_IN_THE_CLICK)
        assert shown["after"] == ["p3", "p4", "p5"] and not shown["replied"]
        status = page.locator(".nbf-submit-status")
        expect(status).to_have_text("Saved. Here is your next batch.", timeout=TIMEOUT_MS)
        page.wait_for_function(
            """() => {
              const grids = [...document.querySelectorAll('.nbfc-grid')];
              return grids[0].style.display !== 'none' && grids[1].style.display === 'none';
            }""",
            timeout=TIMEOUT_MS,
        )
        assert page.evaluate(CARDS) == ["p3", "p4", "p5"]
        assert page.evaluate(
            "() => document.querySelector('.nbfc-grid .nbfc-card') !== window.nbfFirstCard"
        )
        page.wait_for_function(HOLDS, timeout=TIMEOUT_MS)  # and the batch after is held
        choose_all(page)
        assert page.evaluate(CHOICE_IN_THE_CLICK)["after"] == ["p6", "p7", "p8"]
        expect(status).to_have_text("Saved. Here is your next batch.", timeout=TIMEOUT_MS)
        assert page.evaluate("window.nbfSamePage === true")
    finally:
        app.stop()


def test_a_choice_labelers_refused_submit_brings_its_cards_back(browser, tmp_path):
    app = App(choice_notebook(tmp_path / "sort.ipynb", items=12))
    try:
        page = visit(browser, app.invite)
        choice_opened(page)
        choose_all(page, "drop")
        back = page.evaluate(
            """() => {
              const front = () => [...document.querySelectorAll('.nbfc-grid')]
                .filter((grid) => grid.style.display !== 'none');
              const names = () => front().flatMap((g) => [...g.querySelectorAll('.nbft-name')])
                .map((name) => name.textContent);
              const form = document.querySelector('form.nbf-submit');
              const before = names();
              form.querySelector('button').click();
              const moved = names();
              const detail = { request_id: form.dataset.requestId, message: 'refused' };
              document.dispatchEvent(new CustomEvent('nbf:submit_error', { detail }));
              return {
                before,
                moved,
                after: names(),
                chosen: front().flatMap((g) => [...g.querySelectorAll('.mod-active')])
                  .map((b) => b.textContent),
                holds: document.querySelector('[data-nbfreeze-ahead]') !== null,
                status: document.querySelector('.nbf-submit-status').textContent,
              };
            }"""
        )
        assert back["moved"] == ["p3", "p4", "p5"]
        assert back["after"] == back["before"] == ["p0", "p1", "p2"]
        assert [text[-4:] for text in back["chosen"]] == ["drop"] * 3  # as they were
        assert back["holds"]
        assert back["status"] == "Not saved: refused"
    finally:
        app.stop()


# BoxEditor: every box is on the page already; the held batch is which boxes come next.
EDITABLE = (
    "() => [...document.querySelectorAll('.nbfb-box[role=\"button\"]')].map((b) => b.dataset.id)"
)


def boxes_notebook(path):
    cells = [
        v4.new_code_cell(
            "import numpy as np\nfrom freezer.widgets import BoxEditor\n"
            "found = [(4 * n, 4 * n, 4 * n + 6, 4 * n + 6, 'cat') for n in range(6)]"
        ),
        v4.new_code_cell(
            "#| stage: fix\n#| input: pool\n#| batch: 2\n"
            "editor = BoxEditor(np.zeros((40, 40, 3), dtype=np.uint8), found,"
            " labels=['cat', 'dog'])\neditor"
        ),
        v4.new_code_cell("#| stage: tally\n#| show: true\nprint('named', len(editor.labels))"),
    ]
    nbformat.write(v4.new_notebook(cells=cells), path)
    return path


def test_a_box_editor_moves_to_its_held_boxes_at_submit_and_back_when_refused(browser, tmp_path):
    app = App(boxes_notebook(tmp_path / "fix.ipynb"))
    try:
        page = visit(browser, app.invite)
        page.wait_for_url("**/stage/fix", timeout=TIMEOUT_MS)
        page.wait_for_function(READY, timeout=TIMEOUT_MS)
        page.wait_for_function(HOLDS, timeout=TIMEOUT_MS)
        page.evaluate("window.nbfSamePage = true")
        assert page.evaluate(EDITABLE) == ["0", "1"]
        moved = page.evaluate(
            """() => {
              const ids = () => [...document.querySelectorAll('.nbfb-box[role="button"]')]
                .map((b) => b.dataset.id);
              let replied = false;
              document.addEventListener('nbf:submitted', () => { replied = true; }, { once: true });
              document.querySelector('form.nbf-submit button').click();
              return { after: ids(), replied };
            }"""
        )
        assert moved == {"after": ["2", "3"], "replied": False}
        expect(page.locator(".nbf-submit-status")).to_have_text(
            "Saved. Here is your next batch.", timeout=TIMEOUT_MS
        )
        page.wait_for_function(HOLDS, timeout=TIMEOUT_MS)
        assert page.evaluate(EDITABLE) == ["2", "3"]

        back = page.evaluate(
            """() => {
              const ids = () => [...document.querySelectorAll('.nbfb-box[role="button"]')]
                .map((b) => b.dataset.id);
              const form = document.querySelector('form.nbf-submit');
              form.querySelector('button').click();
              const moved = ids();
              const detail = { request_id: form.dataset.requestId, message: 'refused' };
              document.dispatchEvent(new CustomEvent('nbf:submit_error', { detail }));
              const holds = document.querySelector('[data-nbfreeze-ahead]') !== null;
              return { moved, after: ids(), holds };
            }"""
        )
        assert back == {"moved": ["4", "5"], "after": ["2", "3"], "holds": True}
        assert page.evaluate("window.nbfSamePage === true")
    finally:
        app.stop()


def test_a_box_editors_move_the_server_does_not_take_gives_way_to_its_state(browser, tmp_path):
    app = App(boxes_notebook(tmp_path / "fix.ipynb"))
    try:
        page = visit(browser, app.invite)
        page.wait_for_url("**/stage/fix", timeout=TIMEOUT_MS)
        page.wait_for_function(READY, timeout=TIMEOUT_MS)
        page.wait_for_function(HOLDS, timeout=TIMEOUT_MS)
        # The page says it moved to its held boxes in another order than the server holds
        # them: the server shows its own batch, with the labels it set, and the page follows.
        page.evaluate(
            """() => document.querySelector('[data-nbfreeze-ahead]').addEventListener(
              'nbfreeze:advance',
              (event) => { event.detail.keys = [...event.detail.keys].reverse(); },
              { once: true },
            )"""
        )
        page.get_by_role("button", name="Submit").click()
        expect(page.locator(".nbf-submit-status")).to_have_text(
            "Saved. Here is your next batch.", timeout=TIMEOUT_MS
        )
        expect(page.locator(".nbfb-tag")).to_have_text(["?"] * 6, timeout=TIMEOUT_MS)
        assert page.evaluate(EDITABLE) == ["2", "3"]
        page.wait_for_function(HOLDS, timeout=TIMEOUT_MS)  # the boxes after, held
    finally:
        app.stop()
