"""Every widget of the ipywidgets Widget List, live in Chromium, with no kernel.

For each widget class the Widget List notebook uses, a small notebook built here shows
the widget, an observer that writes what Python received into a Label, and a Button
whose callback changes the widget in Python. The test then does what a person would on
the page and reads the Label (the page reached Python), and clicks the Button and reads
the widget (Python reached the page). Display-only widgets (a Label, a progress bar, an
image; a Controller, which needs a gamepad) have nothing a person can change on the
page; for them only the second half applies.
"""

from __future__ import annotations

import re
import struct
import textwrap
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import nbformat
import pytest
from browser import READY
from peers import PEERS
from playwright.sync_api import Locator, Page, Route, expect

pytestmark = pytest.mark.browser

WIDGET_LIST = PEERS / "Widget List.ipynb"

Act = Callable[[Page, Locator], None]
Check = Callable[[Page, Locator], None]


@dataclass(frozen=True)
class Case:
    """One widget class: how to make it, change it on the page, and change it in Python."""

    make: str  # code that binds `w`, the widget under test
    python: str  # what the Button's callback does to `w`
    shown: Check  # that the page shows what `python` did
    css: str  # a class the official front end gives the widget's view
    act: Act | None = None  # what a person does on the page; None: nothing they can do
    seen: str = ""  # what the observer then reports from Python
    display: str = "w"  # what the cell shows
    hook: str = 'w.observe(report, names="value")'  # how Python hears of the change
    report: str = 'repr(change["new"])'  # what the observer writes into the Label
    context: dict[str, str] = field(default_factory=dict)  # browser context options


def notebook(case: Case) -> tuple[str, ...]:
    """The cells of a notebook that shows `case`'s widget with an observer and a Button."""
    return (
        "import datetime\nimport ipywidgets as widgets",
        f'{case.make}\nw.add_class("t-w")\n{case.display}',
        textwrap.dedent(
            """\
            seen = widgets.Label("nothing yet")
            seen.add_class("t-seen")

            def report(change):
                seen.value = {report}

            {hook}
            go = widgets.Button(description="Change in Python")
            go.add_class("t-python")

            def change_in_python(button):
            {python}

            go.on_click(change_in_python)
            widgets.HBox([seen, go])"""
        ).format(
            report=case.report,
            hook=case.hook,
            python=textwrap.indent(case.python, "    "),
        ),
    )


def png(width: int, height: int) -> bytes:
    """A grey PNG of the given size."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack("!I", len(data)) + body + struct.pack("!I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack("!IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


# ---- What a person does on the page.


def key(name: str) -> Act:
    """Focus a slider's (first) handle and press a key, as a keyboard user moves it."""

    def act(page: Page, w: Locator) -> None:
        w.locator(".noUi-handle").first.focus()
        page.keyboard.press(name)

    return act


def type_in(text: str, into: str = "input", enter: bool = True) -> Act:
    def act(page: Page, w: Locator) -> None:
        field_ = w.locator(into).first
        field_.fill(text)
        if enter:
            field_.press("Enter")

    return act


def pick(*labels: str, into: str = "select") -> Act:
    def act(page: Page, w: Locator) -> None:
        w.locator(into).select_option(list(labels))

    return act


def click(selector: str | None = None, text: str | None = None) -> Act:
    def act(page: Page, w: Locator) -> None:
        target = w if selector is None else w.locator(selector)
        (target if text is None else target.filter(has_text=text)).first.click()

    return act


def add_tag(text: str) -> Act:
    def act(page: Page, w: Locator) -> None:
        w.click()  # the tag input shows when the widget has focus
        field_ = w.locator("input.jupyter-widget-taginput")
        field_.fill(text)
        field_.press("Enter")

    return act


def upload(page: Page, w: Locator) -> None:
    with page.expect_file_chooser() as chooser:
        w.click()
    chooser.value.set_files({"name": "hello.txt", "mimeType": "text/plain", "buffer": b"hello"})


# ---- What the page shows after the change made in Python.


def text(expected: str | re.Pattern[str] | list[str], selector: str | None = None) -> Check:
    def check(page: Page, w: Locator) -> None:
        target = w if selector is None else w.locator(selector)
        expect(target if isinstance(expected, list) else target.first).to_have_text(expected)

    return check


def value(expected: str, selector: str = "input") -> Check:
    def check(page: Page, w: Locator) -> None:
        expect(w.locator(selector).first).to_have_value(expected)

    return check


def has_class(name: str, selector: str | None = None, text_: str | None = None) -> Check:
    def check(page: Page, w: Locator) -> None:
        target = w if selector is None else w.locator(selector)
        if text_ is not None:
            target = target.filter(has_text=text_)
        expect(target.first).to_have_class(re.compile(rf"(^|\s){re.escape(name)}(\s|$)"))

    return check


def lacks_class(name: str) -> Check:
    def check(page: Page, w: Locator) -> None:
        expect(w).not_to_have_class(re.compile(rf"(^|\s){re.escape(name)}(\s|$)"))

    return check


