"""Widget libraries' own front ends, in Chromium: each library's installed labextension
(or classic nbextension) is loaded by the page when it first meets one of its models,
draws as in Jupyter, and what a person does on it reaches Python.

The libraries are the real packages from PyPI (the `dev` extra declares them); their
front ends are the ones pip installed under `share/jupyter/labextensions`.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest
from browser import screenshot
from PIL import Image
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

ECHO = (
    "import ipywidgets as widgets\n"
    "echo = widgets.Label('nothing yet')\n"
    "echo.add_class('t-python')\n"
    "echo"
)


def frontend_requests(tab) -> list[str]:
    return [
        r
        for r in tab.page.evaluate("() => performance.getEntries().map((e) => e.name)")
        if "/labextensions/" in r or "/nbextensions/" in r or "federation" in r
    ]


def test_a_bqplot_figure_draws_its_lines_and_a_click_on_a_point_reaches_python(serve, open_tab):
    server = serve(
        ECHO,
        "import numpy as np\n"
        "import bqplot as bq\n"
        "x = np.arange(10)\n"
        "xs, ys = bq.LinearScale(), bq.LinearScale()\n"
        "line = bq.Lines(x=x, y=x ** 2, scales={'x': xs, 'y': ys}, colors=['red'])\n"
        "dots = bq.Scatter(x=x, y=x ** 2, scales={'x': xs, 'y': ys}, default_size=200)\n"
        "def clicked(mark, event):\n"
        "    echo.value = f\"clicked point {event['data']['index']}\"\n"
        "dots.on_element_click(clicked)\n"
        "axes = [bq.Axis(scale=xs), bq.Axis(scale=ys, orientation='vertical')]\n"
        "fig = bq.Figure(marks=[line, dots], axes=axes, title='Squares')\n"
        "fig",
    )
    tab = open_tab(server)
    page = tab.page
    path = page.locator(".nbf-widget svg g.curve path.line").first
    expect(path).to_be_attached()
    # The path goes through all ten points: an SVG path with that many segments.
    assert path.get_attribute("d").count("L") >= 9
    expect(page.locator(".nbf-widget svg path.dot")).to_have_count(10)
    expect(page.locator(".nbf-widget svg text.mainheading")).to_have_text("Squares")
    page.locator(".nbf-widget svg path.dot").nth(3).click(force=True)
    expect(page.locator(".t-python")).to_have_text("clicked point 3")
    assert not [e for e in tab.errors if "error" in e.lower()], tab.errors
    assert any("/labextensions/bqplot/static/remoteEntry." in r for r in frontend_requests(tab))
    assert any("/labextensions/bqscales/static/remoteEntry." in r for r in frontend_requests(tab))
    screenshot(page, "federated-bqplot.png")


def test_a_labextension_loads_from_under_the_apps_root_path(serve, open_tab):
    """Under `--root-path /labels/` (behind nginx, docs/deploy.md) the list of front ends
    and the labextension's files are asked for under the root too."""
    server = serve(
        "import bqplot as bq\n"
        "xs, ys = bq.LinearScale(), bq.LinearScale()\n"
        "bq.Figure(marks=[bq.Lines(x=[0, 1, 2], y=[0, 1, 4], scales={'x': xs, 'y': ys})])",
        root_path="/labels/",
    )
    assert server.url.endswith("/labels/")
    tab = open_tab(server)
    expect(tab.page.locator(".nbf-widget svg g.curve path.line").first).to_be_attached()
    asked = [r for r in tab.page.evaluate("() => performance.getEntries().map((e) => e.name)")]
    frontends = [r for r in asked if "/api/v1/frontends" in r or "/labextensions/" in r]
    assert frontends and all("/labels/" in r for r in frontends), frontends
    assert tab.errors == []


