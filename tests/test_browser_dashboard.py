"""The owner's dashboard in real Chromium: its bars and charts show the labels as they
come in, without a reload, and every chart says its numbers in words.

The app is started by the real command (`nbfreeze serve`), as an author would.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import nbformat
import pytest
from browser import READY, SCREENSHOTS, App, screenshot, visit
from conftest import notebook_from
from playwright.sync_api import expect

WAIT_MS = 20_000
CELLS = (
    "from freezer.widgets import ChoiceLabeler\nitems = {f't{i}': f'text {i}' for i in range(6)}",
    "#| stage: label\n#| input: pool\n#| overlap: 2\n#| batch: 3\n#| title: Good or bad\n"
    "labeler = ChoiceLabeler(items, choices=['good', 'bad'])\nlabeler",
    "#| stage: report\n#| show: true\nprint('merged', sorted(labeler.labels.items()))",
)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    notebook = tmp_path / "sort.ipynb"
    nbformat.write(notebook_from(CELLS), notebook)
    served = App(notebook)
    yield served
    served.stop()


def label_and_submit(page, answers: list[str]) -> None:
    cards = page.locator(".widget-toggle-buttons:visible")
    for number, answer in enumerate(answers):
        cards.nth(number).get_by_role("button", name=answer, exact=True).click()
    page.get_by_text(f"{len(answers)} of {len(answers)} labeled").wait_for()
    page.get_by_role("button", name="Submit").click()
    page.locator(".nbf-you", has_text="You: 3 labeled").wait_for(timeout=WAIT_MS)


def test_the_dashboard_draws_progress_pace_and_agreement_as_labels_come_in(browser, app):
    owner = visit(browser, app.owner)
    errors: list[str] = []
    owner.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    owner.on("pageerror", lambda error: errors.append(str(error)))
    owner.goto(urlsplit(app.owner)._replace(path="/owner", query="").geturl())
    card = owner.locator("section.nbf-pool[data-stage='label']")
    items = card.get_by_role("img", name="Items complete", exact=False)
    labels = card.get_by_role("img", name="Labels given", exact=False)
    expect(items).to_have_attribute("aria-label", "Items complete: 0 of 6 items (0%)")
    expect(labels).to_have_attribute("aria-label", "Labels given: 0 of 12 labels (0%)")
    expect(card.locator(".nbf-pace")).to_have_text(
        "No labels in the last 10 minutes: no pace to estimate the time left from."
    )

    # Both open the pool first, so both hold the first three items (overlap 2).
    alice, bob = visit(browser, app.invite), visit(browser, app.invite)
    for page in (alice, bob):
        page.wait_for_url("**/stage/label")
        page.wait_for_function(READY, timeout=WAIT_MS)
    label_and_submit(alice, ["good", "good", "bad"])

    # The owner's page follows by itself.
    expect(labels).to_have_attribute(
        "aria-label", "Labels given: 3 of 12 labels (25%)", timeout=WAIT_MS
    )
    assert labels.locator(".nbf-chart-fill").get_attribute("width") == "34.50"  # of 138
    assert items.locator(".nbf-chart-fill").get_attribute("width") == "0.00"
    expect(card.locator(".nbf-pace")).to_have_text(
        "0.3 labels per minute over the last 10 minutes; about 30 minutes left at that pace."
    )
    bars = card.locator("svg.nbf-timeline rect")
    assert bars.count() == 30
    assert sum(int(bars.nth(i).get_attribute("data-count")) for i in range(30)) == 3
    pairwise = card.get_by_role("img", name="Pairwise agreement", exact=False)
    expect(pairwise).to_have_attribute(
        "aria-label", "Pairwise agreement: no item has two labels yet"
    )

    label_and_submit(bob, ["good", "bad", "bad"])
    expect(items).to_have_attribute(
        "aria-label", "Items complete: 3 of 6 items (50%)", timeout=WAIT_MS
    )
    assert items.locator(".nbf-chart-fill").get_attribute("width") == "69.00"
    expect(labels).to_have_attribute("aria-label", "Labels given: 6 of 12 labels (50%)")
    counts = [int(bars.nth(i).get_attribute("data-count")) for i in range(30)]
    assert sum(counts) == 6
    assert "6 in all" in card.locator("svg.nbf-timeline").get_attribute("aria-label")
    # Two of the three items got the same label twice; alpha by hand is 1 - 5 * 2 / 18.
    expect(pairwise).to_have_attribute(
        "aria-label", "Pairwise agreement: 67% of pairs of labels of the same item are equal"
    )
    assert pairwise.locator(".nbf-chart-fill").get_attribute("width") == "92.00"
    alpha = card.get_by_role("img", name="Krippendorff’s alpha", exact=False)
    assert alpha.get_attribute("aria-label").startswith("Krippendorff’s alpha: 0.44 ")
    # Chance-corrected: Fleiss' kappa (2/3 observed, 1/2 by chance) and Cohen's kappa of
    # the one pair (2/3 observed, 4/9 by chance), by hand.
    full = card.get_by_role("img", name=re.compile("^Full agreement"))
    expect(full).to_have_attribute(
        "aria-label",
        "Full agreement: every label the same on 67% of the items labeled twice or more",
    )
    fleiss = card.get_by_role("img", name="Fleiss’ kappa", exact=False)
    assert fleiss.get_attribute("aria-label").startswith("Fleiss’ kappa: 0.33 ")
    grid = card.locator("svg.nbf-kappa-grid rect")
    expect(grid).to_have_count(1)
    assert grid.get_attribute("data-kappa") == "0.400"
    paces = card.locator(".nbf-quality-labelers tbody tr")
    expect(paces).to_have_count(2)
    for number in range(2):
        expect(paces.nth(number).locator(".nbf-labeler-kappa > span")).to_have_text("0.40")
    rows = owner.locator("#nbf-labelers tbody tr")
    expect(rows).to_have_count(2)
    for number in range(2):
        expect(rows.nth(number).locator(".nbf-labeler-agreement > span")).to_have_text(
            "67% on 3 items"
        )
    expect(owner.locator("tr[data-stage='label'] .nbf-progress")).to_have_text(
        "3 of 6 items complete, 6 of 12 labels"
    )
    screenshot(owner, "owner-dashboard.png")
    element_screenshot(card.locator(".nbf-quality"), "owner-quality.png")

    # The stage's downloads hand over files named after it; no COCO, it is not boxes.
    row = owner.locator("tr[data-stage='label']")
    expect(row.get_by_role("link", name="COCO")).to_have_count(0)
    with owner.expect_download() as info:
        row.get_by_role("link", name="JSON Lines").click()
    assert info.value.suggested_filename == "label-labels.jsonl"
    items_given = [json.loads(line) for line in Path(info.value.path()).read_text().splitlines()]
    assert sorted(len(item["annotations"]) for item in items_given) == [2, 2, 2]
    with owner.expect_download() as info:
        row.get_by_role("link", name="Hugging Face dataset").click()
    assert info.value.suggested_filename == "label-labels.hf.zip"
    assert errors == []  # nothing the policy refused, no script error


GOLD_CELLS = (
    "from freezer.widgets import ChoiceLabeler\nitems = {f't{i}': f'text {i}' for i in range(6)}"
    "\nknown = {'t0': 'good', 't1': 'good'}",
    # Half of each batch gold: each labeler's batch of 4 is both gold items and two more.
    "#| stage: label\n#| input: pool\n#| overlap: 3\n#| batch: 4\n#| gold: known\n"
    "#| gold_rate: 0.5\n#| title: Good or bad\n"
    "labeler = ChoiceLabeler(items, choices=['good', 'bad'])\nlabeler",
    "#| stage: report\n#| show: true\nprint('merged', sorted(labeler.labels.items()))",
)


@pytest.fixture
def gold_app(tmp_path: Path) -> Iterator[App]:
    notebook = tmp_path / "gold.ipynb"
    nbformat.write(notebook_from(GOLD_CELLS), notebook)
    served = App(notebook)
    yield served
    served.stop()


def label_batch_by_api(page, label: str) -> None:
    """Every item the labeler is handed, given `label`, through the API their page uses:
    their page holds a batch ahead, so the gold items may be in either batch."""
    base = urlsplit(page.url)._replace(path="", query="").geturl()
    xsrf = next(c["value"] for c in page.context.cookies() if c["name"] == "_xsrf")
    for turn in range(3):
        batch = page.request.get(f"{base}/api/v1/stages/label/batch").json()["items"]
        if not batch:
            return
        assert len(batch) <= 4, batch
        answer = page.request.post(
            f"{base}/api/v1/stages/label/submit",
            data=json.dumps(
                {"request_id": f"r-{label}-{turn}", "labels": dict.fromkeys(batch, label)}
            ),
            headers={"X-XSRFToken": xsrf, "Content-Type": "application/json"},
        )
        assert answer.ok, answer.text()
    raise AssertionError("a labeler of six items was handed more than two batches")


def element_screenshot(locator, name: str) -> None:
    """Save one block of the page to docs/screenshots/ when NBFREEZE_SCREENSHOTS=1."""
    if os.environ.get("NBFREEZE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        locator.screenshot(path=str(SCREENSHOTS / name), animations="disabled")


def test_the_gold_block_shows_accuracy_and_the_floor_control_leaves_a_labeler_out(
    browser, gold_app
):
    owner = visit(browser, gold_app.owner)
    errors: list[str] = []
    owner.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    owner.on("pageerror", lambda error: errors.append(str(error)))
    owner.goto(urlsplit(gold_app.owner)._replace(path="/owner", query="").geturl())
    gold = owner.locator("section.nbf-gold-pool[data-stage='label']")
    expect(gold.locator(".nbf-hint")).to_have_text(
        "Nobody has labeled a gold item yet.", timeout=WAIT_MS
    )
    expect(gold.locator(".nbf-gold-floor-text")).to_have_text(
        "No floor: every labeler counts. 2 gold items."
    )

    alice, bob = visit(browser, gold_app.invite, "alice"), visit(browser, gold_app.invite, "bob")
    label_batch_by_api(alice, "bad")  # both gold items wrong
    label_batch_by_api(bob, "good")  # both right

    rows = gold.locator(".nbf-gold-labelers tbody tr")
    expect(rows).to_have_count(2, timeout=WAIT_MS)
    sloppy, careful = rows.nth(0), rows.nth(1)
    expect(sloppy.locator("td").nth(0)).to_have_text("alice")
    expect(sloppy.locator("td").nth(1)).to_have_text("0 of 2")
    expect(careful.locator("td").nth(1)).to_have_text("2 of 2")
    # 2 of 2 right: the Wilson interval is 34% to 100%; 0 of 2, 0% to 66%.
    expect(careful.get_by_role("img")).to_have_attribute(
        "aria-label", "bob: 100% right on gold (2 of 2), 95% interval 34% to 100%"
    )
    expect(sloppy.get_by_role("img")).to_have_attribute(
        "aria-label", "alice: 0% right on gold (0 of 2), 95% interval 0% to 66%"
    )
    line = careful.locator("line.nbf-gold-interval")
    assert float(line.get_attribute("x1")) == pytest.approx(1 + 0.342 * 158, abs=0.2)
    assert line.get_attribute("x2") == "159.00"
    expect(sloppy.locator(".nbf-gold-status")).to_have_text("counted")

    floor = gold.get_by_label("Accuracy floor (a share from 0 to 1)")
    floor.fill("0.5")
    gold.get_by_role("button", name="Set floor").click()
    expect(gold.locator("output")).to_have_text("Floor set to 50%: labelers under it are left out.")
    expect(sloppy.locator(".nbf-gold-status")).to_have_text("left out", timeout=WAIT_MS)
    expect(careful.locator(".nbf-gold-status")).to_have_text("counted")
    expect(gold.locator(".nbf-gold-floor-text")).to_have_text(
        "Floor 50%: 1 labeler left out of the merge. 2 gold items."
    )
    assert careful.locator("line.nbf-gold-floor").get_attribute("x1") == "80.00"
    expect(owner.locator("#nbf-preview")).to_contain_text("merged", timeout=WAIT_MS)

    # A floor above 1 is not sent: the field says it is out of range, the floor stays.
    floor.fill("1.5")
    gold.get_by_role("button", name="Set floor").click()
    assert floor.evaluate("input => input.validity.rangeOverflow") is True
    owner.reload()
    expect(gold.locator(".nbf-gold-floor-text")).to_have_text(
        "Floor 50%: 1 labeler left out of the merge. 2 gold items.", timeout=WAIT_MS
    )
    expect(sloppy.locator(".nbf-gold-status")).to_have_text("left out")
    element_screenshot(owner.locator(".nbf-gold-section"), "owner-gold.png")

    gold.get_by_role("button", name="Clear floor").click()
    expect(gold.locator("output")).to_have_text("No floor: every labeler counts.")
    expect(sloppy.locator(".nbf-gold-status")).to_have_text("counted", timeout=WAIT_MS)
    expect(gold.locator(".nbf-gold-floor-text")).to_have_text(
        "No floor: every labeler counts. 2 gold items."
    )
    assert sloppy.locator("line.nbf-gold-floor").count() == 0
    assert errors == []
