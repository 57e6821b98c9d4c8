"""ipycanvas in many sessions: each page's canvases draw through a manager of its own.

ipycanvas makes one `_CanvasManager` widget at import and every canvas sends its
drawing through it (runtime/host/singletons.py); here each session gets its own, whether
ipycanvas was imported before any session ran or first in a session's cell.
"""

from __future__ import annotations

import asyncio
import json
import sys

import ipycanvas  # imported before any session, as a server that imports it at start
from ipycanvas.canvas import COMMANDS
from runtime_harness import NotebookTestCase, Page
from tornado.testing import gen_test

NAMES = {number: name for name, number in COMMANDS.items()}
CANVASES = ("CanvasModel", "RoughCanvasModel", "MultiCanvasModel")

DRAWING = (
    "from ipycanvas import Canvas, MultiCanvas, RoughCanvas, hold_canvas\n"
    "import ipywidgets as widgets",
    "canvas = Canvas(width=40, height=30)\n"
    "canvas.fill_rect(1, 2, 3, 4)\n"
    "layers = MultiCanvas(2, width=40, height=30)\n"
    "layers[1].fill_rect(5, 6, 7, 8)\n"
    "rough = RoughCanvas(width=40, height=30)\n"
    "rough.stroke_rect(9, 10, 11, 12)\n"
    "with hold_canvas():\n"
    "    canvas.fill_rect(13, 14, 15, 16)\n"
    "    canvas.fill_rect(17, 18, 19, 20)\n"
    "draw = widgets.Button(description='draw')\n"
    "draw.on_click(lambda button: canvas.fill_rect(21, 22, 23, 24))\n"
    "widgets.VBox([canvas, layers, rough, draw])",
)


def drawing(page: Page) -> list[tuple[str, list[tuple]]]:
    """Every batch of drawing commands the page got: the manager's comm id, and each
    command as (name, args), a switch naming the canvas it switches to."""
    batches = []
    for number, message in enumerate(page.messages):
        if message["type"] != "comm_msg" or message["data"].get("method") != "custom":
            continue
        sent = json.loads(bytes(page.buffers[number][0]))
        commands = sent if isinstance(sent[0], list) else [sent]
        batches.append((message["comm_id"], [(NAMES[c[0]], tuple(c[1])) for c in commands]))
    return batches


class CanvasTestCase(NotebookTestCase):
    cells = DRAWING

    def assert_draws_on_its_own(self, page: Page) -> str:
        """The page has one canvas manager, every canvas of the page names it, and every
        command it got came through it and draws on the page's own canvases; its id."""
        manager = page.model("CanvasManagerModel")
        canvases = [i for i, state in page.models.items() if state["_model_name"] in CANVASES]
        assert len(canvases) == 5  # canvas, layers and its two layers, rough
        for comm_id in canvases:
            assert page.models[comm_id]["_canvas_manager"] == f"IPY_MODEL_{manager}"
        batches = drawing(page)
        assert {comm_id for comm_id, _ in batches} == {manager}
        commands = [command for _, batch in batches for command in batch]
        switched = {args[0] for name, args in commands if name == "switchCanvas"}
        assert switched <= {f"IPY_MODEL_{comm_id}" for comm_id in canvases}
        drawn = {args for name, args in commands if name in ("fillRect", "strokeRect")}
        assert {(1, 2, 3, 4), (5, 6, 7, 8), (9, 10, 11, 12)} <= drawn
        held = [batch for _, batch in batches if ("fillRect", (13, 14, 15, 16)) in batch]
        assert held and ("fillRect", (17, 18, 19, 20)) in held[0]  # hold_canvas: one message
        return manager

    async def draw_after_the_first_closes(self) -> None:
        alice, bob = await self.open_page(), await self.open_page()
        first, second = self.session_of(alice), self.session_of(bob)
        self.assert_draws_on_its_own(alice)
        manager = self.assert_draws_on_its_own(bob)
        kept = second.comms.singletons["ipycanvas"]
        alice.ws.close()
        while not first.closed or first.comms.widgets:
            await asyncio.sleep(0.01)
        assert first.comms.singletons == {}
        assert kept.comm is not None and kept.model_id == manager
        already = len(drawing(bob))
        await bob.click(bob.model("ButtonModel"))
        assert drawing(bob)[already:] == [(manager, [("fillRect", (21, 22, 23, 24))])]


class TestImportedBeforeAnySession(CanvasTestCase):
    @gen_test
    async def test_each_page_draws_through_its_own_manager(self):
        alice, bob = await self.open_page(), await self.open_page()
        assert self.assert_draws_on_its_own(alice) != self.assert_draws_on_its_own(bob)

    @gen_test
    async def test_closing_the_first_session_leaves_the_second_drawing(self):
        await self.draw_after_the_first_closes()

    @gen_test
    async def test_a_canvas_given_a_manager_keeps_it(self):
        page = await self.open_page()
        session = self.session_of(page)
        code = "own = Canvas(_canvas_manager=ipycanvas.canvas._CanvasManager())"
        namespace = session.namespace | {"ipycanvas": ipycanvas}
        await session.call(exec, code, namespace)
        assert namespace["own"]._canvas_manager is not namespace["canvas"]._canvas_manager


class TestImportedFirstInASessionsCell(CanvasTestCase):
    """ipycanvas imported for the first time by the first visitor's notebook run."""

    def setUp(self) -> None:
        self._imported = {n: m for n, m in sys.modules.items() if n.split(".")[0] == "ipycanvas"}
        for name in self._imported:
            del sys.modules[name]
        super().setUp()

    def tearDown(self) -> None:
        super().tearDown()
        for name in [n for n in sys.modules if n.split(".")[0] == "ipycanvas"]:
            del sys.modules[name]
        sys.modules.update(self._imported)

    @gen_test
    async def test_closing_the_importing_session_leaves_the_second_drawing(self):
        assert "ipycanvas.canvas" not in sys.modules
        await self.draw_after_the_first_closes()
        assert sys.modules["ipycanvas.canvas"] is not self._imported["ipycanvas.canvas"]
