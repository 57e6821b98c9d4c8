"""IPython semantics without a kernel: what a cell shows, captures and swallows."""

from __future__ import annotations

import matplotlib  # noqa: F401  (imported once here, not inside a timed test)
import pandas  # noqa: F401
from runtime_harness import NotebookTestCase
from tornado.testing import gen_test

from runtime.app.pipeline import HeadlessSession, Silent
from runtime.host.execute import run_cell


def kinds(messages: list[dict]) -> list[str]:
    return [m["type"] for m in messages]


class TestCellOutputs(NotebookTestCase):
    cells = (
        "md:# Outputs\nSome *text* & <b>bold</b>.",
        "display('first')\nprint('second')\n'third'",
        "42;",
        "from IPython.display import HTML, SVG, Markdown, Image\n"
        "display(HTML('<b>bold</b>'))\n"
        'display(SVG(\'<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"/>\'))\n'
        "display(Markdown('*emphasis*'))\n"
        "Image(b'\\x89PNG\\r\\n\\x1a\\n' + bytes(20), format='png')",
        "print('<script>alert(1)</script>')",
        "import pandas as pd\npd.DataFrame({'label': ['cat', 'dog'], 'n': [1, 2]})",
        "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.title('line')",
        "from IPython.display import clear_output\nprint('gone')\nclear_output()\nprint('kept')",
        "get_ipython().user_ns['via_shell'] = 1\nglobals()['via_shell'] + 1",
    )

    @gen_test
    async def test_display_print_and_the_last_value_appear_in_order(self):
        page = await self.open_page()
        html = page.html(2)
        assert html.index("&#39;first&#39;") < html.index("second") < html.index("&#39;third&#39;")
        assert page.outputs[3] == []  # a trailing semicolon hides the value

    @gen_test
    async def test_rich_reprs_are_rendered_by_nbconvert(self):
        page = await self.open_page()
        html = page.html(4)
        assert "<b>bold</b>" in html
        assert "data:image/svg+xml;base64," in html
        assert "<em>emphasis</em>" in html
        assert "data:image/png;base64,iVBORw0KGgo" in html

    @gen_test
    async def test_printed_text_is_escaped(self):
        page = await self.open_page()
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.html(5)
        assert "<script>" not in page.html(5)

    @gen_test
    async def test_a_dataframe_is_an_html_table(self):
        page = await self.open_page()
        assert "<table" in page.html(6) and "<td>cat</td>" in page.html(6)

    @gen_test
    async def test_a_matplotlib_figure_is_shown_once_as_png_in_each_session(self):
        first, second = await self.open_page(), await self.open_page()
        for page in (first, second):
            assert page.html(7).count("data:image/png;base64,") == 1
            assert not self.session_of(page).shell.figures.managers  # closed after the cell

    @gen_test
    async def test_clear_output_clears_the_cell(self):
        page = await self.open_page()
        assert kinds(page.outputs[8]) == ["output", "clear_output", "output"]
        assert page.outputs[8][1]["wait"] is False

    @gen_test
    async def test_get_ipython_is_the_sessions_shell(self):
        page = await self.open_page()
        assert ">2<" in page.html(9).replace("\n", "")

    @gen_test
    async def test_markdown_cells_are_in_the_page_shell(self):
        response = await self.http_client.fetch(self.get_url("/"))
        body = response.body.decode()
        assert "<em>text</em>" in body and "<b>bold</b>" in body
        assert '<div class="nbf-cell" data-cell="2"></div>' in body


class TestErrors(NotebookTestCase):
    cells = (
        "md:Markdown counts as a cell.",
        "x = 1\n\nraise ValueError('bad value')",
        "print('a cell between')",
        "import ipywidgets as widgets\n"
        "button = widgets.Button()\n"
        "def explode(b):\n"
        "    return 1 / 0\n"
        "button.on_click(explode)\n"
        "button",
        "print('still running', x)",
    )

    @gen_test
    async def test_a_raising_cell_names_its_cell_and_line_and_later_cells_run(self):
        page = await self.open_page()
        [error] = page.outputs[2]
        assert error["type"] == "cell_error"
        assert (error["cell"], error["line"], error["ename"]) == (2, 3, "ValueError")
        assert error["message"] == "notebook.ipynb, cell 2, line 3: ValueError: bad value"
        assert "still running 1" in page.html(5)

    @gen_test
    async def test_an_error_in_a_callback_names_the_callbacks_cell_and_line(self):
        page = await self.open_page()
        await page.click(page.model("ButtonModel"))
        error = page.outputs[4][-1]
        assert (error["type"], error["cell"], error["line"]) == ("cell_error", 4, 4)
        assert "Traceback" not in error["message"]
        await page.click(page.model("ButtonModel"))  # the session lives on
        assert page.outputs[4][-1]["ename"] == "ZeroDivisionError"