def checked(label: str | None = None, selector: str = "input", on: bool = True) -> Check:
    def check(page: Page, w: Locator) -> None:
        target = w.get_by_label(label, exact=True) if label else w.locator(selector)
        expect(target).to_be_checked(checked=on)

    return check


def bar(width: str) -> Check:
    def check(page: Page, w: Locator) -> None:
        expect(w.locator(".progress-bar")).to_have_attribute(
            "style", re.compile(rf"width: {re.escape(width)}")
        )

    return check


def image_width(width: int) -> Check:
    def check(page: Page, w: Locator) -> None:
        page.wait_for_function(
            f"(img) => img.complete && img.naturalWidth === {width}", arg=w.element_handle()
        )

    return check


def colour_tags(*colours: str) -> Check:
    def check(page: Page, w: Locator) -> None:
        tags = w.locator("div.jupyter-widget-tag")
        expect(tags).to_have_count(len(colours))
        for tag, colour in zip(tags.all(), colours, strict=True):
            expect(tag).to_have_css("background-color", colour)

    return check


def visible(selector: str, hidden: str) -> Check:
    def check(page: Page, w: Locator) -> None:
        expect(w.locator(selector)).to_be_visible()
        expect(w.locator(hidden)).to_be_hidden()

    return check


def css(prop: str, expected: str) -> Check:
    def check(page: Page, w: Locator) -> None:
        expect(w).to_have_css(prop, expected)

    return check


# ---- The widgets, as the Widget List notebook makes them.

SLIDER = (
    "w = widgets.{}(value={}, min=0, max=10, step={}, description='Test:', continuous_update=False)"
)
BOX_CHILDREN = (
    "[widgets.Label('Pizza topping:'), widgets.RadioButtons(options=['pepperoni', 'pineapple'])]"
)
IN_A_BOX = dict(
    act=click("label", "pineapple"),
    seen="'pineapple'",
    hook='w.children[1].observe(report, names="value")',
    python="w.children += (widgets.Label('added in Python'),)",
    shown=text(re.compile("added in Python")),
)
SELECTED = 'w.observe(report, names="selected_index")'
EGGS = "['scrambled', 'sunny side up', 'poached', 'over easy']"
FRUITS = "['Apples', 'Oranges', 'Pears']"

