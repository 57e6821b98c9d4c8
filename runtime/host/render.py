"""HTML for what a page shows besides widgets, made by nbconvert's own renderers.

Markdown cells and the outputs a cell displays (text, HTML, images, errors as text)
look the way JupyterLab's nbconvert template renders them, and text is escaped by
that template, because we render through it: a one-cell notebook is passed to the
`lab` template's compiled Jinja template, which costs a fraction of a millisecond,
instead of a full export per output.
"""

from __future__ import annotations

import functools
import html as html_lib
import re
from collections.abc import Callable, Iterable
from typing import Any

import nbformat
import tornado.template
from nbconvert import HTMLExporter
from traitlets.config import Config

from runtime.frontend import TEMPLATES

# About a screen of rendered Markdown. The page shows what follows it once its first
# widget is drawn: laying out the whole of a long notebook first (Widget List's is 9,000
# pixels high) took the browser's one thread for 20 ms and more before its widget code
# could start.
FIRST_SCREEN_CHARS = 6000


JAVASCRIPT = "application/javascript"
# The page runs the widget front ends it serves and nothing a notebook's output carries
# (docs/security.md): such an output says so where it would have been.
JAVASCRIPT_NOTICE = (
    "This output is JavaScript (IPython.display.Javascript), which a served page does not "
    "run: it runs only the widget front ends the server serves. To run code in the page, "
    "write it as an anywidget (its _esm module)."
)
SCRIPT_NOTICE = (
    "The <script> in this HTML output does not run here: a served page runs only the "
    "widget front ends the server serves. To run code in the page, write it as an "
    "anywidget (its _esm module)."
)
_SCRIPT_TAG = re.compile(r"<script\b", re.I)


def unrun(data: dict[str, Any]) -> dict[str, Any]:
    """An output's data with JavaScript, which the page would not run, replaced by text
    saying so (for an Output widget, which renders the data on the page)."""
    if JAVASCRIPT not in data:
        return data
    return {"text/plain": JAVASCRIPT_NOTICE}


def output_html(output: dict[str, Any]) -> str:
    """One output (a stream, display_data, execute_result or error) as HTML; one whose
    script would not run says so."""
    data = output.get("data", {})
    if JAVASCRIPT in data:
        return notice_html(JAVASCRIPT_NOTICE)
    cell = nbformat.from_dict({"cell_type": "code", "source": "", "metadata": {}})
    cell.outputs = [nbformat.from_dict(output)]
    html = _render(cell)
    if _SCRIPT_TAG.search(str(data.get("text/html", ""))):
        html += notice_html(SCRIPT_NOTICE)
    return html


def notice_html(text: str) -> str:
    """A notice on the page, in place of or beside an output."""
    return f'<div class="nbf-notice nbf-notice-warning" role="note">{html_lib.escape(text)}</div>'


def markdown_html(source: str) -> str:
    """A Markdown cell as HTML, through nbconvert's Markdown filter."""
    cell = nbformat.from_dict({"cell_type": "markdown", "source": source, "metadata": {}})
    return _render(cell)


def page_html(
    title: str, cells: Iterable[tuple[int, str]], static_url: Callable[[str], str]
) -> str:
    """The page shell: each `(index, html)` pair is a rendered Markdown cell, or an
    empty container for a code cell's outputs when `html` is empty. The cells after
    the first screen are in a hidden `.nbf-rest`, which page.js shows."""
    cells = list(cells)
    shown, size = len(cells), 0
    for position, (_, html) in enumerate(cells):
        size += len(html)
        if size > FIRST_SCREEN_CHARS:
            shown = position + 1
            break
    parts = [(cells[:shown], False), (cells[shown:], True)]
    template = tornado.template.Loader(str(TEMPLATES)).load("page.html")
    return template.generate(title=title, parts=parts, static_url=static_url).decode()


def _render(cell: nbformat.NotebookNode) -> str:
    exporter, resources = _exporter()
    notebook = nbformat.from_dict({"cells": [cell], "metadata": {}})
    return exporter.template.render(nb=notebook, resources=resources).strip()


@functools.cache
def _exporter() -> tuple[HTMLExporter, dict[str, Any]]:
    config = Config()
    config.HTMLExporter.exclude_input = True
    config.HTMLExporter.exclude_input_prompt = True
    config.HTMLExporter.exclude_output_prompt = True
    config.HTMLExporter.template_file = "lab/base.html.j2"
    exporter = HTMLExporter(config=config, template_name="lab")
    # One full export fills in the resources the template expects.
    _, resources = exporter.from_notebook_node(nbformat.v4.new_notebook())
    return exporter, resources
