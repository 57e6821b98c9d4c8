"""Each example's first screen in real Chromium, served by `nbfreeze serve` as a new user
serves it: the widget drawn and working, and the screenshot docs/examples.md shows."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from browser import READY, App, screenshot, visit
from playwright.sync_api import expect

pytestmark = pytest.mark.browser
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def served(tmp_path: Path, name: str) -> App:
    shutil.copy(EXAMPLES / name, tmp_path / name)
    return App(tmp_path / name)


def test_the_survey_is_a_form_of_standard_widgets_answered_page_by_page(browser, tmp_path):
    app = served(tmp_path, "survey.ipynb")
    try:
        page = visit(browser, app.invite, name="Dana")
        page.wait_for_url("**/stage/about")
        page.wait_for_function(READY, timeout=20_000)
        role = page.get_by_role("combobox", name="Role")
        expect(role).to_be_visible()
        screenshot(page, "example-survey.png")
        role.select_option("Analyst")
        page.get_by_role("button", name="Submit").click()
        page.wait_for_url("**/stage/tools")
        page.wait_for_function(READY, timeout=20_000)
        # The second page's choices follow from the first page's answer.
        expect(page.get_by_role("option", name="Spreadsheets")).to_be_visible()
        page.get_by_role("option", name="SQL").click()
        page.get_by_role("button", name="very").click()
        page.get_by_role("button", name="Submit").click()
        page.wait_for_url("**/stage/thanks")
        expect(page.get_by_text("As a analyst of 3 years you use SQL,")).to_be_visible(
            timeout=20_000
        )
        expect(page.get_by_text("and you are very happy with them.")).to_be_visible()
    finally:
        app.stop()


def test_the_outlier_example_labels_with_bqplots_own_scatter(browser, tmp_path):
    app = served(tmp_path, "outliers.ipynb")
    try:
        page = visit(browser, app.invite)
        page.wait_for_url("**/stage/flag")
        page.wait_for_function(READY, timeout=20_000)
        dots = page.locator("svg .dot")
        expect(dots).to_have_count(16, timeout=20_000)
        # A brush dragged across reading h05, one of the glitches, selects it alone.
        box = dots.nth(5).bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.mouse.move(x - 6, y - 6)
        page.mouse.down()
        page.mouse.move(x + 6, y + 6, steps=5)
        page.mouse.up()
        expect(dots.nth(5)).to_have_css("fill", "rgb(255, 69, 0)")  # orangered: selected
        screenshot(page, "example-outliers.png")
        status = page.locator(".nbf-submit-status")
        page.get_by_role("button", name="Submit").click()
        expect(status).to_have_text("Saved. Here is your next batch.", timeout=20_000)
        expect(dots).to_have_count(16)
    finally:
        app.stop()
    database = next(tmp_path.rglob("*.sqlite"))
    with sqlite3.connect(database) as connection:
        given = dict(
            connection.execute(
                "SELECT item_key, label FROM annotations WHERE stage = 'flag'"
            ).fetchall()
        )
    assert len(given) == 16 and given['"h05"'] == "outlier"
    assert sorted(set(given.values())) == ["fine", "outlier"]
    assert [key for key, label in given.items() if label == "outlier"] == ['"h05"']


def test_the_coins_example_names_the_detectors_boxes_in_box_editor(browser, tmp_path):
    app = served(tmp_path, "coins.ipynb")
    try:
        page = visit(browser, app.invite)
        page.wait_for_url("**/stage/name")
        page.wait_for_function(READY, timeout=20_000)
        expect(page.locator("img.nbfb-image")).to_be_visible()
        # The batch's eight boxes are the labeler's to name; the rest show faintly.
        expect(page.locator(".nbfb-box")).to_have_count(24)
        screenshot(page, "example-coins.png")
        page.get_by_role("button", name="Submit").click()
        expect(page.locator(".nbf-submit-status")).to_have_text(
            "Saved. Here is your next batch.", timeout=20_000
        )
    finally:
        app.stop()