CASES: dict[str, Case] = {
    "IntSlider": Case(
        make=SLIDER.format("IntSlider", 7, 1),
        css="widget-hslider",
        act=key("ArrowRight"),
        seen="8",
        python="w.value = 3",
        shown=text("3", ".widget-readout"),
    ),
    "FloatSlider": Case(
        make=SLIDER.format("FloatSlider", 7.5, 0.1) + "\nw.orientation = 'vertical'",
        css="widget-vslider",
        act=key("ArrowUp"),
        seen="7.6",
        python="w.value = 2.5",
        shown=text("2.50", ".widget-readout"),
    ),
    "FloatLogSlider": Case(
        make="w = widgets.FloatLogSlider(value=10, base=10, min=-10, max=10, step=0.2)",
        css="widget-hslider",
        act=key("ArrowRight"),
        report='f"{change.new:.4g}"',
        seen="15.85",
        python="w.value = 100",
        shown=text("100", ".widget-readout"),
    ),
    "IntRangeSlider": Case(
        make="w = widgets.IntRangeSlider(value=[5, 7], min=0, max=10, description='Test:')",
        css="widget-hslider",
        act=key("ArrowRight"),
        seen="(6, 7)",
        python="w.value = (1, 9)",
        shown=text(re.compile(r"^1\D+9$"), ".widget-readout"),
    ),
    "FloatRangeSlider": Case(
        make="w = widgets.FloatRangeSlider(value=[5, 7.5], min=0, max=10.0, step=0.1)",
        css="widget-hslider",
        act=key("ArrowRight"),
        report='"{:.1f} {:.1f}".format(*change.new)',
        seen="5.1 7.5",
        python="w.value = (1.5, 2.5)",
        shown=text(re.compile(r"^1\.50\D+2\.50$"), ".widget-readout"),
    ),
    "IntProgress": Case(
        make="w = widgets.IntProgress(value=7, min=0, max=10, style={'bar_color': 'maroon'})",
        css="widget-hprogress",
        python="w.value = 3",
        shown=bar("30%"),
    ),
    "FloatProgress": Case(
        make="w = widgets.FloatProgress(value=7.5, min=0, max=10.0, bar_style='info')",
        css="widget-hprogress",
        python="w.value = 2.5",
        shown=bar("25%"),
    ),
    "BoundedIntText": Case(
        make="w = widgets.BoundedIntText(value=7, min=0, max=10, description='Text:')",
        css="widget-text",
        act=type_in("9"),
        seen="9",
        python="w.value = 2",
        shown=value("2"),
    ),
    "BoundedFloatText": Case(
        make="w = widgets.BoundedFloatText(value=7.5, min=0, max=10.0, step=0.1)",
        css="widget-text",
        act=type_in("9.25"),
        seen="9.25",
        python="w.value = 2.5",
        shown=value("2.5"),
    ),
    "IntText": Case(
        make="w = widgets.IntText(value=7, description='Any:')",
        css="widget-text",
        act=type_in("1234"),
        seen="1234",
        python="w.value = -5",
        shown=value("-5"),
    ),
    "FloatText": Case(
        make="w = widgets.FloatText(value=7.5, description='Any:')",
        css="widget-text",
        act=type_in("-0.125"),
        seen="-0.125",
        python="w.value = 3.5",
        shown=value("3.5"),
    ),
    "ToggleButton": Case(
        make="w = widgets.ToggleButton(value=False, description='Click me', icon='check')",
        css="widget-toggle-button",
        act=click(),
        seen="True",
        python="w.value = False",
        shown=lacks_class("mod-active"),
    ),
    "Checkbox": Case(
        make="w = widgets.Checkbox(value=False, description='Check me', indent=False)",
        css="widget-checkbox",
        act=click("input"),
        seen="True",
        python="w.value = False",
        shown=checked(on=False),
    ),
    "Valid": Case(
        make="w = widgets.Valid(value=False, description='Valid!')",
        css="widget-valid",
        python="w.value = True",
        shown=has_class("mod-valid"),
    ),
    "Dropdown": Case(
        make="w = widgets.Dropdown(options=['1', '2', '3'], value='2', description='Number:')",
        css="widget-dropdown",
        act=pick("3"),
        seen="'3'",
        python="w.value = '1'",
        shown=value("1", "select"),
    ),
    "RadioButtons": Case(
        make="w = widgets.RadioButtons(options=['pepperoni', 'pineapple', 'anchovies'])",
        css="widget-radio",
        act=click("label", "anchovies"),
        seen="'anchovies'",
        python="w.value = 'pineapple'",
        shown=checked("pineapple"),
    ),
    "Select": Case(
        make="w = widgets.Select(options=['Linux', 'Windows', 'macOS'], value='macOS')",
        css="widget-select",
        act=pick("Linux"),
        seen="'Linux'",
        python="w.value = 'Windows'",
        shown=value("Windows", "select"),
    ),
    "SelectionSlider": Case(
        make=f"w = widgets.SelectionSlider(options={EGGS}, value='sunny side up')",
        css="widget-hslider",
        act=key("ArrowRight"),
        seen="'poached'",
        python="w.value = 'over easy'",
        shown=text("over easy", ".widget-readout"),
    ),
    "SelectionRangeSlider": Case(
        make=(
            "dates = [datetime.date(2015, i, 1) for i in range(1, 13)]\n"
            "w = widgets.SelectionRangeSlider(\n"
            "    options=[(d.strftime('%b'), d) for d in dates], index=(0, 11))"
        ),
        css="widget-hslider",
        act=key("ArrowRight"),
        report='" ".join(d.strftime("%b") for d in change.new)',
        seen="Feb Dec",
        python="w.index = (2, 4)",
        shown=text(re.compile(r"^Mar\W+May$"), ".widget-readout"),
    ),
    "ToggleButtons": Case(
        make="w = widgets.ToggleButtons(options=['Slow', 'Regular', 'Fast'])",
        css="widget-toggle-buttons",
        act=click("button", "Fast"),
        seen="'Fast'",
        python="w.value = 'Slow'",
        shown=has_class("mod-active", "button", "Slow"),
    ),
    "SelectMultiple": Case(
        make=f"w = widgets.SelectMultiple(options={FRUITS}, value=['Oranges'])",
        css="widget-select-multiple",
        act=pick("Apples", "Pears"),
        seen="('Apples', 'Pears')",
        python="w.value = ['Oranges']",
        shown=lambda page, w: expect(w.locator("select")).to_have_values(["Oranges"]),
    ),
    "Text": Case(
        make="w = widgets.Text(value='Hello World', placeholder='Type something')",
        css="widget-text",
        act=type_in("Hi there", enter=False),
        seen="'Hi there'",
        python="w.value = 'from Python'",
        shown=value("from Python"),
    ),
    "Textarea": Case(
        make="w = widgets.Textarea(value='Hello World')",
        css="widget-textarea",
        act=type_in("two\nlines", into="textarea", enter=False),
        seen="'two\\nlines'",
        python="w.value = 'from Python'",
        shown=value("from Python", "textarea"),
    ),
    "Combobox": Case(
        make=(
            "w = widgets.Combobox(placeholder='Choose Someone', ensure_option=True,\n"
            "    options=['Paul', 'John', 'George', 'Ringo'])"
        ),
        css="widget-text",
        act=type_in("Ringo"),
        seen="'Ringo'",
        python="w.value = 'Paul'",
        shown=value("Paul"),
    ),
    "Password": Case(
        make="w = widgets.Password(value='password', placeholder='Enter password')",
        css="widget-text",
        act=type_in("s3cret", into="input[type=password]", enter=False),
        seen="'s3cret'",
        python="w.value = 'from Python'",
        shown=value("from Python"),
    ),
    "Label": Case(
        make="w = widgets.Label(value='The $m$ in $E=mc^2$:')",
        css="widget-label",
        python="w.value = 'changed in Python'",
        shown=text("changed in Python"),
    ),
    "HTML": Case(
        make="w = widgets.HTML(value='Hello <b>World</b>', description='Some HTML')",
        css="widget-html",
        python="w.value = 'Hello <b>Python</b>'",
        shown=text("Python", ".widget-html-content b"),
    ),
    "HTMLMath": Case(
        make=r"w = widgets.HTMLMath(value='Some math and <i>HTML</i>: \\(x^2\\)')",
        css="widget-htmlmath",
        python=r"w.value = 'now <i>changed</i>: \\(y^3\\)'",
        shown=text("changed", ".widget-htmlmath-content i"),
    ),
    "Image": Case(
        make=f"w = widgets.Image(value=bytes.fromhex('{png(4, 2).hex()}'), format='png')",
        css="widget-image",
        python=f"w.value = bytes.fromhex('{png(3, 5).hex()}')",
        shown=image_width(3),
    ),
    "Button": Case(
        make="w = widgets.Button(description='Click me', tooltip='Click me', icon='check')",
        css="widget-button",
        act=click(),
        hook="w.on_click(lambda button: setattr(seen, 'value', 'clicked'))",
        seen="clicked",
        python="w.description = 'Changed'",
        shown=text("Changed"),
    ),
    "Play": Case(
        make=(
            "w = widgets.Play(value=0, min=0, max=3, step=1, interval=20)\n"
            "mirror = widgets.IntSlider()\n"
            "mirror.add_class('t-mirror')\n"
            "widgets.jslink((w, 'value'), (mirror, 'value'))"
        ),
        display="widgets.HBox([w, mirror])",
        css="widget-play",
        act=click("button >> nth=0"),  # play
        seen="3",
        python="w.value = 2",
        shown=lambda page, w: expect(page.locator(".t-mirror .widget-readout")).to_have_text("2"),
    ),
    "TagsInput": Case(
        make=(
            "w = widgets.TagsInput(value=['pizza', 'fries'], allow_duplicates=False,\n"
            "    allowed_tags=['pizza', 'fries', 'tomatoes', 'steak'])"
        ),
        css="jupyter-widget-tagsinput",
        act=add_tag("steak"),
        seen="['pizza', 'fries', 'steak']",
        python="w.value = ['tomatoes']",
        shown=text(["tomatoes"], "div.jupyter-widget-tag"),
    ),
    "ColorsInput": Case(
        make="w = widgets.ColorsInput(value=['red', '#2f6d30'])",
        css="jupyter-widget-tagsinput",
        act=add_tag("blue"),
        seen="['red', '#2f6d30', 'blue']",
        python="w.value = ['green']",
        shown=colour_tags("rgb(0, 128, 0)"),
    ),
    "FloatsInput": Case(
        make="w = widgets.FloatsInput(value=[1.3, 4.56, 78.90], tag_style='info', format='.2f')",
        css="jupyter-widget-tagsinput",
        act=add_tag("2.5"),
        seen="[1.3, 4.56, 78.9, 2.5]",
        python="w.value = [0.5]",
        shown=text(["0.50"], "div.jupyter-widget-tag"),
    ),
    "IntsInput": Case(
        make="w = widgets.IntsInput(value=[1, 4, 3243], min=0, max=1000000, format='$,d')",
        css="jupyter-widget-tagsinput",
        act=add_tag("7"),
        seen="[1, 4, 3243, 7]",
        python="w.value = [1000]",
        shown=text(["$1,000"], "div.jupyter-widget-tag"),
    ),
    "DatePicker": Case(
        make="w = widgets.DatePicker(description='Pick a Date')",
        css="widget-datepicker",
        act=type_in("2024-03-05", enter=False),
        seen="datetime.date(2024, 3, 5)",
        python="w.value = datetime.date(2020, 1, 2)",
        shown=value("2020-01-02"),
    ),
    "TimePicker": Case(
        make="w = widgets.TimePicker(description='Pick a Time')",
        css="widget-timepicker",
        act=type_in("12:34", enter=False),
        seen="datetime.time(12, 34)",
        python="w.value = datetime.time(8, 15)",
        shown=value("08:15"),
    ),
    "DatetimePicker": Case(
        make="w = widgets.DatetimePicker(description='Pick a Time')",
        css="widget-datetimepicker",
        act=type_in("2024-03-05T12:34", enter=False),
        # The page is in Paris (UTC+1 in March): Python gets the moment, in UTC.
        report="change.new.astimezone(datetime.timezone.utc).isoformat()",
        seen="2024-03-05T11:34:00+00:00",
        python="w.value = datetime.datetime(2020, 7, 2, 8, 15, tzinfo=datetime.timezone.utc)",
        shown=value("2020-07-02T10:15"),  # Paris summer time, UTC+2
        context={"timezone_id": "Europe/Paris"},
    ),
    "NaiveDatetimePicker": Case(
        make="w = widgets.NaiveDatetimePicker(description='Pick a Time')",
        css="widget-datetimepicker",
        act=type_in("2024-03-05T12:34", enter=False),
        seen="datetime.datetime(2024, 3, 5, 12, 34)",
        python="w.value = datetime.datetime(2020, 1, 2, 8, 15)",
        shown=value("2020-01-02T08:15"),
    ),
    "ColorPicker": Case(
        make="w = widgets.ColorPicker(concise=False, description='Pick a color', value='blue')",
        css="widget-colorpicker",
        act=type_in("red", into="input[type=text]"),
        seen="'red'",
        python="w.value = '#00ff00'",
        shown=value("#00ff00", "input[type=color]"),
    ),
    "FileUpload": Case(
        make="w = widgets.FileUpload(accept='', multiple=False)",
        css="widget-upload",
        act=upload,
        report='", ".join(f"{f.name}: {bytes(f.content).decode()}" for f in change.new)',
        seen="hello.txt: hello",
        python="w.value = ()",
        shown=text(re.compile(r"Upload \(0\)")),
    ),
    "Controller": Case(
        make="w = widgets.Controller(index=0)",
        css="widget-controller",
        # A person needs a gamepad to change it; Python sets what a connected one would.
        python="w.set_trait('name', 'Test gamepad')",
        shown=text("Test gamepad"),
    ),
    "Box": Case(make=f"w = widgets.Box({BOX_CHILDREN})", css="widget-box", **IN_A_BOX),
    "HBox": Case(make=f"w = widgets.HBox({BOX_CHILDREN})", css="widget-hbox", **IN_A_BOX),
    "VBox": Case(make=f"w = widgets.VBox({BOX_CHILDREN})", css="widget-vbox", **IN_A_BOX),
    "GridBox": Case(
        make=(
            f"w = widgets.GridBox({BOX_CHILDREN},\n"
            "    layout=widgets.Layout(grid_template_columns='repeat(3, 100px)'))"
        ),
        css="widget-gridbox",
        **IN_A_BOX,
    ),
    "Layout": Case(
        make="w = widgets.Label('laid out', layout=widgets.Layout(width='200px'))",
        css="widget-label",
        python="w.layout.width = '300px'",
        shown=css("width", "300px"),
    ),
    "Accordion": Case(
        make=(
            "w = widgets.Accordion(children=[widgets.IntSlider(), widgets.Text()],\n"
            "    titles=('Slider', 'Text'))"
        ),
        css="widget-accordion",
        act=click(".jupyter-widget-Collapse-header", "Text"),
        hook=SELECTED,
        seen="1",
        python="w.selected_index = 0",
        shown=has_class("jupyter-widget-Collapse-open", ".jupyter-widget-Collapse", "Slider"),
    ),
    "Tab": Case(
        make=(
            "w = widgets.Tab()\n"
            "w.children = [widgets.Text(description=name) for name in ['P0', 'P1', 'P2']]\n"
            "w.titles = ['0', '1', '2']"
        ),
        css="widget-tab",
        act=click(".lm-TabBar-tab", "2"),
        hook=SELECTED,
        seen="2",
        python="w.selected_index = 1",
        shown=has_class("lm-mod-current", ".lm-TabBar-tab", "1"),
    ),
    "Stack": Case(
        make=(
            "w = widgets.Stack([widgets.Button(description='Click here'), widgets.IntSlider()],\n"
            "    selected_index=0)\n"
            "chooser = widgets.Dropdown(options=['button', 'slider'])\n"
            "chooser.add_class('t-chooser')\n"
            "widgets.jslink((chooser, 'index'), (w, 'selected_index'))"
        ),
        display="widgets.VBox([chooser, w])",
        css="widget-container",
        # The Widget List's way: a Dropdown jslinked to the Stack, in the page.
        act=lambda page, w: page.locator(".t-chooser select").select_option("slider"),
        hook=SELECTED,
        seen="1",
        python="w.selected_index = 0",
        shown=visible(".widget-button", ".widget-slider"),
    ),
}


