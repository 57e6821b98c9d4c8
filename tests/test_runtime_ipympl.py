"""`%matplotlib widget` in a session: ipympl's canvas where Jupyter shows it, per session,
driven through the page's protocol (the browser's side is tests/test_browser_ipympl.py)."""

from __future__ import annotations

import matplotlib  # noqa: F401  (imported once here, not inside a timed test)
from runtime_harness import NotebookTestCase
from staged_harness import StagedTestCase
from tornado.testing import gen_test

from runtime.host import figures

CANVAS = "MPLCanvasModel"


def shown_widgets(page, cell: int) -> list[str]:
    """The model names of the widget views shown in a cell, in order (closed or not)."""
    opened = {
        m["comm_id"]: m["data"]["state"]["_model_name"]
        for m in page.messages
        if m["type"] == "comm_open"
    }
    return [
        opened[m["widget"]] for m in page.outputs[cell] if m["type"] == "output" and "widget" in m
    ]


class TestWidgetBackend(NotebookTestCase):
    cells = (
        "%matplotlib widget\nimport matplotlib.pyplot as plt",
        "fig, ax = plt.subplots()\nax.plot([1, 2, 3]);",
        "plt.figure()\nplt.plot([3, 2, 1])\nplt.show()",
        "last = plt.figure()\nlast",
        "fig.canvas",
        "%matplotlib inline\nplt.plot([1, 2])\nplt.title('back to inline');",
        "%matplotlib ipympl\nplt.plot([1, 2]);",
    )

    @gen_test
    async def test_each_new_figure_is_shown_once_as_its_canvas_where_jupyter_shows_it(self):
        page = await self.open_page()
        assert shown_widgets(page, 2) == [CANVAS]  # at the end of the cell
        assert shown_widgets(page, 3) == [CANVAS]  # by plt.show(), not again after
        assert shown_widgets(page, 4) == [CANVAS]  # the last value, not again after
        assert shown_widgets(page, 5) == [CANVAS]  # fig.canvas, displayed
        assert page.outputs[2][0]["widget"] == page.outputs[5][0]["widget"]
        assert "data:image/png;base64," not in "".join(page.html(c) for c in range(2, 6))

    @gen_test
    async def test_the_canvas_comes_with_its_toolbar(self):
        page = await self.open_page()
        canvas = page.models[page.outputs[7][0]["widget"]]  # still open
        assert canvas["_model_module"] == "jupyter-matplotlib"
        toolbar = page.models[canvas["toolbar"].removeprefix("IPY_MODEL_")]
        assert toolbar["_model_name"] == "ToolbarModel"
        assert ["pan", "zoom"] == [i[3] for i in toolbar["toolitems"] if i[3] in ("pan", "zoom")]

    @gen_test
    async def test_inline_again_shows_a_png_and_closes_the_widget_figures(self):
        page = await self.open_page()
        assert page.html(6).count("data:image/png;base64,") == 1 and not shown_widgets(page, 6)
        assert shown_widgets(page, 7) == [CANVAS]
        # Switching backends closed the figures made before, as matplotlib does.
        assert len(self.session_of(page).shell.figures.managers) == 1

    @gen_test
    async def test_sessions_keep_their_figures_apart_and_closing_one_frees_them(self):
        from ipympl.backend_nbagg import _Backend_ipympl
        from matplotlib._pylab_helpers import Gcf

        first, second = await self.open_page(), await self.open_page()
        held = [self.session_of(p).shell.figures.managers for p in (first, second)]
        assert [sorted(h) for h in held] == [[1], [1]]  # after `%matplotlib ipympl`
        assert held[0][1] is not held[1][1]
        assert not set(first.models) & set(second.models)
        assert _Backend_ipympl._to_show == [] and Gcf.figs.fallback == {}
        session = self.session_of(first)
        await self.sessions.close(session)
        assert session.shell.figures.managers == {} and session.shell.figures.to_show == []


class TestInlineIsTheDefault(NotebookTestCase):
    cells = ("import matplotlib.pyplot as plt\nplt.plot([1, 2, 3]);",)

    @gen_test
    async def test_without_the_magic_a_figure_is_a_png_and_is_closed(self):
        page = await self.open_page()
        assert page.html(1).count("data:image/png;base64,") == 1 and not shown_widgets(page, 1)
        assert not self.session_of(page).shell.figures.managers


class TestStagedApp(StagedTestCase):
    cells = (
        "%matplotlib widget\nimport matplotlib.pyplot as plt\nimport ipywidgets as widgets",
        "#| stage: name\n#| input: each\nname = widgets.Text(value='')\nname",
        "#| stage: plot\n#| show: true\nfig, ax = plt.subplots()\nax.set_title(name.value);",
    )

    @gen_test
    async def test_a_later_stages_figure_is_a_canvas_though_its_session_ran_no_magic(self):
        await self.advance()
        alice = await self.labeler()
        await alice.submit("name", {"": {"value": "Alice"}})
        page = await alice.open_stage("plot")
        assert shown_widgets(page, 3) == [CANVAS]


def test_the_backend_a_stage_gets_is_the_last_magic_before_it():
    magic = "get_ipython().run_line_magic('matplotlib', {!r})"
    cells = [(1, magic.format("widget")), (2, "x = 1"), (4, magic.format("inline"))]
    assert figures.chosen_before(cells, 1) is None
    assert figures.chosen_before(cells, 3) == "widget"
    assert figures.chosen_before(cells, 5) == "inline"
    assert figures.backend_named("widget") == figures.backend_named("ipympl") == figures.IPYMPL
    assert figures.backend_named("") == figures.INLINE
    assert figures.backend_named("qt") is None
