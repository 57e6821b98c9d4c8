"""ipympl in Chromium: `%matplotlib widget` gives each visitor ipympl's interactive
figure (its canvas and toolbar, drawn by jupyter-matplotlib, the front end pip installed
under `share/jupyter/labextensions`), and what a person does on it (a click, a zoom or
a pan from the toolbar) reaches the figure in Python.

The figure is 500 x 400 pixels with its axes from 10% to 90% of each side and both axes'
limits 0 to 10, so a point of the canvas is a known point of the data: (x, y) pixels
from the canvas's top left corner are data (x - 50) / 40, (360 - y) / 32.
"""

from __future__ import annotations

import pytest
from browser import screenshot
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

ECHO = (
    "import ipywidgets as widgets\n"
    "clicked = widgets.Label('no click yet')\n"
    "clicked.add_class('t-clicked')\n"
    "limits = widgets.Label('0.0-10.0, 0.0-10.0')\n"
    "limits.add_class('t-limits')\n"
    "widgets.VBox([clicked, limits])"
)
FIGURE = (
    "fig, ax = plt.subplots(figsize=(5, 4), dpi=100)\n"
    "fig.subplots_adjust(left=0.1, right=0.9, bottom=0.1, top=0.9)\n"
    "ax.plot([0, 10], [0, 10], color='red', linewidth=3)\n"
    "ax.set_xlim(0, 10)\n"
    "ax.set_ylim(0, 10)\n"
    "def on_click(event):\n"
    "    clicked.value = f'clicked at {event.xdata:.1f}, {event.ydata:.1f}'\n"
    "fig.canvas.mpl_connect('button_press_event', on_click)\n"
    "def on_limits(axes):\n"
    "    (x0, x1), (y0, y1) = axes.get_xlim(), axes.get_ylim()\n"
    "    limits.value = f'{x0:.1f}-{x1:.1f}, {y0:.1f}-{y1:.1f}'\n"
    "ax.callbacks.connect('xlim_changed', on_limits)\n"
    "ax.callbacks.connect('ylim_changed', on_limits)\n"
    "plt.show()"
)
CELLS = (ECHO, "%matplotlib widget\nimport matplotlib.pyplot as plt", FIGURE)


def red_pixels(page) -> int:
    """How many pixels of the figure's image canvas are the line's red."""
    return page.evaluate(
        """() => {
            const canvas = document.querySelector('.jupyter-matplotlib-canvas-div canvas');
            const { data } = canvas.getContext('2d').getImageData(
                0, 0, canvas.width, canvas.height);
            let red = 0;
            for (let i = 0; i < data.length; i += 4) {
                if (data[i] > 200 && data[i + 1] < 60 && data[i + 2] < 60) red++;
            }
            return red;
        }"""
    )


def canvas_point(page, x: float, y: float) -> tuple[float, float]:
    """Where on the page the canvas's pixel (x, y) is."""
    box = page.locator(".jupyter-matplotlib-canvas-div").first.bounding_box()
    return box["x"] + x, box["y"] + y


def drag(page, start: tuple[float, float], end: tuple[float, float]) -> None:
    page.mouse.move(*canvas_point(page, *start))
    page.mouse.down()
    page.mouse.move(*canvas_point(page, *end), steps=8)
    page.mouse.up()


def toolbar_button(page, title: str):
    """A toolbar button; the toolbar fades in while the pointer is over the figure."""
    page.locator(".jupyter-matplotlib-figure").first.hover()
    return page.locator(f".jupyter-matplotlib-toolbar button[title^='{title}']")