def widget_classes_of_the_widget_list() -> set[str]:
    notebook_ = nbformat.read(WIDGET_LIST, as_version=4)
    code = "\n".join(c.source for c in notebook_.cells if c.cell_type == "code")
    return set(re.findall(r"widgets\.([A-Z]\w*)\(", code))


@pytest.mark.skipif(not WIDGET_LIST.is_file(), reason=f"{WIDGET_LIST} is missing")
def test_every_widget_class_of_the_widget_list_is_tested():
    used = widget_classes_of_the_widget_list()
    assert len(used) > 40
    assert used - set(CASES) == set()


@pytest.mark.parametrize("name", list(CASES))
def test_a_widget_renders_and_changes_reach_python_and_the_page(name, serve, open_tab):
    case = CASES[name]
    tab = open_tab(serve(*notebook(case)), **case.context)
    page = tab.page
    w = page.locator(".t-w")
    expect(w).to_be_visible()
    expect(w).to_have_class(re.compile(rf"(^|\s){case.css}(\s|$)"))
    seen = page.locator(".t-seen")
    expect(seen).to_have_text("nothing yet")

    if case.act is not None:
        case.act(page, w)
        expect(seen).to_have_text(case.seen)

    page.locator(".t-python").click()
    case.shown(page, w)
    assert tab.errors == []


