"""The review page in real Chromium: the owner makes a reviewer's link on their page, the
reviewer decides the items the labelers disagreed on with number keys, Enter and the
buttons, and the exports carry the decisions.

The app is started by the real command (`nbfreeze serve`); the labelers label through
the JSON API from their own browser contexts, as a script would.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import nbformat
import pytest
from browser import App, screenshot, visit
from conftest import notebook_from
from playwright.sync_api import expect

WAIT_MS = 20_000
TEXTS = [
    "Thanks, that helped a lot!",
    "Whatever.",
    "This is useless.",
    "Fine, I guess.",
    "Go away.",
]
CELLS = (
    "from freezer.widgets import ChoiceLabeler\n"
    f"items = {{f't{{i}}': text for i, text in enumerate({TEXTS!r})}}",
    "#| stage: tone\n#| input: pool\n#| overlap: 3\n#| batch: 5\n#| review: disagreement\n"
    "#| title: Polite or rude\n"
    "tone = ChoiceLabeler(items, choices=['polite', 'rude', 'unsure'])\ntone",
    "#| stage: report\n#| show: true\nprint(sorted(tone.labels.items()))",
)
# Each labeler's labels of t0..t4: they disagree on t1 and t3.
LABELS = {
    "alice": ["polite", "polite", "rude", "polite", "rude"],
    "bob": ["polite", "rude", "rude", "unsure", "rude"],
    "carol": ["polite", "polite", "rude", "rude", "rude"],
}


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    notebook = tmp_path / "tone.ipynb"
    nbformat.write(notebook_from(CELLS), notebook)
    served = App(notebook)
    yield served
    served.stop()


def api(page, path: str, body: dict | None = None) -> dict:
    """A call of the JSON API with the page's cookies, as its scripts make it."""
    base = urlsplit(page.url)._replace(path=path, query="").geturl()
    if body is None:
        return page.request.get(base).json()
    xsrf = next(c["value"] for c in page.context.cookies() if c["name"] == "_xsrf")
    return page.request.post(base, data=json.dumps(body), headers={"X-XSRFToken": xsrf}).json()


def test_a_reviewer_decides_the_disagreements_with_keys_and_buttons(browser, app):
    for name, labels in LABELS.items():
        labeler = visit(browser, app.invite, name)
        keys = api(labeler, "/api/v1/stages/tone/batch")["items"]
        reply = api(
            labeler,
            "/api/v1/stages/tone/submit",
            {"request_id": name, "labels": dict(zip(keys, labels, strict=True))},
        )
        assert reply["ok"], reply
    owner = visit(browser, app.owner)
    owner.goto(urlsplit(app.owner)._replace(path="/owner", query="").geturl())
    expect(owner.locator("#nbf-stages tr[data-stage='tone'] .nbf-state")).to_have_text(
        "reviewing", timeout=WAIT_MS
    )
    owner.get_by_label("Their name").fill("rita")
    owner.get_by_role("button", name="Make their reviewer link").click()
    expect(owner.locator("#nbf-invite-result")).to_have_text("A reviewer link for rita is ready.")
    reviewer = visit(browser, owner.locator("#nbf-invite-link").input_value())
    errors: list[str] = []
    reviewer.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    reviewer.on("pageerror", lambda error: errors.append(str(error)))
    assert urlsplit(reviewer.url).path == "/review/tone"
    item = reviewer.locator(".nbf-review-item")
    expect(item.get_by_role("heading")).to_have_text("Item t1")
    expect(item.locator(".nbf-review-text")).to_have_text("Whatever.")
    rows = item.locator(".nbf-review-answers tbody tr")
    expect(rows).to_have_text(["alicepolite", "bobrude", "carolpolite"])
    expect(item.locator(".nbf-review-merged")).to_have_text("Merged: polite, probability 0.67")
    submit = reviewer.get_by_role("button", name="Submit decision")
    expect(submit).to_be_disabled()
    reviewer.keyboard.press("2")
    rude = item.get_by_role("button", name="2 rude")
    expect(rude).to_have_attribute("aria-pressed", "true")
    expect(rude).to_be_focused()
    expect(submit).to_be_enabled()
    screenshot(reviewer, "reviewer-review.png")
    reviewer.keyboard.press("Enter")
    expect(item.get_by_role("heading")).to_have_text("Item t3", timeout=WAIT_MS)
    item.get_by_role("button", name="3 unsure").click()
    item.get_by_role("button", name="1 polite").click()
    expect(item.get_by_role("button", name="3 unsure")).to_have_attribute("aria-pressed", "false")
    submit.click()
    reviewer.wait_for_url(lambda url: urlsplit(url).path == "/done", timeout=WAIT_MS)
    assert errors == []
    expect(owner.locator("#nbf-stages tr[data-stage='tone'] .nbf-state")).to_have_text(
        "done", timeout=WAIT_MS
    )
    download = owner.request.get(
        urlsplit(app.owner)._replace(path="/api/v1/stages/tone/labels.jsonl", query="").geturl()
    )
    rows = {r["id"]: r for r in map(json.loads, download.text().splitlines())}
    assert {i: (r["label"], r["review"], r["reviewer_name"]) for i, r in rows.items()} == {
        "t0": ("polite", False, None),
        "t1": ("rude", True, "rita"),
        "t2": ("rude", False, None),
        "t3": ("polite", True, "rita"),
        "t4": ("rude", False, None),
    }