def test_an_ipycanvas_canvas_has_its_pixels_and_a_mouse_down_reaches_python(serve, open_tab):
    server = serve(
        ECHO,
        "from ipycanvas import Canvas\n"
        "canvas = Canvas(width=200, height=100)\n"
        "canvas.fill_style = 'red'\n"
        "canvas.fill_rect(10, 10, 100, 50)\n"
        "def down(x, y):\n"
        "    echo.value = f'mouse down at {round(x)},{round(y)}'\n"
        "canvas.on_mouse_down(down)\n"
        "canvas",
    )
    tab = open_tab(server)
    page = tab.page
    canvas = page.locator("canvas").first
    expect(canvas).to_be_visible()
    pixel = page.wait_for_function(
        """() => {
            const c = document.querySelector('.nbf-widget canvas');
            const p = c && c.getContext('2d').getImageData(50, 30, 1, 1).data;
            return p && p[3] ? Array.from(p) : null;
        }"""
    ).json_value()
    assert pixel == [255, 0, 0, 255]
    blank = page.evaluate(
        "() => Array.from(document.querySelector('.nbf-widget canvas')"
        ".getContext('2d').getImageData(150, 80, 1, 1).data)"
    )
    assert blank[3] == 0
    box = canvas.bounding_box()
    page.mouse.click(box["x"] + 40, box["y"] + 20)
    expect(page.locator(".t-python")).to_have_text("mouse down at 40,20")
    assert not tab.errors, tab.errors
    screenshot(page, "federated-ipycanvas.png")


def canvas_pixel(page, x: int, y: int) -> list[int]:
    """The RGBA of a pixel of the page's first canvas, once it is not transparent."""
    return page.wait_for_function(
        """([x, y]) => {
            const c = document.querySelector('.nbf-widget canvas');
            const p = c && c.getContext('2d').getImageData(x, y, 1, 1).data;
            return p && p[3] ? Array.from(p) : null;
        }""",
        arg=[x, y],
    ).json_value()


def test_two_visitors_canvases_both_draw_and_the_second_still_draws_after_the_first_leaves(
    serve, open_tab
):
    server = serve(
        "from ipycanvas import Canvas, hold_canvas\n"
        "canvas = Canvas(width=200, height=100)\n"
        "canvas.fill_style = 'red'\n"
        "canvas.fill_rect(10, 10, 100, 50)\n"
        "def down(x, y):\n"
        "    with hold_canvas():\n"
        "        canvas.fill_style = 'blue'\n"
        "        canvas.fill_rect(150, 60, 40, 30)\n"
        "canvas.on_mouse_down(down)\n"
        "canvas",
    )
    first, second = open_tab(server), open_tab(server)
    for tab in (first, second):  # each page got its own canvas manager and its drawing
        assert canvas_pixel(tab.page, 50, 30) == [255, 0, 0, 255]
    first.page.context.close()
    deadline = time.monotonic() + 10
    while len(server.sessions) > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(server.sessions) == 1
    box = second.page.locator(".nbf-widget canvas").first.bounding_box()
    second.page.mouse.click(box["x"] + 20, box["y"] + 20)
    assert canvas_pixel(second.page, 170, 75) == [0, 0, 255, 255]
    assert not second.errors, second.errors


def test_a_pythreejs_scene_renders_into_a_webgl_canvas(serve, open_tab):
    server = serve(
        "import pythreejs as p3\n"
        "box = p3.Mesh(p3.BoxGeometry(1, 1, 1), p3.MeshLambertMaterial(color='red'))\n"
        "light = p3.DirectionalLight(position=[3, 5, 1], intensity=0.6)\n"
        "cam = p3.PerspectiveCamera(position=[3, 3, 3], up=[0, 0, 1], children=[light])\n"
        "scene = p3.Scene(children=[box, cam, p3.AmbientLight(intensity=0.5)])\n"
        "controls = [p3.OrbitControls(controlling=cam)]\n"
        "r = p3.Renderer(camera=cam, scene=scene, controls=controls, width=300, height=200)\n"
        "r",
    )
    tab = open_tab(server)
    canvas = tab.page.locator(".nbf-widget canvas").first
    expect(canvas).to_be_visible()
    assert canvas.bounding_box()["width"] == 300

    # What the page shows of it: the red cube (WebGL draws, the view shows the frame).
    def red_pixels() -> int:
        image = Image.open(io.BytesIO(canvas.screenshot())).convert("RGB")
        return sum(1 for r, g, b in image.getdata() if r > 120 and g < 60 and b < 60)

    deadline = time.monotonic() + 10
    while red_pixels() < 100 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert red_pixels() >= 100
    # The DirectionalLight's front end makes its `shadow` (with a camera) on the page;
    # ipywidgets makes the Python widget of such a model as `cls(comm=comm)` and only then
    # `set_state(state)`, so pythreejs's `__init__(camera=UninitializedSentinel)` first
    # sends 'uninitialized' back to the page, where pythreejs listens to it as a model
    # (this error), then the page's camera. A kernel does the same: any other error fails.
    known = "Cannot create property '_listenId' on string 'uninitialized'"
    assert not [e for e in tab.errors if known not in e], tab.errors
    screenshot(tab.page, "federated-pythreejs.png")