# ---- interact, callbacks, anywidget, jslink, and visitors kept apart.


def test_interact_redraws_its_output_when_the_slider_moves(serve, open_tab):
    tab = open_tab(
        serve(
            "from ipywidgets import interact",
            "@interact(x=(0, 10))\ndef square(x=3):\n    print(f'{x} squared is {x * x}')",
        )
    )
    page = tab.page
    output = page.locator(".widget-interact .widget-output")
    expect(output).to_have_text("3 squared is 9")
    page.locator(".widget-interact .noUi-handle").focus()
    page.keyboard.press("ArrowRight")
    expect(output).to_have_text("4 squared is 16")
    page.keyboard.press("End")
    expect(output).to_have_text("10 squared is 100")  # redrawn, not appended
    assert tab.errors == []


def test_the_page_says_when_its_first_widget_is_drawn_and_the_notebook_goes_on(serve, open_tab):
    # The server pauses the run after the slider's cell until the page says it is drawn;
    # with a pause this long, only the page's `ready` lets the last cell run.
    server = serve("import ipywidgets\nipywidgets.IntSlider()", "print('the rest of the notebook')")
    server.sessions.pace_timeout = 600
    tab = open_tab(server)
    expect(tab.page.locator(".widget-slider")).to_be_visible()
    expect(tab.page.get_by_text("the rest of the notebook")).to_be_visible()
    assert tab.errors == []


