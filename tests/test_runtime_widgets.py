"""Widgets without a kernel: two-way sync, callbacks, links, validation, anywidget."""

from __future__ import annotations

import json

from runtime_harness import NotebookTestCase
from tornado.testing import gen_test


def replies(messages: list[dict], kind: str) -> list[dict]:
    return [m for m in messages if m["type"] == kind]


class TestTwoWaySync(NotebookTestCase):
    cells = (
        "import ipywidgets as widgets\n"
        "slider = widgets.IntSlider(description='n')\n"
        "doubled = widgets.IntText()\n"
        "slider.observe(lambda change: setattr(doubled, 'value', 2 * change.new), 'value')\n"
        "clicks = widgets.Button(description='More')\n"
        "count = widgets.Label('0')\n"
        "def more(button):\n"
        "    count.value = str(int(count.value) + 1)\n"
        "    button.description = 'More!'\n"
        "clicks.on_click(more)\n"
        "widgets.VBox([slider, doubled, clicks, count])",
    )

    @gen_test
    async def test_a_change_on_the_page_reaches_python_and_its_observers(self):
        page = await self.open_page()
        slider = page.model("IntSliderModel")
        answer = await page.set(slider, value=21)

        assert self.session_of(page).comms.widgets[slider].value == 21
        assert page.models[page.model("IntTextModel")]["value"] == 42
        echo = [m for m in replies(answer, "comm_msg") if m["data"]["method"] == "echo_update"]
        assert echo and all(m["parent_id"] == answer[-1]["parent_id"] for m in echo)

    @gen_test
    async def test_a_button_click_runs_on_click_and_its_changes_reach_the_page(self):
        page = await self.open_page()
        button = page.model("ButtonModel")
        await page.click(button)
        await page.click(button)

        assert page.models[page.model("LabelModel")]["value"] == "2"
        assert page.models[button]["description"] == "More!"

    @gen_test
    async def test_a_model_the_page_asks_for_is_sent_again(self):
        page = await self.open_page()
        slider = page.model("IntSliderModel")
        data = {"method": "request_state"}
        answer = await page.handled({"type": "comm_msg", "comm_id": slider, "data": data})
        [update] = replies(answer, "comm_msg")
        assert update["data"]["state"]["description"] == "n"

    @gen_test
    async def test_a_model_the_page_closes_is_forgotten(self):
        page = await self.open_page()
        slider = page.model("IntSliderModel")
        await page.handled({"type": "comm_close", "comm_id": slider})
        assert slider not in self.session_of(page).comms.widgets
        answer = await page.set(slider, value=3)
        assert "unknown comm id" in replies(answer, "reply_error")[0]["message"]


class TestLinks(NotebookTestCase):
    cells = (
        "import ipywidgets as widgets\n"
        "a = widgets.IntSlider(description='a')\n"
        "b = widgets.IntSlider(description='b')\n"
        "c = widgets.IntSlider(description='c')\n"
        "widgets.link((a, 'value'), (b, 'value'))\n"
        "widgets.dlink((a, 'value'), (c, 'value'), transform=lambda v: v + 1)\n"
        "widgets.jslink((a, 'max'), (b, 'max'))\n"
        "widgets.VBox([a, b, c])",
    )

    @gen_test
    async def test_link_and_dlink_carry_a_page_change_to_the_other_widgets(self):
        page = await self.open_page()
        await page.set(page.model("IntSliderModel", description="a"), value=5)
        assert page.models[page.model("IntSliderModel", description="b")]["value"] == 5
        assert page.models[page.model("IntSliderModel", description="c")]["value"] == 6

        await page.set(page.model("IntSliderModel", description="c"), value=50)
        assert page.models[page.model("IntSliderModel", description="a")]["value"] == 5

    @gen_test
    async def test_jslink_is_a_link_model_for_the_front_end(self):
        page = await self.open_page()
        link = page.models[page.model("LinkModel")]
        a = page.model("IntSliderModel", description="a")
        b = page.model("IntSliderModel", description="b")
        assert link["source"] == [f"IPY_MODEL_{a}", "max"]
        assert link["target"] == [f"IPY_MODEL_{b}", "max"]