def test_an_ipyvuetify_button_draws_and_its_click_reaches_python(serve, open_tab):
    server = serve(
        ECHO,
        "import ipyvuetify as v\n"
        "button = v.Btn(children=['Hello vuetify'], color='primary')\n"
        "def clicked(widget, event, data):\n"
        "    echo.value = 'vuetify clicked'\n"
        "button.on_event('click', clicked)\n"
        "button",
    )
    tab = open_tab(server)
    button = tab.page.get_by_role("button", name="Hello vuetify")
    expect(button).to_be_visible()
    button.click()
    expect(tab.page.locator(".t-python")).to_have_text("vuetify clicked")
    screenshot(tab.page, "federated-ipyvuetify.png")


def test_a_page_of_standard_widgets_loads_no_other_front_end(serve, open_tab):
    server = serve("import ipywidgets as widgets\nwidgets.IntSlider(3)")
    tab = open_tab(server)
    expect(tab.page.locator(".widget-slider")).to_be_visible()
    assert frontend_requests(tab) == []
    assert "/api/v1/frontends" not in json.dumps(
        tab.page.evaluate("() => performance.getEntries().map((e) => e.name)")
    )


AMD_MODULE = """\
define(["@jupyter-widgets/base", "underscore"], function (base, _) {
  class GreetingModel extends base.DOMWidgetModel {}
  class GreetingView extends base.DOMWidgetView {
    render() {
      this.el.classList.add("t-greeting");
      this.el.textContent = _.escape("Hello, " + this.model.get("name"));
      this.el.addEventListener("click", () => {
        this.model.set("clicks", this.model.get("clicks") + 1);
        this.touch();
      });
    }
  }
  return { GreetingModel, GreetingView };
});
"""