def test_a_long_page_shows_its_rest_with_its_widgets_and_anchors(serve, open_tab):
    # The cells after the first screen come hidden and are shown once the notebook runs;
    # the slider is the first widget and lies in that rest.
    parts = [f"md:## Part {n}\n" + "Some words about this part. " * 40 for n in range(1, 9)]
    server = serve(
        *parts, "import ipywidgets\nipywidgets.IntSlider(description='late')", "md:## The end"
    )
    tab = open_tab(server, wait=False)
    tab.page.goto(server.url + "#The-end")
    tab.wait_ready()
    assert tab.page.locator(".nbf-rest").is_visible()  # now, not after the 3 s fallback
    slider = tab.page.locator(".widget-slider")
    expect(slider).to_be_visible()
    assert slider.bounding_box()["width"] > 100  # laid out where it shows, not while hidden
    expect(tab.page.get_by_role("heading", name="The end")).to_be_in_viewport()
    assert tab.errors == []


def test_a_buttons_on_click_runs_and_prints_into_an_output(serve, open_tab):
    tab = open_tab(
        serve(
            "import ipywidgets as widgets\n"
            "button = widgets.Button(description='Count')\n"
            "out = widgets.Output()\n"
            "clicks = []\n"
            "def count(b):\n"
            "    clicks.append(b)\n"
            "    with out:\n"
            "        print(f'click {len(clicks)}')\n"
            "button.on_click(count)\n"
            "widgets.VBox([button, out])"
        )
    )
    button = tab.page.get_by_role("button", name="Count")
    button.click()
    button.click()
    expect(tab.page.locator(".widget-output")).to_have_text(
        re.compile(r"^\s*click 1\s+click 2\s*$")
    )
    assert tab.errors == []


COUNTER = '''\
import anywidget
import ipywidgets as widgets
import traitlets


class Counter(anywidget.AnyWidget):
    _esm = """
    function render({ model, el }) {
      const button = document.createElement("button");
      button.className = "t-counter";
      const show = () => { button.textContent = `count is ${model.get("count")}`; };
      button.addEventListener("click", () => {
        model.set("count", model.get("count") + 1);
        model.save_changes();
      });
      model.on("change:count", show);
      show();
      el.appendChild(button);
    }
    export default { render };
    """
    _css = ".t-counter { font-weight: bold; }"
    count = traitlets.Int(0).tag(sync=True)


w = Counter()
w'''


def test_an_anywidget_counter_counts_clicks_in_python_and_shows_pythons_count(serve, open_tab):
    case = Case(
        make=COUNTER,
        python="w.count = 10",
        shown=text("count is 10", ".t-counter"),
        css="t-w",
        hook='w.observe(report, names="count")',
    )
    tab = open_tab(serve(*notebook(case)))
    page = tab.page
    counter = page.locator(".t-counter")
    expect(counter).to_have_text("count is 0")
    expect(counter).to_have_css("font-weight", "700")  # its _css is applied
    for _ in range(3):
        counter.click()
    expect(page.locator(".t-seen")).to_have_text("3")
    page.locator(".t-python").click()
    expect(counter).to_have_text("count is 10")
    assert tab.errors == []