class TestValidation(NotebookTestCase):
    cells = (
        "import ipywidgets as widgets\n"
        "slider = widgets.IntSlider(description='n')\n"
        "pick = widgets.Dropdown(options=['red', 'green'])\n"
        "widgets.VBox([slider, pick])",
    )

    async def refused(self, page, frame: str | bytes, binary: bool = False) -> str:
        await page.ws.write_message(frame, binary=binary)
        [error] = replies(await page.until(lambda m: m["type"] == "reply_error"), "reply_error")
        return error["message"]

    async def still_works(self, page) -> None:
        await page.set(page.model("IntSliderModel"), value=4)
        assert self.session_of(page).comms.widgets[page.model("IntSliderModel")].value == 4

    @gen_test
    async def test_values_the_traits_refuse_get_an_error_and_change_nothing(self):
        page = await self.open_page()
        slider, pick = page.model("IntSliderModel"), page.model("DropdownModel")
        widgets = self.session_of(page).comms.widgets
        cases = [
            (slider, {"value": "many"}, "IntSlider.value refused"),
            (slider, {"value": 3, "description": ["x"]}, "IntSlider.description refused"),
            (pick, {"index": 7}, "Dropdown.index refused"),
            (slider, {"_model_name": "Evil"}, "read-only"),
        ]
        for comm_id, state, expected in cases:
            answer = await page.set(comm_id, **state)
            [error] = replies(answer, "reply_error")
            assert expected in error["message"]
            assert error["request"] == {"type": "comm_msg", "comm_id": comm_id, "method": "update"}
            assert not replies(answer, "comm_msg")  # not even an echo
        assert widgets[slider].value == 0 and widgets[slider].description == "n"
        assert widgets[pick].index == 0
        await self.still_works(page)

    @gen_test
    async def test_a_key_the_model_does_not_declare_is_ignored_and_the_rest_applied(self):
        # As ipywidgets' Widget.set_state does in a kernel (it sets only `self.keys`), and
        # as plotly's FigureWidget front end relies on (it sends keys the model lacks).
        page = await self.open_page()
        slider = page.model("IntSliderModel")
        with self.assertLogs("runtime.host.comm", level="DEBUG") as logged:
            answer = await page.set(slider, value=5, no_such_trait=1)
        assert not replies(answer, "reply_error")
        assert self.session_of(page).comms.widgets[slider].value == 5
        echo = [m for m in replies(answer, "comm_msg") if m["data"]["method"] == "echo_update"]
        assert [m["data"]["state"] for m in echo] == [{"value": 5}]
        assert any("no_such_trait" in line for line in logged.output)
        # The declared keys are still checked: a refused value refuses the whole update.
        answer = await page.set(slider, value="many", no_such_trait=1)
        assert "IntSlider.value refused" in replies(answer, "reply_error")[0]["message"]
        assert self.session_of(page).comms.widgets[slider].value == 5

    @gen_test
    async def test_an_unknown_comm_id_gets_an_error_and_the_session_lives_on(self):
        page = await self.open_page()
        answer = await page.set("0123abcd", value=1)
        assert replies(answer, "reply_error")[0]["message"] == "unknown comm id '0123abcd'"
        await self.still_works(page)

    @gen_test
    async def test_malformed_frames_get_errors_and_the_session_lives_on(self):
        page = await self.open_page()
        slider = page.model("IntSliderModel")
        update = {"type": "comm_msg", "comm_id": slider}
        frames = [
            ("{not json", "not JSON"),
            ("[1, 2]", "not a JSON object"),
            (json.dumps({"type": "execute_request", "code": "1"}), "unknown message type"),
            (json.dumps({"type": "comm_msg"}), "no valid comm_id"),
            (json.dumps(update), "data.method must be"),
            (json.dumps(update | {"data": {"method": "update"}}), "needs a state"),
            (json.dumps(update | {"data": {"method": "custom"}}), "needs content"),
            (
                json.dumps(
                    update | {"data": {"method": "update", "state": {}, "buffer_paths": [["x"]]}}
                ),
                "1 buffer paths but 0 buffers",
            ),
        ]
        for frame, expected in frames:
            assert expected in await self.refused(page, frame)
        binary = [
            (b"\x00\x01", "too short"),
            (b"\x00\x00\x00\x09\x00\x00\x00\x08", "cannot hold"),
            (b"\x00\x00\x00\x01\x00\x00\x00\x09{}", "offsets"),
            (b"\x00\x00\x00\x01\x00\x00\x00\x08\xff\xfe", "not UTF-8"),
        ]
        for frame, expected in binary:
            assert expected in await self.refused(page, frame, binary=True)
        await self.still_works(page)


