"""The ipywidgets documentation notebooks, served and opened in Chromium.

Each notebook of ../shared/peers/ipywidgets is built from where it lies (never copied or
changed), served, and opened: its widgets must be on the page, rendered by the official
front end, and whatever it cannot do here must be said on the page in words (a missing
library is a cell error naming it). The page's own code must log no error.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from browser import screenshot
from peers import PEERS
from playwright.sync_api import Page, expect

from freezer.bundle import build_bundle

pytestmark = pytest.mark.browser

VIEWPORT = {"width": 1100, "height": 800}  # as the other pages' screenshots
NOTEBOOKS = sorted(p.name for p in PEERS.glob("*.ipynb")) if PEERS.is_dir() else []

# Console errors that are not our code's: a Markdown image by relative path (not
# served, docs/runtime.md), and an embedded YouTube video, which the page's
# Content-Security-Policy refuses to frame (nothing is fetched from outside).
MARKDOWN_IMAGE = "Failed to load resource: the server responded with a status of 404"
REFUSED = "nbfreeze: the server refused a message"
YOUTUBE_FRAME = "Framing 'https://www.youtube.com/' violates the following Content Security"


def missing(module: str, cell: int) -> str:
    return f"cell {cell}, line 1: ModuleNotFoundError: No module named '{module}'"


def images(at_least: int) -> Callable[[Page], None]:
    """Plots (matplotlib's PNGs) are on the page, decoded."""

    def check(page: Page) -> None:
        drawn = page.locator(".nbf-cell img")
        expect(drawn.nth(at_least - 1)).to_be_visible()
        for img in drawn.all():
            assert img.evaluate("(img) => img.complete && img.naturalWidth > 0")

    return check


def widget_list(page: Page) -> None:
    # Every control of the list, each by the class its official view gives it.
    for css in (
        "widget-hslider", "widget-vslider", "widget-hprogress", "widget-text",
        "widget-toggle-button", "widget-checkbox", "widget-valid", "widget-dropdown",
        "widget-radio", "widget-select", "widget-select-multiple", "widget-toggle-buttons",
        "widget-textarea", "widget-label", "widget-html", "widget-htmlmath", "widget-image",
        "widget-button", "widget-play", "jupyter-widget-tagsinput", "widget-datepicker",
        "widget-timepicker", "widget-datetimepicker", "widget-colorpicker", "widget-upload",
        "widget-controller", "widget-box", "widget-hbox", "widget-vbox", "widget-gridbox",
        "widget-accordion", "widget-tab",
    ):  # fmt: skip
        expect(page.locator(f".{css}").first).to_be_visible()
    # Cells after the one that shows the Tab change it: `tab.selected_index = 3`.
    expect(page.locator(".widget-tab .lm-TabBar-tab.lm-mod-current").first).to_have_text("3")
    expect(page.locator(".widget-image")).to_have_js_property("complete", True)
    screenshot(page, "widget-list.png")


def using_interact(page: Page) -> None:
    screenshot(page, "interact.png")
    # Type annotations choose the widget: `x: float` a FloatText, an Enum a Dropdown.
    annotated = page.locator(".widget-interact").filter(has_text="Color")
    expect(annotated.locator("select")).to_have_value("red")
    first = page.locator(".widget-interact").first
    expect(first.locator(".widget-output")).to_have_text("10")
    first.locator(".noUi-handle").focus()
    page.keyboard.press("ArrowRight")
    expect(first.locator(".widget-output")).to_have_text("11")


def bqplot_figures(page: Page) -> None:
    # The app layouts hold bqplot figures (one beside linked sliders, a 5 x 5 grid of them
    # in a GridspecLayout): each draws its SVG with its marks, and no child view fails.
    figures = page.locator(".bqplot.figure")
    expect(figures.first).to_be_visible()
    assert figures.count() >= 26
    for figure in figures.all():  # bars (Bars, Hist) or dots (Scatter)
        expect(figure.locator("svg rect.bar, svg rect.rect, svg path.dot").first).to_be_attached()
    assert page.locator(".jupyter-widgets-error-widget").count() == 0


def output_widget(page: Page) -> None:
    outputs = page.locator(".nbf-cell > .nbf-widget > .widget-output")
    # `with out:` captured printed lines, a YouTube video (not framed: a notice says so
    # in its place) and a slider.
    expect(outputs.first).to_contain_text("9 Hello world!")
    expect(outputs.first).to_contain_text("This frame of https://www.youtube.com is blocked")
    expect(outputs.first.locator(".widget-hslider")).to_be_visible()
    # The notebook's logging handler writes into an Output widget, traceback and all.
    expect(outputs.nth(3)).to_contain_text("[INFO] Starting program")
    # A thread the notebook started appends to an Output; that reaches the page too.
    expect(outputs.last).to_contain_text("4 ******** some text")
    expect(outputs.last.locator("em")).to_have_text("All done!")


@dataclass(frozen=True)
class Expected:
    widgets: int  # top-level widgets rendered, at least
    errors: tuple[str, ...] = ()  # the cell errors the page shows, in order
    console: tuple[str, ...] = ()  # console errors that are expected (not our code's)
    check: Callable[[Page], None] | None = None
    notices: tuple[str, ...] = ()  # how what the page says it cannot show starts


EXPECTED = {
    "Beat Frequencies.ipynb": Expected(widgets=1, check=images(1)),
    # networkx is installed (scikit-image, an example's dependency, needs it): its plot shows.
    "Exploring Graphs.ipynb": Expected(widgets=1, check=images(1)),
    "Factoring.ipynb": Expected(
        widgets=1,
        errors=(
            missing("sympy", 5),
            "cell 6, line 1: NameError: name 'Symbol' is not defined",
            "cell 7, line 2: NameError: name 'Eq' is not defined",
        ),
    ),
    "Image Browser.ipynb": Expected(widgets=1, check=images(1)),
    # bqplot is installed (a test dependency): its figures draw from its own front end.
    # Its sliders are linked in the page to scales whose bounds start as None, which
    # the sliders' traits refuse (a kernel refuses them too, in its log).
    "Layout Templates.ipynb": Expected(
        widgets=22,
        # The refusals, logged by our page: jslinks from a bqplot scale whose min and max
        # are None set its sliders to None, which the server refuses, as a kernel does.
        console=(MARKDOWN_IMAGE, REFUSED),
        check=bqplot_figures,
        notices=tuple(
            f"FloatSlider.{trait} refused the value" for trait in ("max", "min", "value")
        ),
    ),
    "Lorenz Differential Equations.ipynb": Expected(widgets=1, check=images(4)),
    "Output Widget.ipynb": Expected(
        widgets=7,
        console=(YOUTUBE_FRAME,),
        check=output_widget,
        notices=("This frame of https://www.youtube.com is blocked",),
    ),
    "Using Interact.ipynb": Expected(widgets=28, check=using_interact),
    "Widget Asynchronous.ipynb": Expected(
        widgets=3,
        errors=(r"cell 11, line 10: RuntimeError: There is no current event loop",),
    ),
    "Widget Basics.ipynb": Expected(widgets=5, console=(MARKDOWN_IMAGE,)),
    "Widget Events.ipynb": Expected(widgets=21),
    "Widget List.ipynb": Expected(widgets=50, check=widget_list),
    "Widget Styling.ipynb": Expected(widgets=5),
}


@pytest.mark.skipif(not NOTEBOOKS, reason=f"no peer notebooks in {PEERS}")
def test_every_peer_notebook_has_its_expectations():
    assert sorted(EXPECTED) == NOTEBOOKS


# Widget Asynchronous starts a thread that outlives its session: once the session's
# namespace is dropped, the thread fails on its next global name. And its coroutine is
# never awaited, as cells have no event loop (its cell error says so).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
@pytest.mark.filterwarnings("ignore:coroutine 'f' was never awaited:RuntimeWarning")
@pytest.mark.skipif(not NOTEBOOKS, reason=f"no peer notebooks in {PEERS}")
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_a_peer_notebook_shows_its_widgets_or_says_what_it_cannot(
    name, tmp_path, monkeypatch, serve, open_tab
):
    expected = EXPECTED[name]
    monkeypatch.chdir(PEERS)  # the notebooks read their images relative to themselves
    bundle_dir = build_bundle(PEERS / name, tmp_path / "bundle")
    tab = open_tab(serve(bundle=bundle_dir), viewport=VIEWPORT)
    page = tab.page

    shown = page.locator(".nbf-cell > .nbf-widget > .jupyter-widgets")
    assert shown.count() >= expected.widgets
    assert page.locator(".nbf-widget > .nbf-error").count() == 0  # no widget failed to show
    errors = page.locator(".nbf-cell > .nbf-error").all_inner_texts()
    assert len(errors) == len(expected.errors), errors
    for text, pattern in zip(errors, expected.errors, strict=True):
        assert re.match(rf"{re.escape(name)}, {pattern}", text), text
    assert 'File "/' not in page.locator("body").inner_text()  # no server traceback
    notices = page.locator(".nbf-notice").all_inner_texts()  # as many as the page's timing
    assert bool(notices) == bool(expected.notices), notices
    assert all(text.startswith(expected.notices) for text in notices), notices

    if expected.check is not None:
        expected.check(page)
    ours = [e for e in tab.errors if not any(e.startswith(c) for c in expected.console)]
    assert ours == []
    if expected.console:
        assert tab.errors, f"the expected console errors of {name} are gone: update EXPECTED"


@pytest.mark.skipif("Output Widget.ipynb" not in NOTEBOOKS, reason="no Output Widget notebook")
def test_a_notebooks_logging_handler_gets_only_its_own_visitors_records(
    tmp_path, monkeypatch, serve, open_tab
):
    monkeypatch.chdir(PEERS)
    server = serve(bundle=build_bundle(PEERS / "Output Widget.ipynb", tmp_path / "bundle"))
    first, second = open_tab(server).page, open_tab(server).page
    logs = [p.locator(".nbf-cell > .nbf-widget > .widget-output").nth(3) for p in (first, second)]
    expect(logs[1]).to_contain_text("Starting program")
    for log in logs:
        assert log.inner_text().count("Starting program") == 1