class TestWhatThePageDoesNotRun(NotebookTestCase):
    cells = (
        "from IPython.display import HTML, Javascript, display\n"
        "display(Javascript('document.title = 1'))",
        "display(HTML('<b>chart</b><script>draw()</script>'))",
        "import ipywidgets as widgets\n"
        "out = widgets.Output()\n"
        "with out:\n"
        "    display(Javascript('document.title = 2'))\n"
        "out",
    )

    @gen_test
    async def test_a_javascript_output_says_in_place_that_it_does_not_run(self):
        page = await self.open_page()
        html = page.html(1)
        assert "nbf-notice" in html and "JavaScript" in html and "does not run" in html
        assert "anywidget" in html  # what to do instead
        assert "<script" not in html and "document.title" not in html

    @gen_test
    async def test_an_html_output_with_a_script_says_its_script_does_not_run(self):
        page = await self.open_page()
        html = page.html(2)
        assert "<b>chart</b>" in html
        assert "nbf-notice" in html and "does not run" in html

    @gen_test
    async def test_a_javascript_output_captured_by_an_output_widget_says_so_too(self):
        page = await self.open_page()
        [output] = page.models[page.outputs[3][-1]["widget"]]["outputs"]
        assert "application/javascript" not in output["data"]
        assert "does not run" in output["data"]["text/plain"]


class TestOutputWidget(NotebookTestCase):
    cells = (
        "import ipywidgets as widgets\n"
        "from IPython.display import HTML, display\n"
        "out = widgets.Output()\n"
        "with out:\n"
        "    print('one')\n"
        "    print('two')\n"
        "    display(HTML('<i>rich</i>'))\n"
        "    1 / 0\n"
        "print('after the with block')\n"
        "out",
        "log = widgets.Output()\n"
        "@log.capture(clear_output=True)\n"
        "def clicked(button):\n"
        "    print('clicked', button.description)\n"
        "    raise RuntimeError('inside a callback')\n"
        "button = widgets.Button(description='go')\n"
        "button.on_click(clicked)\n"
        "widgets.VBox([button, log])",
        "keep = widgets.Output()\n"
        "with keep:\n"
        "    print('old')\n"
        "    keep.clear_output(wait=True)\n"
        "    print('new')\n"
        "keep",
    )

    @gen_test
    async def test_print_display_and_errors_in_with_out_go_to_that_output_widget(self):
        page = await self.open_page()
        outputs = page.models[page.outputs[1][-1]["widget"]]["outputs"]
        assert outputs[0] == {"output_type": "stream", "name": "stdout", "text": "one\ntwo\n"}
        assert outputs[1]["data"]["text/html"] == "<i>rich</i>"
        assert outputs[2]["output_type"] == "error"
        assert outputs[2]["ename"] == "ZeroDivisionError"
        assert outputs[2]["traceback"] == [
            "notebook.ipynb, cell 1, line 8: ZeroDivisionError: division by zero"
        ]
        assert "after the with block" in page.html(1)
        assert not [m for m in page.outputs[1] if m["type"] == "cell_error"]

    @gen_test
    async def test_a_captured_callback_writes_into_its_output_widget(self):
        page = await self.open_page()
        log = page.model("OutputModel", outputs=[])
        for _ in range(2):  # cleared each time
            await page.click(page.model("ButtonModel"))
            outputs = page.models[log]["outputs"]
            assert [o["output_type"] for o in outputs] == ["stream", "error"]
            assert outputs[0]["text"] == "clicked go\n"
            assert outputs[1]["evalue"] == "inside a callback"

    @gen_test
    async def test_clear_output_wait_clears_when_the_next_output_comes(self):
        page = await self.open_page()
        keep = page.models[page.outputs[3][-1]["widget"]]
        assert keep["outputs"] == [{"output_type": "stream", "name": "stdout", "text": "new\n"}]