def test_an_ipympl_figure_draws_and_clicks_zoom_and_pan_reach_python(serve, open_tab):
    tab = open_tab(serve(*CELLS))
    page = tab.page
    canvas_div = page.locator(".nbf-widget .jupyter-matplotlib-canvas-div")
    expect(canvas_div).to_have_count(1)  # plt.show() showed it once, not again at the end
    expect(page.locator(".jupyter-matplotlib-header")).to_have_text("Figure 1")
    for title in ("Reset original view", "Left button pans", "Zoom to rectangle"):
        expect(page.locator(f".jupyter-matplotlib-toolbar button[title^='{title}']")).to_have_count(
            1
        )
    # The image Python drew arrives and is painted: the red diagonal, 3 px wide.
    page.wait_for_function(
        """() => {
            const c = document.querySelector('.jupyter-matplotlib-canvas-div canvas');
            const p = c && c.getContext('2d').getImageData(250, 200, 1, 1).data;
            return p && p[0] > 200 && p[1] < 60;
        }"""
    )
    assert red_pixels(page) > 400

    page.mouse.click(*canvas_point(page, 150, 120))
    expect(page.locator(".t-clicked")).to_have_text("clicked at 2.5, 7.5")

    toolbar_button(page, "Zoom to rectangle").click()
    drag(page, (150, 280), (250, 120))  # data (2.5, 2.5) to (5, 7.5)
    expect(page.locator(".t-limits")).to_have_text("2.5-5.0, 2.5-7.5")
    # Python's new image is painted: the line now crosses what was data (5, 2.5).
    page.wait_for_function(
        """() => {
            const c = document.querySelector('.jupyter-matplotlib-canvas-div canvas');
            const p = c.getContext('2d').getImageData(250, 280, 1, 1).data;
            return p[0] > 200 && p[1] < 60 && document.body.dataset.nbfStatus === 'idle';
        }"""
    )
    screenshot(page, "federated-ipympl.png")

    toolbar_button(page, "Left button pans").click()
    drag(page, (250, 200), (150, 200))  # 100 px to the left: the view moves right
    # By about half a unit (the drag's last mouse step lands a pixel or so either way):
    # x moves right and keeps its width, y stays.
    page.wait_for_function(
        r"""() => {
            const text = document.querySelector('.t-limits')?.textContent ?? '';
            const x = text.match(/^([\d.]+)-([\d.]+), 2\.5-7\.5$/);
            return x !== null && +x[1] >= 2.9 && +x[1] <= 3.2 && Math.abs(x[2] - x[1] - 2.5) < 0.15;
        }"""
    )

    toolbar_button(page, "Reset original view").click()
    expect(page.locator(".t-limits")).to_have_text("0.0-10.0, 0.0-10.0")
    assert not tab.errors, tab.errors


def test_two_visitors_have_their_own_figures_and_one_zooming_leaves_the_other(serve, open_tab):
    server = serve(*CELLS)
    first, second = open_tab(server), open_tab(server)
    for tab in (first, second):
        expect(tab.page.locator(".nbf-widget .jupyter-matplotlib-canvas-div")).to_have_count(1)

    toolbar_button(first.page, "Zoom to rectangle").click()
    drag(first.page, (150, 200), (250, 120))  # its press is a click, as in Jupyter
    expect(first.page.locator(".t-limits")).to_have_text("2.5-5.0, 5.0-7.5")
    expect(first.page.locator(".t-clicked")).to_have_text("clicked at 2.5, 5.0")
    second.page.mouse.click(*canvas_point(second.page, 250, 200))
    expect(second.page.locator(".t-clicked")).to_have_text("clicked at 5.0, 5.0")
    expect(second.page.locator(".t-limits")).to_have_text("0.0-10.0, 0.0-10.0")
    expect(first.page.locator(".t-clicked")).to_have_text("clicked at 2.5, 5.0")

    # In Python: each session holds its own one figure, and nothing is left in the
    # lists matplotlib and ipympl keep for the whole process.
    from ipympl.backend_nbagg import _Backend_ipympl
    from matplotlib._pylab_helpers import Gcf

    sessions = list(server.sessions)
    figures = [
        [manager.canvas.figure for manager in s.shell.figures.managers.values()] for s in sessions
    ]
    assert [len(held) for held in figures] == [1, 1]
    assert figures[0][0] is not figures[1][0]
    limits = sorted(held[0].axes[0].get_xlim() for held in figures)
    assert limits == [(0.0, 10.0), (2.5, 5.0)]
    assert _Backend_ipympl._to_show == [] and Gcf.figs.fallback == {}
    assert not first.errors and not second.errors, (first.errors, second.errors)
