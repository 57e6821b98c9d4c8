"""The stock labeling widgets in the frozen app, in real Chromium: mouse and keyboard
labeling, values arriving in Python, undo, corrected boxes, and a staged app whose
pool and `each` stages use them (Enter submits a batch)."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from browser import ECHO, READY, App, python_sees, screenshot, visit
from nbformat import v4
from playwright.sync_api import expect

pytestmark = pytest.mark.browser
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_image_grid_picks_with_the_mouse_and_the_keyboard_and_undoes(serve, open_tab):
    tab = open_tab(
        serve(
            ECHO + "import numpy as np\n"
            "from freezer.widgets import ImageGrid\n"
            "faces = [np.full((8, 8), v) for v in range(0, 250, 40)]\n"
            "grid = ImageGrid(faces, caption=lambda a: f'grey {int(a[0, 0])}', size=90)\n"
            "grid.observe(report, names='labels')\n"
            "widgets.VBox([grid, echo])"
        ),
        viewport={"width": 900, "height": 700},
    )
    page = tab.page
    tiles = page.locator(".nbfl-tile")
    expect(tiles).to_have_count(7)
    expect(page.locator(".nbfl-tile img").first).to_have_attribute("src", re.compile("^blob:"))
    tiles.nth(2).click()
    python_sees(page, {i: "yes" if i == 2 else "no" for i in range(7)})
    expect(tiles.nth(2)).to_have_attribute("aria-pressed", "true")
    screenshot(page, "widget-image-grid.png")

    tiles.nth(0).focus()
    page.keyboard.press("ArrowRight")
    expect(tiles.nth(1)).to_be_focused()
    page.keyboard.press("Space")
    python_sees(page, {i: "yes" if i in (1, 2) else "no" for i in range(7)})
    page.keyboard.press("u")
    python_sees(page, {i: "yes" if i == 2 else "no" for i in range(7)})
    page.keyboard.press("u")
    python_sees(page, dict.fromkeys(range(7), "no"))
    assert tab.errors == []


def test_classify_labels_by_click_and_number_keys_moves_with_arrows_and_undoes(serve, open_tab):
    tab = open_tab(
        serve(
            ECHO + "from freezer.widgets import Classify, trusted_html\n"
            "notes = ['<script>alert(1)</script> plain', trusted_html('<b>bold</b> note'),\n"
            "         'last']\n"
            "sorter = Classify(notes, ['spam', 'ham'])\n"
            "sorter.observe(report, names='labels')\n"
            "widgets.VBox([sorter, echo])"
        ),
        viewport={"width": 900, "height": 700},
    )
    page = tab.page
    expect(page.locator(".nbfl-text")).to_have_text("<script>alert(1)</script> plain")
    page.get_by_role("button", name="ham", exact=True).click()
    python_sees(page, {0: "ham"})
    expect(page.locator(".nbfl-html b")).to_have_text("bold")  # the next item, as HTML
    screenshot(page, "widget-classify.png")

    page.locator(".nbfl-classify").focus()
    page.keyboard.press("1")
    python_sees(page, {0: "ham", 1: "spam"})
    expect(page.locator(".nbfl-status")).to_have_text(re.compile("^2 of 3 items labeled"))
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("1")
    python_sees(page, {0: "spam", 1: "spam"})
    page.keyboard.press("u")
    python_sees(page, {0: "ham", 1: "spam"})
    expect(page.get_by_role("button", name="ham", exact=True)).to_have_attribute(
        "aria-pressed", "true"
    )
    assert tab.errors == []


def test_a_reference_is_shown_beside_each_item_or_once_above_them(serve, open_tab):
    tab = open_tab(
        serve(
            "import numpy as np\nimport ipywidgets as widgets\n"
            "from freezer.widgets import Classify, ImageGrid\n"
            "faces = [np.full((8, 8), v, dtype=np.uint8) for v in (40, 120, 200)]\n"
            "photo = (np.indices((8, 8)).sum(0) % 2 * 255).astype(np.uint8)\n"
            "same = Classify(faces, ['same', 'other'], reference=lambda face: photo, per_page=3)\n"
            "pick = ImageGrid(faces, reference='The person in the photo on file')\n"
            "widgets.VBox([same, pick])"
        ),
        viewport={"width": 900, "height": 900},
    )
    page = tab.page
    beside = page.locator(".nbfl-classify .nbfl-pair")
    expect(beside).to_have_count(3)
    drawn = "(img) => img.complete && img.naturalWidth === 8"
    for n in range(3):
        pair = beside.nth(n)
        expect(pair.locator("figcaption")).to_have_text("Reference")
        for image in pair.locator("img").all():
            image.evaluate(drawn)
            assert image.evaluate(drawn)
    above = page.locator(".nbfl-reference-all")
    expect(above).to_have_count(1)
    expect(above).to_contain_text("The person in the photo on file")
    assert page.locator(".nbfl-grid .nbfl-reference").count() == 0
    screenshot(page, "widget-reference.png")


def test_box_editor_moves_adds_names_and_deletes_boxes_and_python_gets_them(serve, open_tab):
    tab = open_tab(
        serve(
            "import json\nimport numpy as np\nimport ipywidgets as widgets\n"
            "from freezer.widgets import BoxEditor\n"
            "image = np.zeros((100, 200, 3), np.uint8)\nimage[20:60, 30:90] = (200, 60, 60)\n"
            "editor = BoxEditor(image, [(30, 20, 90, 60, 'car')], labels=['car', 'bus'])\n"
            "echo = widgets.Label()\necho.add_class('t-python')\n"
            "def report(change):\n"
            "    echo.value = json.dumps([[b['label'], round(b['x']), round(b['y']),\n"
            "                             round(b['width']), round(b['height'])]\n"
            "                            for b in change['new']])\n"
            "editor.observe(report, names='boxes')\n"
            "widgets.VBox([editor, echo])"
        ),
        viewport={"width": 900, "height": 700},
    )
    page = tab.page
    stage = page.locator(".nbfb-stage")
    expect(page.locator(".nbfb-box")).to_have_count(1)
    stage_box = stage.bounding_box()
    scale = stage_box["width"] / 200  # page pixels per image pixel
    box = page.locator(".nbfb-box").bounding_box()
    # Drag the box 20 image pixels right and 10 down.
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(
        box["x"] + box["width"] / 2 + 20 * scale, box["y"] + box["height"] / 2 + 10 * scale, steps=5
    )
    page.mouse.up()
    python = page.locator(".t-python")
    expect(python).to_have_text('[["car", 50, 30, 60, 40]]')
    # Draw a new box on empty image, from (120, 10) to (180, 50).
    page.mouse.move(stage_box["x"] + 120 * scale, stage_box["y"] + 10 * scale)
    page.mouse.down()
    page.mouse.move(stage_box["x"] + 180 * scale, stage_box["y"] + 50 * scale, steps=5)
    page.mouse.up()
    expect(python).to_have_text('[["car", 50, 30, 60, 40], ["car", 120, 10, 60, 40]]')
    page.get_by_role("button", name="bus", exact=True).click()
    expect(python).to_have_text('[["car", 50, 30, 60, 40], ["bus", 120, 10, 60, 40]]')
    # Resize the new (selected) box by its bottom-right handle: 10 image pixels each way.
    handle = page.locator('.nbfb-box[aria-pressed="true"] .nbfb-se').bounding_box()
    x, y = handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 10 * scale, y + 10 * scale, steps=5)
    page.mouse.up()
    expect(python).to_have_text('[["car", 50, 30, 60, 40], ["bus", 120, 10, 70, 50]]')
    screenshot(page, "widget-box-editor.png")

    # Keyboard only: Tab to the first box, move it, resize it, rename it, delete it, undo.
    page.locator(".nbfb-root").focus()
    page.keyboard.press("Tab")
    expect(page.locator(".nbfb-box").first).to_be_focused()
    page.keyboard.press("ArrowRight")
    expect(python).to_have_text('[["car", 55, 30, 60, 40], ["bus", 120, 10, 70, 50]]')
    page.keyboard.press("Shift+ArrowDown")
    expect(python).to_have_text('[["car", 55, 30, 60, 45], ["bus", 120, 10, 70, 50]]')
    page.keyboard.press("2")
    expect(python).to_have_text('[["bus", 55, 30, 60, 45], ["bus", 120, 10, 70, 50]]')
    page.keyboard.press("Delete")
    expect(python).to_have_text('[["bus", 120, 10, 70, 50]]')
    page.keyboard.press("u")
    expect(python).to_have_text('[["bus", 55, 30, 60, 45], ["bus", 120, 10, 70, 50]]')
    assert tab.errors == []


def test_choice_labeler_labels_by_number_keys_moves_with_arrows_and_undoes(serve, open_tab):
    tab = open_tab(
        serve(
            ECHO + "from freezer.widgets import ChoiceLabeler\n"
            "labeler = ChoiceLabeler(['first', 'second', 'third', 'fourth'], ['keep', 'drop'],\n"
            "                        columns=2)\n"
            "labeler.observe(report, names='labels')\n"
            "widgets.VBox([labeler, echo])"
        ),
        viewport={"width": 900, "height": 700},
    )
    page = tab.page
    cards = page.locator(".nbfc-card")
    expect(cards).to_have_count(4)
    page.keyboard.press("Tab")  # Tab reaches the first card, not its buttons
    expect(cards.nth(0)).to_be_focused()
    assert page.evaluate("() => getComputedStyle(document.activeElement).outlineWidth") == "3px"

    page.keyboard.press("2")  # drop the first, and the focus moves on
    python_sees(page, {0: "drop"})
    expect(cards.nth(1)).to_be_focused()
    expect(page.get_by_text("1 of 4 labeled")).to_be_visible()
    page.keyboard.press("ArrowDown")  # two columns: the card below
    expect(cards.nth(3)).to_be_focused()
    page.keyboard.press("1")
    python_sees(page, {0: "drop", 3: "keep"})
    expect(cards.nth(3).get_by_role("button", name="keep")).to_have_attribute(
        "aria-pressed", "true"
    )
    page.keyboard.press("Home")
    expect(cards.nth(0)).to_be_focused()
    page.keyboard.press("1")  # a change of mind
    python_sees(page, {0: "keep", 3: "keep"})
    # The mouse, as before, right on the number hint that the page added to the button.
    cards.nth(2).locator(".nbfc-kbd").nth(1).click(force=True)
    python_sees(page, {0: "keep", 2: "drop", 3: "keep"})

    page.keyboard.press("u")  # undoes the click
    python_sees(page, {0: "keep", 3: "keep"})
    page.keyboard.press("u")  # then the change of mind
    python_sees(page, {0: "drop", 3: "keep"})
    expect(cards.nth(0)).to_be_focused()
    page.keyboard.press("u")
    page.keyboard.press("u")
    python_sees(page, {})
    expect(page.get_by_text("0 of 4 labeled")).to_be_visible()
    assert tab.errors == []


ALL_FOUR = (
    "import numpy as np\nimport ipywidgets as widgets\n"
    "from freezer.widgets import BoxEditor, ChoiceLabeler, Classify, ImageGrid\n"
    "widgets.VBox([\n"
    "    ImageGrid([np.full((8, 8), v) for v in (0, 120, 240)], size=60),\n"
    "    Classify(['a note'], ['keep', 'drop']),\n"
    "    BoxEditor(np.zeros((40, 80)), [(5, 5, 30, 30)], labels=['car', 'bus']),\n"
    "    ChoiceLabeler(['one', 'two'], ['keep', 'drop']),\n"
    "])"
)


@pytest.mark.parametrize(
    ("focus", "title", "a_key"),
    [
        (".nbfl-tile >> nth=0", "Keys for picking images", "pick or unpick the focused image"),
        (".nbfl-classify", "Keys for labeling items", "give the current item that choice"),
        (".nbfb-root", "Keys for fixing boxes", "name the box with that label"),
        (".nbfc-card >> nth=0", "Keys for labeling items", "give the focused item that choice"),
    ],
)
def test_question_mark_lists_a_widgets_keys_and_escape_closes_the_list(
    serve, open_tab, focus, title, a_key
):
    tab = open_tab(serve(ALL_FOUR), viewport={"width": 900, "height": 900})
    page = tab.page
    opener = page.locator(focus)
    opener.focus()
    page.keyboard.press("?")
    keys = page.get_by_role("dialog", name=title)
    expect(keys).to_be_visible()
    expect(keys).to_contain_text(a_key)
    expect(keys).to_contain_text("undo the last change")
    expect(keys.get_by_role("button", name="Close")).to_be_focused()
    page.keyboard.press("1")  # the widget's keys rest while the list is open
    page.keyboard.press("Escape")
    expect(keys).to_be_hidden()
    expect(opener).to_be_focused()  # the focus is back where it was
    page.keyboard.press("?")
    expect(keys).to_be_visible()
    page.keyboard.press("?")  # `?` closes it too
    expect(keys).to_be_hidden()
    expect(
        page.locator(".nbfl-choice[aria-pressed=true], .nbfl-tile[aria-pressed=true]")
    ).to_have_count(0)
    expect(page.locator(".nbfc-card [aria-pressed=true]")).to_have_count(0)

    page.get_by_role("button", name="Keys").nth(0).click()  # the mouse opens it too
    expect(page.get_by_role("dialog").first).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_have_count(0)
    assert tab.errors == []


STAGED = [
    v4.new_code_cell(
        "import numpy as np\n"
        "from freezer.widgets import BoxEditor, Classify, ImageGrid\n"
        "tiles = {f't{i}': np.full((6, 6), 40 * i) for i in range(4)}"
    ),
    v4.new_code_cell(
        "#| stage: pick\n#| input: pool\n#| batch: 4\n#| title: Pick the light ones\n"
        "grid = ImageGrid(tiles, caption=lambda a: str(int(a[0, 0])), choices=('light', 'dark'))\n"
        "grid"
    ),
    v4.new_code_cell(
        "#| stage: sort\n#| input: pool\n#| batch: 3\n#| title: Sort the notes\n"
        "sorter = Classify(['good', 'bad', 'good again'], ['up', 'down'])\n"
        "sorter"
    ),
    v4.new_code_cell(
        "#| stage: fix\n#| input: each\n#| title: Fix the box\n"
        "editor = BoxEditor(np.zeros((50, 50)), [(10, 10, 30, 30, 'cat')], labels=['cat', 'dog'])\n"
        "editor"
    ),
    v4.new_code_cell(
        "#| stage: report\n#| show: true\n"
        "print('picked', sorted(grid.selected))\n"
        "print('sorted', sorted(sorter.labels.items()))\n"
        "print('boxes', [(b['label'], b['x']) for b in editor.boxes])"
    ),
]


@pytest.fixture
def staged_app(tmp_path):
    notebook = tmp_path / "widgets.ipynb"
    nbformat.write(v4.new_notebook(cells=STAGED), notebook)
    app = App(notebook)
    yield app
    app.stop()


def test_a_labeler_labels_pools_and_fixes_boxes_through_the_app(browser, staged_app):
    page = visit(browser, staged_app.invite)
    page.wait_for_url("**/stage/pick")
    page.wait_for_function(READY, timeout=20_000)
    page.locator(".nbfl-tile").nth(3).click()
    page.locator(".nbfl-tile").nth(2).click()
    expect(page.locator(".nbfl-status")).to_have_text(re.compile("^2 of 4 picked"))
    page.get_by_role("button", name="Submit").click()

    page.wait_for_url("**/stage/sort")
    page.wait_for_function(READY, timeout=20_000)
    page.locator(".nbfl-classify").focus()
    for key in ("1", "2", "2"):
        page.keyboard.press(key)
    expect(page.locator(".nbfl-status")).to_have_text(re.compile("^3 of 3 items labeled"))
    page.keyboard.press("Enter")  # the widget's Enter submits the page

    page.wait_for_url("**/stage/fix")
    page.wait_for_function(READY, timeout=20_000)
    page.locator(".nbfb-root").focus()
    page.keyboard.press("Tab")
    page.keyboard.press("2")
    page.keyboard.press("ArrowRight")
    expect(page.locator(".nbfb-tag")).to_have_text("dog")
    page.get_by_role("button", name="Submit").click()

    page.wait_for_url("**/stage/report")
    expect(page.get_by_text("picked ['t2', 't3']")).to_be_visible(timeout=20_000)
    expect(page.get_by_text("sorted [(0, 'up'), (1, 'down'), (2, 'down')]")).to_be_visible()
    expect(page.get_by_text("boxes [('dog', 15.0)]")).to_be_visible()


@pytest.fixture
def reviews_app(tmp_path):
    """The custom-widget guide's example, served from a copy of its directory."""
    for name in ("reviews.ipynb", "thumbs.py"):
        (tmp_path / name).write_bytes((EXAMPLES / name).read_bytes())
    app = App(tmp_path / "reviews.ipynb")
    yield app
    app.stop()