def test_jslink_runs_in_the_page_and_the_linked_value_reaches_python(serve, open_tab):
    # Python links nothing: only the page's Link model can move `b`, and `c` one way.
    tab = open_tab(
        serve(
            "import ipywidgets as widgets\n"
            "a = widgets.IntSlider(value=1, description='a')\n"
            "b = widgets.IntText(description='b')\n"
            "c = widgets.IntText(description='c')\n"
            "seen_b, seen_c = widgets.Label(), widgets.Label()\n"
            "b.observe(lambda change: setattr(seen_b, 'value', f'b is {change.new}'), 'value')\n"
            "c.observe(lambda change: setattr(seen_c, 'value', f'c is {change.new}'), 'value')\n"
            "widgets.jslink((a, 'value'), (b, 'value'))\n"
            "widgets.jsdlink((a, 'value'), (c, 'value'))\n"
            "widgets.VBox([a, b, c, seen_b, seen_c])"
        )
    )
    page = tab.page
    b, c = page.get_by_label("b", exact=True), page.get_by_label("c", exact=True)
    expect(b).to_have_value("1")
    page.locator(".noUi-handle").focus()
    page.keyboard.press("ArrowRight")
    expect(b).to_have_value("2")
    expect(c).to_have_value("2")
    expect(page.get_by_text("b is 2")).to_be_visible()
    b.fill("5")
    b.press("Enter")
    expect(page.locator(".widget-readout")).to_have_text("5")  # both ways
    c.fill("9")
    c.press("Enter")
    expect(page.get_by_text("c is 9")).to_be_visible()
    expect(page.locator(".widget-readout")).to_have_text("5")  # one way only
    assert tab.errors == []


def test_two_visitors_of_the_same_notebook_never_see_each_others_changes(serve, open_tab):
    case = CASES["IntSlider"]
    server = serve(*notebook(case))
    first, second = open_tab(server).page, open_tab(server).page
    assert server.sessions is not None and len(server.sessions) == 2

    first.locator(".noUi-handle").focus()
    first.keyboard.press("ArrowRight")
    expect(first.locator(".t-seen")).to_have_text("8")
    second.locator(".t-python").click()
    expect(second.locator(".widget-readout")).to_have_text("3")
    second.locator(".noUi-handle").focus()
    second.keyboard.press("ArrowLeft")
    expect(second.locator(".t-seen")).to_have_text("2")

    expect(first.locator(".widget-readout")).to_have_text("8")
    expect(first.locator(".t-seen")).to_have_text("8")
    first.reload()
    first.wait_for_function(READY)  # a new page is a new session, from the notebook's start
    expect(first.locator(".widget-readout")).to_have_text("7")
    expect(second.locator(".widget-readout")).to_have_text("2")


def test_interact_makes_the_widget_a_type_annotation_asks_for(serve, open_tab):
    page = open_tab(
        serve(
            "import enum\nfrom ipywidgets import interact",
            "class Colour(enum.Enum):\n    red = 1\n    blue = 2",
            "@interact\ndef f(x: float, colour: Colour):\n    print(x * 2, colour.name)",
        )
    ).page
    number = page.locator(".widget-interact input[type=number]")
    expect(number).to_have_value("0")  # a FloatText, not a Text saying 'float'
    page.locator(".widget-interact select").select_option("blue")  # a Dropdown of the Enum
    number.fill("4")
    number.press("Enter")
    expect(page.locator(".widget-interact .widget-output")).to_have_text("8.0 blue")


def test_errors_name_cell_and_line_and_no_traceback_reaches_the_page(serve, open_tab, monkeypatch):
    # As when make_app is embedded in a program that never configured logging: the
    # runtime's log then goes through logging's last resort, which writes to sys.stderr.
    monkeypatch.setattr("logging.root.handlers", [])
    tab = open_tab(
        serve(
            "import ipywidgets as widgets\nfrom ipywidgets import interact",
            "def ratio(n):\n    return 1 / n",
            "ratio(0)",
            "@interact(n=(0, 2))\ndef show(n=1):\n    print(ratio(n))",
        )
    )
    page = tab.page
    expect(page.locator(".nbf-error")).to_have_text(
        "notebook.ipynb, cell 2, line 2: ZeroDivisionError: division by zero"
    )
    output = page.locator(".widget-interact .widget-output")
    expect(output).to_have_text("1.0")
    page.locator(".noUi-handle").focus()
    page.keyboard.press("Home")
    expect(output).to_have_text(
        "notebook.ipynb, cell 2, line 2: ZeroDivisionError: division by zero"
    )
    assert "Traceback" not in page.locator("body").inner_text()
    assert tab.errors == []


GAMEPAD = """
const pad = {
  id: 'Test gamepad', index: 0, connected: true, mapping: 'standard', timestamp: 1,
  buttons: [{ pressed: true, value: 1 }], axes: [0.5],
};
navigator.getGamepads = () => [pad];
"""


def test_a_gamepad_on_the_page_reaches_the_controller_in_python(serve, open_tab):
    case = Case(
        make="w = widgets.Controller(index=0)",
        python="pass",
        shown=text("Test gamepad"),
        css="widget-controller",
        hook='w.observe(report, names="name")',
    )
    tab = open_tab(serve(*notebook(case)), init_script=GAMEPAD)
    expect(tab.page.locator(".t-w")).to_contain_text("Test gamepad")  # the page sees it
    expect(tab.page.locator(".t-seen")).to_have_text("'Test gamepad'", timeout=2000)


