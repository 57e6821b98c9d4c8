"""What the page's Content-Security-Policy blocks says so where it would have been, and
the serve options that loosen the policy do what they say (docs/security.md)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

IFRAME = (
    "from IPython.display import IFrame\n"
    "print('before')\n"
    "IFrame('https://frames.example.org/map', width=300, height=200)"
)

EVAL = (
    "import anywidget\n"
    "class Plot(anywidget.AnyWidget):\n"
    "    # as regl and other libraries that generate code do\n"
    '    _esm = """export default { render({ el }) {\n'
    "      el.className = 't-plot';\n"
    "      try { el.textContent = 'drawn ' + new Function('return 6 * 7')(); }\n"
    "      catch (error) { el.textContent = 'not drawn'; }\n"
    '    } }"""\n'
    "Plot()"
)


def test_a_blocked_iframe_says_so_in_its_place_and_names_the_serve_option(serve, open_tab):
    tab = open_tab(serve(IFRAME))
    cell = tab.page.locator('.nbf-cell[data-cell="1"]')
    notice = cell.locator(".nbf-notice")
    expect(notice).to_contain_text("https://frames.example.org")
    expect(notice).to_contain_text("--allow-frames https://frames.example.org")
    expect(cell.locator("iframe")).to_have_count(0)
    expect(cell).to_contain_text("before")


def test_an_allowed_frame_origin_is_framed_with_no_notice(serve, open_tab):
    tab = open_tab(serve(IFRAME, allow_frames=("https://frames.example.org",)))
    cell = tab.page.locator('.nbf-cell[data-cell="1"]')
    expect(cell.locator("iframe")).to_have_count(1)
    tab.page.wait_for_timeout(500)  # a violation would have been reported by now
    expect(tab.page.locator(".nbf-notice")).to_have_count(0)


def test_code_that_needs_eval_is_named_in_a_notice_with_the_serve_option(serve, open_tab):
    tab = open_tab(serve(EVAL))
    expect(tab.page.locator(".t-plot")).to_have_text("not drawn")
    notices = tab.page.locator(".nbf-notice", has_text="--allow-eval")
    expect(notices).to_have_count(1)
    expect(notices).to_contain_text("eval")


def test_allow_eval_lets_such_code_run(serve, open_tab):
    tab = open_tab(serve(EVAL, allow_eval=True))
    expect(tab.page.locator(".t-plot")).to_have_text("drawn 42")
    expect(tab.page.locator(".nbf-notice")).to_have_count(0)
    assert tab.errors == []
