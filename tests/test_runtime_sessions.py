"""Sessions: one per open page, isolated from each other, and gone when idle."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import weakref

import ipywidgets.widgets.widget as ipywidgets_widget
from runtime_harness import GATES, RUNS, Gate, NotebookTestCase, Page
from tornado.testing import gen_test

SLIDER = (
    "md:# Two visitors",
    "import ipywidgets as widgets\n"
    "slider = widgets.IntSlider(description='n')\n"
    "shown = widgets.Label()\n"
    "def on_change(change):\n"
    "    shown.value = f'got {change.new}'\n"
    "slider.observe(on_change, 'value')\n"
    "widgets.VBox([slider, shown])",
)


class TestIsolation(NotebookTestCase):
    cells = SLIDER

    @gen_test
    async def test_one_visitors_change_never_reaches_another_visitors_page(self):
        alice, bob = await self.open_page(), await self.open_page()
        before = len(bob.messages)
        await alice.set(alice.model("IntSliderModel"), value=7)

        assert alice.models[alice.model("LabelModel")]["value"] == "got 7"
        bob_slider = self.session_of(bob).comms.widgets[bob.model("IntSliderModel")]
        assert bob_slider.value == 0
        await bob.set(bob.model("IntSliderModel"), value=3)
        assert [m["type"] for m in bob.messages[before:]].count("comm_msg") == 2  # echo, label
        assert bob.models[bob.model("LabelModel")]["value"] == "got 3"
        assert alice.models[alice.model("LabelModel")]["value"] == "got 7"

    @gen_test
    async def test_each_page_has_its_own_widget_models(self):
        alice, bob = await self.open_page(), await self.open_page()
        assert alice.models and bob.models
        assert not set(alice.models) & set(bob.models)
        for page in (alice, bob):
            assert set(self.session_of(page).comms.widgets) == set(page.models)

    @gen_test
    async def test_a_page_cannot_touch_another_pages_widgets(self):
        alice, bob = await self.open_page(), await self.open_page()
        replies = await bob.set(alice.model("IntSliderModel"), value=9)
        assert any(
            m["type"] == "reply_error" and "unknown comm id" in m["message"] for m in replies
        )
        assert self.session_of(alice).comms.widgets[alice.model("IntSliderModel")].value == 0


LOGGING = (
    "import logging\n"
    "import ipywidgets as widgets\n"
    "seen = []\n"
    "class Keep(logging.Handler):\n"
    "    def emit(self, record):\n"
    "        seen.append(record.getMessage())\n"
    "logger = logging.getLogger(__name__)\n"
    "logger.addHandler(Keep())\n"
    "logger.setLevel(logging.INFO)\n"
    "button = widgets.Button()\n"
    "button.on_click(lambda b: logging.getLogger(__name__ + '.clicks').info('clicked'))\n"
    "logger.info('started')\n"
    "button",
)


class TestNotebookLoggers(NotebookTestCase):
    """A notebook's `logging.getLogger(__name__)` is its own in each session, as each
    visitor's kernel would make it under Voilà."""

    cells = LOGGING

    @gen_test
    async def test_each_visitors_handler_gets_only_their_own_records(self):
        alice, bob = await self.open_page(), await self.open_page()
        await alice.click(alice.model("ButtonModel"))
        assert self.session_of(alice).namespace["seen"] == ["started", "clicked"]
        assert self.session_of(bob).namespace["seen"] == ["started"]
        loggers = [self.session_of(p).namespace["logger"] for p in (alice, bob)]
        assert loggers[0] is not loggers[1] and loggers[0].name == "__main__"

    @gen_test
    async def test_a_closed_sessions_handlers_are_gone(self):
        page = await self.open_page()
        logger = self.session_of(page).namespace["logger"]
        assert logger.handlers
        await self.sessions.close(self.session_of(page))
        assert logger.handlers == []
        assert logging.getLogger("__main__").handlers == []  # the process's own, untouched


class TestNoConnection(NotebookTestCase):
    cells = (
        "import ipywidgets, runtime_harness\n"
        "runtime_harness.RUNS.append('no connection')\n"
        "ipywidgets.IntSlider()",
    )

    @gen_test
    async def test_a_visitor_who_never_connects_creates_no_session_and_no_widgets(self):
        registered = len(ipywidgets_widget._instances.fallback)
        for _ in range(3):
            response = await self.http_client.fetch(self.get_url("/"))
            assert response.code == 200
        assert len(self.sessions) == 0
        assert len(ipywidgets_widget._instances.fallback) == registered
        assert "no connection" not in RUNS


