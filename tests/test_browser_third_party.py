"""Third-party widgets as a staged app's answers, in Chromium, served by `nbfreeze serve`:
a labeler selects points of a bqplot scatter and draws on an ipycanvas canvas with the
mouse, submits each, and the pages after them print what Python received; after a
restart of the server the same pages print the same (the answers replayed).
"""

from __future__ import annotations

import re

import nbformat
import pytest
from browser import READY, App, visit
from nbformat import v4
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

CELLS = [
    v4.new_code_cell(
        "import bqplot as bq\n"
        "import ipywidgets as widgets\n"
        "import numpy as np\n"
        "from ipycanvas import Canvas"
    ),
    v4.new_markdown_cell("Click the points that look wrong."),
    v4.new_code_cell(
        "#| stage: pick\n"
        "#| input: each\n"
        "x = np.arange(6.0)\n"
        "xs, ys = bq.LinearScale(), bq.LinearScale()\n"
        "dots = bq.Scatter(x=x, y=x ** 2, scales={'x': xs, 'y': ys}, default_size=300,\n"
        "                  interactions={'click': 'select'})\n"
        "fig = bq.Figure(marks=[dots], axes=[bq.Axis(scale=xs)])\n"
        "said = widgets.Label('none yet')\n"
        "said.add_class('t-python')\n"
        "dots.observe(lambda change: setattr(said, 'value', str(change['new'])), 'selected')\n"
        "widgets.VBox([fig, said])"
    ),
    v4.new_code_cell(
        "#| stage: picked\n"
        "#| show: true\n"
        "print('selected', [] if dots.selected is None else [int(i) for i in dots.selected])"
    ),
    v4.new_code_cell(
        "#| stage: draw\n"
        "#| input: each\n"
        "canvas = Canvas(width=120, height=80, sync_image_data=True)\n"
        "canvas.fill_style = 'black'\n"
        "canvas.on_mouse_down(lambda x, y: canvas.fill_rect(int(x), int(y), 10, 10))\n"
        "inked = widgets.Label('0')\n"
        "inked.add_class('t-python')\n"
        "def count(change):\n"
        "    inked.value = str(int((canvas.get_image_data()[:, :, 3] > 0).sum()))\n"
        "canvas.observe(count, 'image_data')\n"
        "widgets.VBox([canvas, inked])"
    ),
    v4.new_code_cell(
        "#| stage: drawn\n"
        "#| show: true\n"
        "print('inked', int((canvas.get_image_data()[:, :, 3] > 0).sum()), 'pixels')"
    ),
]


@pytest.fixture
def notebook(tmp_path):
    path = tmp_path / "third_party.ipynb"
    nbformat.write(v4.new_notebook(cells=CELLS), path)
    return path


def test_a_selection_and_a_drawing_are_answers_that_survive_a_restart(browser, notebook):
    app = App(notebook)
    try:
        page = visit(browser, app.invite)
        page.wait_for_url("**/stage/pick")
        page.wait_for_function(READY, timeout=20_000)
        dots = page.locator(".nbf-widget svg path.dot")
        expect(dots).to_have_count(6)
        dots.nth(2).click(force=True)
        expect(page.locator(".t-python")).to_have_text("[2]")
        dots.nth(4).click(force=True, modifiers=["Control"])
        expect(page.locator(".t-python")).to_have_text("[2 4]")
        page.get_by_role("button", name="Submit").click()

        page.wait_for_url("**/stage/picked")
        expect(page.get_by_text("selected [2, 4]")).to_be_visible(timeout=20_000)
        page.get_by_role("button", name="Continue").click()

        page.wait_for_url("**/stage/draw")
        page.wait_for_function(READY, timeout=20_000)
        canvas = page.locator(".nbf-widget canvas").first
        expect(canvas).to_be_visible()
        box = canvas.bounding_box()
        page.mouse.click(box["x"] + 10, box["y"] + 10)
        page.mouse.click(box["x"] + 80, box["y"] + 50)
        # Python has the pixels once the canvas synced them back: two squares of ink
        # (the canvas may be drawn scaled, so a square's edge may fall outside it).
        page.wait_for_function(
            "() => Number(document.querySelector('.t-python').textContent) > 100",
            timeout=20_000,
        )
        inked = page.locator(".t-python").inner_text()
        page.get_by_role("button", name="Submit").click()
        page.wait_for_url("**/stage/drawn")
        expect(page.get_by_text(f"inked {inked} pixels")).to_be_visible(timeout=20_000)
        base = page.url.split("/stage/")[0]
    finally:
        app.stop()

    app = App(notebook, port=app.port)
    try:
        page.goto(f"{base}/stage/picked")
        expect(page.get_by_text("selected [2, 4]")).to_be_visible(timeout=20_000)
        page.goto(f"{base}/stage/drawn")
        expect(page.get_by_text(f"inked {inked} pixels")).to_be_visible(timeout=20_000)
        page.goto(f"{base}/stage/pick")  # the selection is back on the page
        page.wait_for_function(READY, timeout=20_000)
        expect(page.locator(".nbf-widget svg path.dot")).to_have_count(6)
        assert re.search(r"[Yy]ou answered", page.locator(".nbf-submit-status").inner_text())
    finally:
        app.stop()