class TestWidgetDisplay(NotebookTestCase):
    cells = (
        "import ipywidgets as widgets\n"
        "reprs = []\n"
        "class Counted(widgets.IntSlider):\n"
        "    def __repr__(self):\n"
        "        reprs.append(self.model_id)\n"
        "        return 'Counted slider'\n"
        "shown = Counted()\n"
        "display(shown)\n"
        "shown",
        "captured = widgets.Output()\nwith captured:\n    display(Counted())\ncaptured",
        "print(len(reprs))",
    )

    @gen_test
    async def test_a_widget_shown_as_a_view_costs_no_text_and_a_captured_one_keeps_it(self):
        page = await self.open_page()
        shown = [m["widget"] for m in page.outputs[1]]
        assert len(shown) == 2 and shown[0] == shown[1]
        outputs = page.models[page.outputs[2][-1]["widget"]]["outputs"]
        assert outputs[0]["data"]["text/plain"] == "Counted slider"
        assert "application/vnd.jupyter.widget-view+json" in outputs[0]["data"]
        assert "<pre>1\n</pre>" in page.html(3)  # the captured one's only


class TestInteract(NotebookTestCase):
    cells = (
        "import ipywidgets as widgets\n"
        "from ipywidgets import interact, interactive, interactive_output\n"
        "@interact(x=5)\n"
        "def double(x):\n"
        "    print('double', 2 * x)",
        "def square(n=3):\n    print('square', n * n)\n    return n * n\n"
        "shown = interactive(square, n=(0, 10))\nshown",
        "a = widgets.IntSlider(value=1, description='a')\n"
        "out = interactive_output(lambda a: print('a is', a), {'a': a})\n"
        "widgets.VBox([a, out])",
        "import matplotlib.pyplot as plt\n"
        "@interact(k=(1, 3))\n"
        "def plot(k=1):\n"
        "    plt.plot([0, k])",
    )

    def printed(self, page) -> list[str]:
        """The text in each Output widget of the page."""
        outputs = [s["outputs"] for s in page.models.values() if s["_model_name"] == "OutputModel"]
        return ["".join(o.get("text", "") for o in each) for each in outputs]

    @gen_test
    async def test_interact_redraws_its_output_when_a_control_changes(self):
        page = await self.open_page()
        assert "double 10\n" in self.printed(page)
        await page.set(page.model("IntSliderModel", description="x"), value=7)
        assert "double 14\n" in self.printed(page)
        assert "double 10\n" not in "".join(self.printed(page))

    @gen_test
    async def test_interactive_redraws_and_keeps_the_result(self):
        page = await self.open_page()
        await page.set(page.model("IntSliderModel", description="n"), value=4)
        assert "square 16\n" in self.printed(page)
        assert self.session_of(page).namespace["shown"].result == 16

    @gen_test
    async def test_interactive_output_redraws(self):
        page = await self.open_page()
        await page.set(page.model("IntSliderModel", description="a"), value=9)
        assert "a is 9\n" in self.printed(page)

    @gen_test
    async def test_an_interact_plot_is_redrawn_into_its_output(self):
        page = await self.open_page()
        await page.set(page.model("IntSliderModel", description="k"), value=3)
        images = [
            o
            for s in page.models.values()
            if s.get("_model_name") == "OutputModel"
            for o in s["outputs"]
            if "image/png" in o.get("data", {})
        ]
        assert len(images) == 1
        assert page.html(4) == ""  # nothing leaked out of the Output widget


class TestPagelessSessions(NotebookTestCase):
    cells = (
        "class Rich:\n"
        "    rendered = 0\n"
        "    def _repr_html_(self):\n"
        "        Rich.rendered += 1\n"
        "        return '<b>rich</b>'\n"
        "Rich()",
        "print('printed')\nRich()",
    )

    @gen_test
    async def test_what_a_session_shows_with_no_one_to_see_it_is_not_even_rendered(self):
        session = HeadlessSession(self.sessions.notebook, Silent(), self.sessions._pool)
        await session.call(session.program, session)  # not recording: no page, no record
        namespace = session.namespace
        assert namespace["Rich"].rendered == 0
        session.recording = recorded = []
        await session.call(run_cell, session.shell, 3, "Rich()", namespace)
        assert namespace["Rich"].rendered == 1 and "<b>rich</b>" in recorded[0]["html"]
        session.recording = None
        session.quiet = False
        await session.close()

    @gen_test
    async def test_a_quiet_session_renders_nothing_and_sends_nothing_to_its_cells(self):
        page = await self.open_page()
        session = self.session_of(page)
        session.quiet = True
        sent = len(page.messages)
        await session.call(
            run_cell, session.shell, 3, "print('hush')\nRich()\n1 / 0", session.namespace
        )
        session.quiet = False
        await session.call(run_cell, session.shell, 4, "'heard'", session.namespace)
        shown = [
            m for m in (await page.until(lambda m: m["type"] == "output")) if m["type"] != "status"
        ]
        assert [m["cell"] for m in shown] == [4] and len(page.messages) > sent
        assert session.namespace["Rich"].rendered == 2  # the notebook's own run, not the quiet one