class TestCulling(NotebookTestCase):
    cells = SLIDER

    @gen_test
    async def test_an_idle_session_is_culled_its_widgets_closed_and_freed(self):
        page = await self.open_page()
        session = self.session_of(page)
        slider = session.comms.widgets[page.model("IntSliderModel")]
        gone = weakref.ref(slider)
        del slider
        while session.busy:  # the page hears `idle` just before the call's thread is done
            await asyncio.sleep(0.01)

        assert await self.sessions.cull(time.monotonic()) == 0
        culled = await self.sessions.cull(time.monotonic() + self.sessions.idle_timeout + 1)

        assert culled == 1
        assert len(self.sessions) == 0
        assert session.comms.widgets == {} and session.namespace == {}
        del session
        gc.collect()
        assert gone() is None
        while await page.next() is not None:
            pass
        assert page.closed

    @gen_test
    async def test_closing_the_page_closes_its_session(self):
        page = await self.open_page()
        session = self.session_of(page)
        page.ws.close()
        while len(self.sessions):
            await asyncio.sleep(0.01)
        while not session.closed or session.comms.widgets:
            await asyncio.sleep(0.01)

    @gen_test
    async def test_a_session_running_code_is_not_idle(self):
        page = await self.open_page()
        session = self.session_of(page)
        session.busy = True
        assert await self.sessions.cull(time.monotonic() + self.sessions.idle_timeout + 1) == 0
        session.busy = False
        assert page.models


GATES["slow"] = Gate()


class TestSlowCell(NotebookTestCase):
    cells = (
        "import runtime_harness\nruntime_harness.GATES['slow']()  # holds the first visitor",
        "print('done')",
    )

    @gen_test
    async def test_a_slow_cell_never_stalls_another_visitor(self):
        slow = asyncio.ensure_future(self.open_page())
        while not GATES["slow"].reached.is_set():
            await asyncio.sleep(0.01)

        fast = await self.open_page()  # the whole notebook runs while the first one waits
        assert "done" in fast.html(2)
        assert not slow.done()

        GATES["slow"].opened.set()
        assert "done" in (await slow).html(2)


class TestPacedPage(NotebookTestCase):
    """A page that opens its socket with `paced=1` gets the rest of the notebook only
    once it says it has drawn its first widget (docs/protocol.md)."""

    cells = (
        "print('before')",
        "import ipywidgets\nipywidgets.IntSlider()",
        "import runtime_harness\nruntime_harness.RUNS.append('after')\nprint('after')",
    )

    async def open_paced(self) -> Page:
        """A page whose run has stopped after its first widget, waiting for the page."""
        page = await self.connect("?paced=1")
        await page.until(lambda m: m["type"] == "output" and "widget" in m)
        session = self.session_of(page)
        while not session.waiting_for_page:
            await asyncio.sleep(0.01)
        return page

    def setUp(self) -> None:
        super().setUp()
        RUNS.clear()

    @gen_test
    async def test_the_rest_of_the_notebook_runs_once_the_page_has_drawn_its_first_widget(self):
        page = await self.open_paced()
        assert "before" in page.html(1)
        assert "after" not in RUNS
        await page.send({"type": "ready"})
        await page.until_idle()
        assert "after" in page.html(3) and RUNS == ["after"]
        assert not [m for m in page.messages if m["type"] == "reply_error"]

    @gen_test
    async def test_a_page_that_never_says_it_is_ready_gets_the_rest_after_a_while(self):
        self.sessions.pace_timeout = 0.05
        page = await self.open_paced()
        await page.until_idle()
        assert "after" in page.html(3)

    @gen_test
    async def test_a_page_that_leaves_while_its_run_waits_runs_nothing_more(self):
        page = await self.open_paced()
        session = self.session_of(page)
        page.ws.close()
        while len(self.sessions):
            await asyncio.sleep(0.01)
        await session.close()
        assert not session.waiting_for_page
        assert RUNS == []

    @gen_test
    async def test_a_client_that_does_not_ask_for_pacing_gets_the_whole_notebook(self):
        page = await self.open_page()
        assert "after" in page.html(3) and RUNS == ["after"]
        assert not [m for m in page.messages if m["type"] == "reply_error"]