BUTTON_STATE = {
    "_model_module": "@jupyter-widgets/controls",
    "_model_module_version": "2.0.0",
    "_model_name": "ControllerButtonModel",
    "_view_module": "@jupyter-widgets/controls",
    "_view_module_version": "2.0.0",
    "_view_name": "ControllerButtonView",
    "value": 1.0,
    "pressed": True,
}


class TestModelsTheUserMakesOnThePage(NotebookTestCase):
    """A Controller's front end makes a model per gamepad button and axis and opens its
    comm to the kernel, then sets the Controller's read-only traits to them."""

    cells = ("import ipywidgets as widgets\npad = widgets.Controller(index=0)\npad",)

    def open_message(self, comm_id, state=BUTTON_STATE, **more):
        data = {"state": state, "buffer_paths": []}
        message = {"type": "comm_open", "comm_id": comm_id, "target_name": "jupyter.widget"}
        return message | {"data": data, "metadata": {"version": "2.1.0"}} | more

    @gen_test
    async def test_a_gamepad_button_made_on_the_page_reaches_the_controller_in_python(self):
        page = await self.open_page()
        assert not replies(await page.handled(self.open_message("b0")), "reply_error")
        pad = page.model("ControllerModel")
        answer = await page.set(pad, buttons=["IPY_MODEL_b0"], connected=True, name="Test pad")
        assert not replies(answer, "reply_error")
        controller = self.session_of(page).namespace["pad"]
        assert controller.connected and controller.name == "Test pad"
        [button] = controller.buttons
        assert button.pressed and button.value == 1.0
        await page.set("b0", pressed=False, value=0.0)  # the person lets go
        assert not controller.buttons[0].pressed

    @gen_test
    async def test_comms_a_page_may_not_open_are_refused_and_the_session_lives_on(self):
        page = await self.open_page()
        pad = page.model("ControllerModel")
        evil = dict(BUTTON_STATE, _model_name="OsSystemModel")
        cases = [
            (self.open_message("x", target_name="comm.other"), "target jupyter.widget only"),
            (self.open_message("x", state=evil), "no widget class is registered"),
            (self.open_message(pad), "is taken"),
            (self.open_message("x", state=dict(BUTTON_STATE, value="loud")), "refused the state"),
        ]
        for message, expected in cases:
            await page.send(message)
            [error] = replies(await page.until(lambda m: m["type"] == "reply_error"), "reply_error")
            assert expected in error["message"]
        assert "x" not in self.session_of(page).comms.comms
        assert not replies(await page.handled(self.open_message("b1")), "reply_error")


class TestUnsupported(NotebookTestCase):
    cells = (
        "import ipywidgets as widgets\n"
        "from traitlets import Unicode\n"
        "class Globe(widgets.DOMWidget):\n"
        "    _model_name = Unicode('GlobeModel').tag(sync=True)\n"
        "    _model_module = Unicode('globe-widgets').tag(sync=True)\n"
        "    _model_module_version = Unicode('^1.2.0').tag(sync=True)\n"
        "    _view_name = Unicode('GlobeView').tag(sync=True)\n"
        "    _view_module = Unicode('globe-widgets').tag(sync=True)\n"
        "    _view_module_version = Unicode('^1.2.0').tag(sync=True)\n"
        "Globe()",
        "print('later cells run')",
    )

    @gen_test
    async def test_a_widget_whose_front_end_is_not_bundled_is_reported_by_name(self):
        page = await self.open_page()
        [report] = [m for m in page.messages if m["type"] == "unsupported"]
        assert report["class_name"] == "__main__.Globe"
        assert report["module"] == "globe-widgets@^1.2.0"
        assert "__main__.Globe" in report["message"] and "not bundled" in report["message"]
        assert not any(s["_model_name"] == "GlobeModel" for s in page.models.values())
        assert type(self.session_of(page).comms.widgets[report["comm_id"]]).__name__ == "Globe"
        assert "Globe(" in page.html(1)  # its text stands in for it
        assert "later cells run" in page.html(2)