def test_the_guides_custom_widget_is_a_pool_labeler_in_the_app(browser, reviews_app):
    """examples/reviews.ipynb imports Thumbs from the module beside it, as in Jupyter;
    two labelers each judge all six reviews (overlap 2), three at a time."""
    for verdicts in (["up", "down", "up"], ["up", "down", "down"]):
        page = visit(browser, reviews_app.invite)
        for batch in range(2):
            page.wait_for_url("**/stage/judge")
            page.wait_for_function(READY, timeout=20_000)
            rows = page.locator(".thumbs p")
            expect(rows).to_have_count(3)
            for row, verdict in enumerate(verdicts):
                rows.nth(row).get_by_role("button", name=verdict).click()
                expect(rows.nth(row).get_by_role("button", name=verdict)).to_have_attribute(
                    "aria-pressed", "true"
                )
            if batch == 0:
                screenshot(page, "example-reviews.png")
                status = page.locator(".nbf-submit-status")
                page.get_by_role("button", name="Submit").click()
                # The next batch replaces this one in the same page.
                expect(status).to_have_text("Saved. Here is your next batch.", timeout=20_000)
        page.get_by_role("button", name="Submit").click()
        page.wait_for_url(re.compile(r".*/(stage/tally|waiting.*|done.*)$"), timeout=20_000)
    page.wait_for_url("**/stage/tally", timeout=20_000)
    expect(page.get_by_text("of 6 reviews are thumbs up")).to_be_visible(timeout=20_000)


def test_the_widgets_fit_a_phone_screen_with_buttons_big_enough_to_tap(serve, open_tab):
    tab = open_tab(
        serve(
            "import numpy as np\nimport ipywidgets as widgets\n"
            "from freezer.widgets import BoxEditor, Classify, ImageGrid\n"
            "pictures = [np.full((32, 32), v) for v in range(0, 240, 20)]\n"
            "widgets.VBox([\n"
            "    Classify(['a long note ' * 12], ['keep', 'drop', 'unsure']),\n"
            "    ImageGrid(pictures),\n"
            "    BoxEditor(np.zeros((300, 800)), [(10, 10, 200, 100)], labels=['car', 'bus']),\n"
            "])"
        ),
        viewport={"width": 390, "height": 844},
        is_mobile=True,
        has_touch=True,
    )
    page = tab.page
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways: {width}px wide"
    for button in page.locator(".nbfl-choice, .nbfb-tools button").all():
        assert button.bounding_box()["height"] >= 40
    assert page.locator(".nbfl-tile").first.bounding_box()["width"] >= 44
    screenshot(page, "widgets-phone.png")