def test_a_library_with_only_a_classic_nbextension_loads_through_amd(
    serve, open_tab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    extension = tmp_path / "jupyter" / "nbextensions" / "nbf-greeting"
    extension.mkdir(parents=True)
    (extension / "index.js").write_text(AMD_MODULE)
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    server = serve(
        ECHO,
        "from traitlets import Int, Unicode\n"
        "class Greeting(widgets.DOMWidget):\n"
        "    _model_name = Unicode('GreetingModel').tag(sync=True)\n"
        "    _model_module = Unicode('nbf-greeting').tag(sync=True)\n"
        "    _model_module_version = Unicode('^1.0.0').tag(sync=True)\n"
        "    _view_name = Unicode('GreetingView').tag(sync=True)\n"
        "    _view_module = Unicode('nbf-greeting').tag(sync=True)\n"
        "    _view_module_version = Unicode('^1.0.0').tag(sync=True)\n"
        "    name = Unicode('AMD').tag(sync=True)\n"
        "    clicks = Int(0).tag(sync=True)\n"
        "greeting = Greeting()\n"
        "def clicked(change):\n"
        "    echo.value = f\"{change['new']} clicks\"\n"
        "greeting.observe(clicked, 'clicks')\n"
        "greeting",
    )
    tab = open_tab(server)
    greeting = tab.page.locator(".t-greeting")
    expect(greeting).to_have_text("Hello, AMD")
    greeting.click()
    expect(tab.page.locator(".t-python")).to_have_text("1 clicks")
    assert any("/nbextensions/nbf-greeting/index.js" in r for r in frontend_requests(tab))
    assert not tab.errors, tab.errors


def test_ipydatagrid_and_ipyleaflet_draw_when_the_server_allows_eval(serve, open_tab):
    # Both generate code in the page (ipydatagrid's expressions, a leaflet dependency):
    # `nbfreeze serve --allow-eval` lets them (docs/security.md). The map's tiles come
    # from the network, which the policy keeps out: the map is drawn, its tiles blocked.
    server = serve(
        "import pandas as pd\nfrom ipydatagrid import DataGrid\n"
        "DataGrid(pd.DataFrame({'a': [1, 2, 3], 'b': ['x', 'y', 'z']}))",
        "import ipyleaflet\nipyleaflet.Map(center=(52, 0), zoom=3)",
        allow_eval=True,
    )
    tab = open_tab(server)
    page = tab.page
    grid = page.locator(".nbf-widget canvas").first
    expect(grid).to_be_visible()
    box = grid.bounding_box()
    assert box is not None and box["width"] > 50 and box["height"] > 30
    expect(page.locator(".leaflet-container .leaflet-control-zoom-in")).to_be_visible()
    assert page.locator(".nbf-error, .nbf-notice").count() == 0
    screenshot(page, "federated-datagrid-leaflet.png")
    blocked_tiles = "tile.openstreetmap.org"
    assert not [e for e in tab.errors if blocked_tiles not in e], tab.errors


def test_a_click_on_an_ipydatagrid_cell_selects_it_in_python(serve, open_tab):
    # The grid's geometry is given, so that the test knows where a cell is drawn.
    server = serve(
        ECHO,
        "import pandas as pd\nfrom ipydatagrid import DataGrid\n"
        "grid = DataGrid(\n"
        "    pd.DataFrame({'a': [1, 2, 3], 'b': ['x', 'y', 'z']}), selection_mode='cell',\n"
        "    base_row_size=30, base_column_size=80, base_row_header_size=60,\n"
        "    base_column_header_size=30, layout={'height': '160px', 'width': '300px'},\n"
        ")\n"
        "def clicked(cell):\n"
        "    where = f\"{cell['column']} of row {cell['row']}\"\n"
        "    echo.value = f\"clicked {where}: {cell['cell_value']}\"\n"
        "grid.on_cell_click(clicked)\n"
        "chosen = widgets.Label('nothing selected')\n"
        "chosen.add_class('t-selections')\n"
        "def selected(change):\n"
        "    chosen.value = repr(change['new'])\n"
        "grid.observe(selected, 'selections')\n"
        "widgets.VBox([grid, chosen])",
        allow_eval=True,
    )
    tab = open_tab(server)
    page = tab.page
    canvas = page.locator(".nbf-widget canvas").first
    expect(canvas).to_be_visible()
    box = canvas.bounding_box()
    # Column b is the second after the row header (60 + 80 + 40), row 1 the second
    # after the column header (30 + 30 + 15).
    page.mouse.click(box["x"] + 180, box["y"] + 75)
    expect(page.locator(".t-python")).to_contain_text("clicked b of row 1: y")
    # The selection reached Python too: the grid's `selections` is that one cell.
    expect(page.locator(".t-selections")).to_have_text("[{'r1': 1, 'r2': 1, 'c1': 1, 'c2': 1}]")
    assert page.locator(".nbf-error, .nbf-notice").count() == 0
    assert not tab.errors, tab.errors
    screenshot(page, "federated-ipydatagrid.png")


def test_a_click_on_an_ipyleaflet_map_reaches_python_with_its_coordinates(serve, open_tab):
    # A map of no tile layer (its tiles would come from the network, which the policy
    # keeps out), one marker; a click's coordinates reach `on_interaction`.
    server = serve(
        ECHO,
        "import ipyleaflet\n"
        "m = ipyleaflet.Map(center=(52, 0), zoom=5, layout={'height': '300px', 'width': '400px'})\n"
        "m.clear_layers()\n"
        "m.add(ipyleaflet.Marker(location=(52, 0), draggable=False))\n"
        "def interacted(**event):\n"
        "    if event['type'] == 'click':\n"
        "        lat, lon = event['coordinates']\n"
        "        echo.value = f'clicked at {lat:.0f}, {lon:.0f}'\n"
        "m.on_interaction(interacted)\n"
        "m",
        allow_eval=True,
    )
    tab = open_tab(server)
    page = tab.page
    container = page.locator(".leaflet-container")
    expect(container.locator(".leaflet-control-zoom-in")).to_be_visible()
    expect(container.locator(".leaflet-marker-icon")).to_be_visible()
    box = container.bounding_box()
    # The map's centre is (52, 0); 100 px right and 100 px up of it, at zoom 5 (2^5 * 256
    # px around the world), is about 4.4 degrees east and 2.7 north.
    page.mouse.click(box["x"] + box["width"] / 2 + 100, box["y"] + box["height"] / 2 - 100)
    expect(page.locator(".t-python")).to_have_text("clicked at 55, 4")
    assert page.locator(".nbf-error, .nbf-notice").count() == 0
    assert not tab.errors, tab.errors
    screenshot(page, "federated-ipyleaflet.png")


def test_a_plotly_figurewidget_draws_its_points_and_a_click_on_one_reaches_python(serve, open_tab):
    server = serve(
        ECHO,
        "import plotly.graph_objects as go\n"
        "fig = go.FigureWidget(go.Scatter(x=[1, 2, 3, 4], y=[10, 30, 20, 40], mode='markers',\n"
        "                                 marker={'size': 20}))\n"
        "fig.update_layout(width=500, height=350, title='Points', hovermode='closest')\n"
        "def clicked(trace, points, state):\n"
        "    echo.value = f'clicked point {points.point_inds}'\n"
        "fig.data[0].on_click(clicked)\n"
        "fig",
    )
    tab = open_tab(server)
    page = tab.page
    # plotly.js's own drawing: an SVG with the title and one path per marker.
    points = page.locator(".nbf-widget .js-plotly-plot svg .scatterlayer path.point")
    expect(points).to_have_count(4)
    expect(page.locator(".nbf-widget .js-plotly-plot svg .gtitle")).to_have_text("Points")
    point = points.nth(2).bounding_box()
    x, y = point["x"] + point["width"] / 2, point["y"] + point["height"] / 2
    page.mouse.move(x - 5, y - 5)
    page.mouse.move(x, y)  # plotly finds the point under the mouse as it hovers
    page.mouse.click(x, y)
    expect(page.locator(".t-python")).to_have_text("clicked point [2]")
    assert not tab.errors, tab.errors
    screenshot(page, "federated-plotly.png")


def test_dragging_a_pythreejs_scene_moves_its_camera_in_python(serve, open_tab):
    server = serve(
        ECHO,
        "import pythreejs as p3\n"
        "box = p3.Mesh(p3.BoxGeometry(1, 1, 1), p3.MeshLambertMaterial(color='red'))\n"
        "cam = p3.PerspectiveCamera(position=[3, 3, 3], up=[0, 0, 1])\n"
        "scene = p3.Scene(children=[box, cam, p3.AmbientLight(intensity=0.8)])\n"
        "orbit = p3.OrbitControls(controlling=cam)\n"
        "def moved(change):\n"
        "    echo.value = 'camera at ' + ', '.join(f'{v:.1f}' for v in change['new'])\n"
        "cam.observe(moved, 'position')\n"
        "r = p3.Renderer(camera=cam, scene=scene, controls=[orbit], width=300, height=200)\n"
        "r",
    )
    tab = open_tab(server)
    page = tab.page
    canvas = page.locator(".nbf-widget canvas").first
    expect(canvas).to_be_visible()
    box = canvas.bounding_box()
    x, y = box["x"] + 150, box["y"] + 100
    page.mouse.move(x, y)
    page.mouse.down()
    for step in range(1, 11):
        page.mouse.move(x + 8 * step, y)
    page.mouse.up()
    # OrbitControls turned the camera around the cube: Python has its new position, at
    # the same distance from the cube (3 * sqrt(3)) and the same height.
    echo = page.locator(".t-python")
    expect(echo).to_contain_text("camera at ")
    position = [float(v) for v in echo.inner_text().removeprefix("camera at ").split(", ")]
    assert position != [3.0, 3.0, 3.0]
    assert abs(sum(v * v for v in position) ** 0.5 - 27**0.5) < 0.2
    assert abs(position[2] - 3.0) < 0.2
    assert not tab.errors, tab.errors
    screenshot(page, "federated-pythreejs-orbit.png")


def test_bqplot_figures_draw_inside_ipywidgets_layout_templates(serve, open_tab):
    # As the ipywidgets docs' Layout Templates notebook does: sliders jslinked to a bqplot
    # scale whose min and max are None (each link sets its slider to that None, which the
    # server refuses as a kernel would), and more links between the sliders; then a later
    # `max_slider.value`. Those links wait for bqplot's front end to load; they must still
    # take effect in the order the notebook made them, or a slider ends up None and its
    # view cannot be made ("Could not create child view").
    server = serve(
        "import numpy as np\nimport bqplot as bq\n"
        "from ipywidgets import FloatSlider, GridspecLayout, Layout, TwoByTwoLayout, jslink\n"
        "x_ord, y_sc = bq.OrdinalScale(), bq.LinearScale()\n"
        "bar = bq.Bars(x=np.arange(10), y=np.arange(1, 11) / 10, scales={'x': x_ord, 'y': y_sc})\n"
        "axes = [bq.Axis(scale=x_ord), bq.Axis(scale=y_sc, orientation='vertical')]\n"
        "fig = bq.Figure(marks=[bar], axes=axes, layout=Layout(width='auto', height='90%'))\n"
        "max_slider = FloatSlider(min=0, max=10, description='Max: ')\n"
        "min_slider = FloatSlider(min=-1, max=10, description='Min: ')\n"
        "app = TwoByTwoLayout(top_left=min_slider, bottom_left=max_slider, bottom_right=fig,\n"
        "                     align_items='center', height='500px')\n"
        "jslink((y_sc, 'max'), (max_slider, 'value'))\n"
        "jslink((y_sc, 'min'), (min_slider, 'value'))\n"
        "jslink((min_slider, 'max'), (max_slider, 'value'))\n"
        "jslink((max_slider, 'min'), (min_slider, 'value'))\n"
        "max_slider.value = 1.5\n"
        "app",
        "gs = GridspecLayout(2, 2, height='400px')\n"
        "for i in range(2):\n"
        "    for j in range(2):\n"
        "        s = bq.Scatter(x=np.arange(5), y=np.arange(5) * (i + j + 1),\n"
        "                       scales={'x': bq.LinearScale(), 'y': bq.LinearScale()})\n"
        "        gs[i, j] = bq.Figure(marks=[s], layout=Layout(width='auto', height='auto'))\n"
        "gs",
    )
    tab = open_tab(server, viewport={"width": 1100, "height": 1100})
    page = tab.page
    shown = page.locator(".nbf-cell > .nbf-widget > .jupyter-widgets")
    expect(shown).to_have_count(2)
    app, grid = shown.all()
    expect(app.locator(".widget-hslider")).to_have_count(2)
    for slider in app.locator(".widget-hslider").all():
        expect(slider.locator(".noUi-handle")).to_be_visible()
    expect(app.locator(".bqplot.figure svg rect.bar")).to_have_count(10)
    expect(grid.locator(".bqplot.figure")).to_have_count(4)
    for figure in grid.locator(".bqplot.figure").all():
        expect(figure.locator("svg path.dot")).to_have_count(5)
    assert page.locator(".jupyter-widgets-error-widget").count() == 0
    refused_none = "nbfreeze: the server refused a message: FloatSlider."
    assert not [e for e in tab.errors if not e.startswith(refused_none)], tab.errors
    screenshot(page, "federated-bqplot-layouts.png")