class TestAnywidget(NotebookTestCase):
    cells = (
        "import pathlib\n"
        "import anywidget, traitlets\n"
        "pathlib.Path('counter.css').write_text('.counter { color: teal; }')\n"
        "class Counter(anywidget.AnyWidget):\n"
        "    _esm = ('export default { render({ model, el }) { '\n"
        "            'el.textContent = model.get(\"value\"); } }')\n"
        "    _css = pathlib.Path('counter.css')\n"
        "    value = traitlets.Int(0).tag(sync=True)\n"
        "counter = Counter()\n"
        "def reply(widget, content, buffers):\n"
        "    widget.value += 1\n"
        "    answer = {'got': content, 'sizes': [len(b) for b in buffers]}\n"
        "    widget.send(answer, [bytes(b)[::-1] for b in buffers])\n"
        "counter.on_msg(reply)\n"
        "counter",
    )

    def setUp(self) -> None:
        super().setUp()
        import os

        self._cwd = os.getcwd()
        os.chdir(self.tmp)

    def tearDown(self) -> None:
        import os

        os.chdir(self._cwd)
        super().tearDown()

    @gen_test
    async def test_an_anywidget_runs_unchanged_with_custom_messages_and_buffers(self):
        page = await self.open_page()
        counter = page.model("AnyModel")
        state = page.models[counter]
        assert "export default" in state["_esm"]
        assert state["_css"] == ".counter { color: teal; }"
        assert page.outputs[1][-1]["widget"] == counter

        data = {"method": "custom", "content": {"hello": 1}}
        answer = await page.handled(
            {"type": "comm_msg", "comm_id": counter, "data": data}, [b"abc", b"\x00\x01"]
        )
        [custom] = [m for m in replies(answer, "comm_msg") if m["data"]["method"] == "custom"]
        assert custom["data"]["content"] == {"got": {"hello": 1}, "sizes": [3, 2]}
        assert page.buffers[page.messages.index(custom)] == [b"cba", b"\x01\x00"]
        assert page.models[counter]["value"] == 1

        await page.set(counter, value=10)
        assert self.session_of(page).comms.widgets[counter].value == 10

    @gen_test
    async def test_an_anywidget_ignores_undeclared_keys_but_never_takes_code_from_the_page(self):
        page = await self.open_page()
        counter = page.model("AnyModel")
        widget = self.session_of(page).comms.widgets[counter]
        answer = await page.set(counter, value=3, _js2py_widget_layoutDelta={"x": 1})
        assert not replies(answer, "reply_error")
        assert widget.value == 3
        for trait in ("_esm", "_css", "_anywidget_id", "_model_module"):
            answer = await page.set(counter, **{trait: "export default {}"})
            [error] = replies(answer, "reply_error")
            assert f"Counter.{trait} is read-only" in error["message"]
        assert "export default { render" in widget._esm


class TestBinaryBuffers(NotebookTestCase):
    """Each buffer of a page's frame reaches Python as a buffer of its own, as a kernel
    gives it (a memoryview of its own message part), not a window on the whole frame."""

    cells = (
        "import anywidget, traitlets\n"
        "class Pair(anywidget.AnyWidget):\n"
        "    _esm = 'export default { render() {} }'\n"
        "    a = traitlets.Bytes(b'').tag(sync=True)\n"
        "    b = traitlets.Bytes(b'').tag(sync=True)\n"
        "    back = traitlets.Any().tag(sync=True)\n"
        "    got = traitlets.List().tag(sync=True)\n"
        "pair = Pair(a=b'\\x01\\x02\\x03', b=b'\\x04\\x05\\x06\\x07')\n"
        "def seen(change):\n"
        "    new = change['new']\n"
        "    pair.got = [[type(v).__name__, bytes(v).hex(), bytes(v.obj).hex()] for v in new]\n"
        "pair.observe(seen, 'back')\n"
        "pair",
    )

    @gen_test
    async def test_python_gets_each_buffer_as_its_own_and_sends_each_as_its_own_part(self):
        page = await self.open_page()
        pair = page.model("AnyModel")
        [opened] = [
            m for m in page.messages if m.get("comm_id") == pair and m["type"] == "comm_open"
        ]
        paths = opened["data"]["buffer_paths"]
        parts = dict(zip(map(tuple, paths), page.buffers[page.messages.index(opened)], strict=True))
        assert parts == {("a",): b"\x01\x02\x03", ("b",): b"\x04\x05\x06\x07"}

        data = {
            "method": "update",
            "state": {"back": [None, None]},
            "buffer_paths": [["back", 0], ["back", 1]],
        }
        answer = await page.handled(
            {"type": "comm_msg", "comm_id": pair, "data": data}, [b"\x09\x08", b"\x07"]
        )
        assert not replies(answer, "reply_error")
        got = self.session_of(page).comms.widgets[pair].got
        assert got == [["memoryview", "0908", "0908"], ["memoryview", "07", "07"]]