def test_an_anywidget_shows_the_classes_python_gave_it_as_in_jupyter(serve, open_tab):
    # add_class comes as an update after the comm opens; anywidget applies updates once
    # its module has loaded, so the page must wait for them before it shows the view.
    tab = open_tab(
        serve(
            "import anywidget\nimport ipywidgets as widgets\n"
            "class Hello(anywidget.AnyWidget):\n"
            "    _esm = 'export default { render({ el }) { el.textContent = \"hi\"; } }'\n"
            "alone, boxed = Hello(), Hello()\n"
            "alone.add_class('t-alone')\nboxed.add_class('t-boxed')\n"
            "display(alone)\nwidgets.VBox([boxed])"
        )
    )
    expect(tab.page.locator(".t-alone")).to_have_text("hi")
    expect(tab.page.locator(".t-boxed")).to_have_text("hi")
    assert tab.errors == []


BYTES_PAIR = '''\
import anywidget
import ipywidgets as widgets
import traitlets


class Pair(anywidget.AnyWidget):
    _esm = """
    const same = (view, bytes) => {
      const whole = new Uint8Array(view.buffer);  // what libraries do with a buffer
      return whole.length === bytes.length && whole.every((b, i) => b === bytes[i]);
    };
    function render({ model, el }) {
      const a = same(model.get("a"), [1, 2, 3]);
      const b = same(model.get("b"), [4, 5, 6, 7]);
      el.className = "t-pair";
      el.textContent = `a ${a}, b ${b}`;
      model.set("back", new DataView(new Uint8Array([9, 8, 7]).buffer));
      model.save_changes();
    }
    export default { render };
    """
    a = traitlets.Bytes(b"").tag(sync=True)
    b = traitlets.Bytes(b"").tag(sync=True)
    back = traitlets.Any().tag(sync=True)


w = Pair(a=bytes([1, 2, 3]), b=bytes([4, 5, 6, 7]))
seen = widgets.Label()
seen.add_class("t-seen")


def report(change):
    # A buffer of its own: the memoryview's whole underlying object is the bytes sent.
    seen.value = f"{bytes(change.new).hex()} of {bytes(change.new.obj).hex()}"


w.observe(report, "back")
widgets.VBox([w, seen])'''


def test_each_binary_buffer_is_its_own_buffer_on_the_page_and_in_python(serve, open_tab):
    # As in Jupyter: a model's Bytes arrive as DataViews of their own ArrayBuffers (not
    # windows on the WebSocket frame), and what the page sends is received as it is.
    tab = open_tab(serve(BYTES_PAIR))
    expect(tab.page.locator(".t-pair")).to_have_text("a true, b true")
    expect(tab.page.locator(".t-seen")).to_have_text("090807 of 090807")
    assert tab.errors == []


class HeldRequests:
    """A route handler that holds back the requests it gets until `release()`."""

    def __init__(self) -> None:
        self.routes: list[Route] = []
        self.released = False

    def __call__(self, route: Route) -> None:
        if self.released:
            route.continue_()
        else:
            self.routes.append(route)

    def release(self) -> None:
        self.released = True
        for route in self.routes:
            route.continue_()


def test_a_widget_is_shown_while_the_code_of_an_output_widget_before_it_still_loads(
    serve, open_tab
):
    # A view waits for its own models and those they refer to, not for every model the
    # page has heard of: an Output widget whose code is still loading holds up no slider.
    held = HeldRequests()
    tab = open_tab(
        serve(
            "import ipywidgets as widgets\nout = widgets.Output()\nout",
            "slider = widgets.IntSlider(value=7)\nslider.add_class('t-slider')\nslider",
        ),
        wait=False,
        setup=lambda context: context.route("**/widgets-output-*.js", held),
    )
    expect(tab.page.locator(".t-slider .widget-readout")).to_have_text("7")
    expect(tab.page.locator(".widget-output")).to_have_count(0)
    held.release()
    expect(tab.page.locator(".widget-output")).to_have_count(1)
    tab.wait_ready()
    assert tab.errors == []


def test_an_html_description_is_sanitized_and_shown_as_html(serve, open_tab):
    # The sanitizer loads on demand (frontend/src/sanitize.js); the view waits for it.
    tab = open_tab(
        serve(
            "import ipywidgets as widgets\n"
            'html = \'<b class="t-bold">n</b><img src=x onerror="document.title=1">\'\n'
            "widgets.IntSlider(description=html, description_allow_html=True)"
        )
    )
    expect(tab.page.locator(".widget-slider b.t-bold")).to_have_text("n")
    assert tab.page.locator(".widget-slider img[onerror]").count() == 0
    assert tab.page.title() != "1"


def test_a_visitor_whose_page_never_connects_makes_no_session(serve, open_tab):
    # A link preview or a crawler reads the page without running it: no notebook code
    # runs for it, and no widget is made, until a page opens its socket.
    server = serve("md:# Slider", "import ipywidgets\nipywidgets.IntSlider(value=4)")
    tab = open_tab(server, wait=False, java_script_enabled=False)
    expect(tab.page.get_by_role("heading", name="Slider")).to_be_visible()
    tab.page.wait_for_load_state("load")
    assert len(server.sessions) == 0
    open_tab(server)
    assert len(server.sessions) == 1
