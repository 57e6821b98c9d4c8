"""`Classify` and `ChoiceLabeler` in Voilà, a real Jupyter front end, in real Chromium.

The stock labelers are one ES module (`freezer/widgets/static/labeling.js`) that must
behave the same in Jupyter as in the frozen app: here Voilà serves a notebook showing a
`Classify`, and a click on a choice, a number key and `u` (undo) must reach Python's
`labels`, which the notebook echoes into a Label on the page. `ChoiceLabeler`'s keys
(`static/choice.js`, beside its standard ToggleButtons) are checked the same way, Enter
reaching `on_submit`, and so is the custom-widget guide's example (`examples/thumbs.py`).
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nbformat
import pytest
from browser import ECHO, python_sees
from nbformat import v4
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

VOILA = Path(sys.executable).parent / "voila"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
START_TIMEOUT_S = 60
WIDGET_TIMEOUT_MS = 60_000
# Voilà's template links Font Awesome from this CDN: offline, its loads fail, harmlessly.
CDN = "https://cdn.jsdelivr.net/"

CLASSIFY = ECHO + (
    "from freezer.widgets import Classify\n"
    "sorter = Classify(['first note', 'second note', 'third note'], ['spam', 'ham'])\n"
    "sorter.observe(report, names='labels')\n"
    "widgets.VBox([sorter, echo])"
)
CHOICE = ECHO + (
    "from freezer.widgets import ChoiceLabeler\n"
    "labeler = ChoiceLabeler(['first', 'second', 'third'], ['keep', 'drop'])\n"
    "labeler.observe(report, names='labels')\n"
    "sent = widgets.Label()\n"
    "sent.add_class('t-submitted')\n"
    "labeler.on_submit(lambda w: setattr(sent, 'value', f'submitted {len(w.labels)}'))\n"
    "widgets.VBox([labeler, echo, sent])"
)
THUMBS = ECHO + (
    "from thumbs import Thumbs\n"
    "judge = Thumbs(['great', 'awful'])\n"
    "judge.observe(report, names='labels')\n"
    "widgets.VBox([judge, echo])"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving(notebook: Path) -> Iterator[str]:
    """Serve `notebook` with Voilà from its directory; yield its URL, then stop Voilà."""
    port = free_port()
    log = (notebook.parent / "voila.log").open("w")
    process = subprocess.Popen(
        [str(VOILA), notebook.name, "--no-browser", "--port", str(port), "--Voila.ip=127.0.0.1"],
        cwd=notebook.parent,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert process.poll() is None, Path(log.name).read_text()
            assert time.monotonic() < deadline, Path(log.name).read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/"
    finally:
        # SIGTERM lets Voilà shut its kernels down; they run in sessions of their own.
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


@pytest.fixture
def voila_url(request, tmp_path: Path) -> Iterator[str]:
    """The URL of a one-cell notebook (the test's parameter) served by Voilà, with the
    examples' `thumbs.py` beside it."""
    if importlib.util.find_spec("voila") is None:
        if os.environ.get("CI"):
            pytest.fail("voila is not installed under CI")
        pytest.skip("voila is not installed")
    notebook = tmp_path / "widget.ipynb"
    nbformat.write(v4.new_notebook(cells=[v4.new_code_cell(request.param)]), notebook)
    (tmp_path / "thumbs.py").write_bytes((EXAMPLES / "thumbs.py").read_bytes())
    with serving(notebook) as url:
        yield url


def page_error(message) -> bool:
    """A console error of the page, not a failed load from Voilà's CDN."""
    return message.type == "error" and not message.location["url"].startswith(CDN)


@contextmanager
def voila_page(browser, url: str) -> Iterator:
    """A page of Voilà's, failing the test on any error of its own."""
    context = browser.new_context(viewport={"width": 900, "height": 700})
    errors: list[str] = []
    try:
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
        page.on("console", lambda m: errors.append(m.text) if page_error(m) else None)
        page.goto(url, timeout=WIDGET_TIMEOUT_MS)
        yield page
        assert errors == []
    finally:
        context.close()


@pytest.mark.parametrize("voila_url", [CLASSIFY], indirect=True)
def test_classify_in_voila_sends_clicks_and_keys_to_python(browser, voila_url):
    with voila_page(browser, voila_url) as page:
        ham = page.get_by_role("button", name="ham", exact=True)
        expect(ham).to_be_visible(timeout=WIDGET_TIMEOUT_MS)
        expect(page.locator(".nbfl-text")).to_have_text("first note")

        ham.click()
        python_sees(page, {"0": "ham"})
        expect(page.locator(".nbfl-text")).to_have_text("second note")

        page.locator(".nbfl-classify").focus()
        page.keyboard.press("2")
        python_sees(page, {"0": "ham", "1": "ham"})
        expect(page.locator(".nbfl-text")).to_have_text("third note")
        page.keyboard.press("u")
        python_sees(page, {"0": "ham"})
        expect(page.locator(".nbfl-text")).to_have_text("second note")
        expect(ham).to_have_attribute("aria-pressed", "false")


@pytest.mark.parametrize("voila_url", [CHOICE], indirect=True)
def test_choice_labeler_in_voila_has_its_keys_and_enter_reaches_on_submit(browser, voila_url):
    """ChoiceLabeler is standard ToggleButtons plus its keyboard view (choice.js), which
    finds the cards around it in Jupyter's page as in the app's."""
    with voila_page(browser, voila_url) as page:
        cards = page.locator(".nbfc-card")
        expect(cards).to_have_count(3, timeout=WIDGET_TIMEOUT_MS)
        cards.nth(0).focus()
        page.keyboard.press("2")
        python_sees(page, {"0": "drop"})
        expect(cards.nth(1)).to_be_focused()
        page.keyboard.press("ArrowRight")
        page.keyboard.press("1")
        python_sees(page, {"0": "drop", "2": "keep"})
        page.keyboard.press("u")
        python_sees(page, {"0": "drop"})
        expect(cards.nth(2)).to_be_focused()
        page.keyboard.press("?")
        keys = page.get_by_role("dialog", name="Keys for labeling items")
        expect(keys).to_be_visible()
        page.keyboard.press("Escape")
        expect(keys).to_be_hidden()
        expect(cards.nth(2)).to_be_focused()
        page.keyboard.press("Enter")
        expect(page.locator(".t-submitted")).to_have_text("submitted 1")


@pytest.mark.parametrize("voila_url", [THUMBS], indirect=True)
def test_the_guides_custom_widget_works_in_voila(browser, voila_url):
    with voila_page(browser, voila_url) as page:
        down = page.get_by_role("button", name="down").nth(1)
        expect(down).to_be_visible(timeout=WIDGET_TIMEOUT_MS)
        down.click()
        python_sees(page, {"1": "down"})
        expect(down).to_have_attribute("aria-pressed", "true")
