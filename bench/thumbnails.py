"""How fast a page of 48 thumbnails renders in the app (`ImageGrid`), in real Chromium.

`nbfreeze serve --open` serves a notebook whose `ImageGrid` holds 96 thumbnails
(64x64 RGB PNGs, about 12 KiB each) and shows 48 of them; a Button shows the other 48.
Two figures, each the median of several runs in fresh browser contexts:

- page: from navigation start to all 48 images decoded and drawn (what a labeler waits
  for when a batch opens as a new page), and the part of it from the grid's first tiles
  in the page (the widget drawing, after the page's front end has booted);
- next page: from the click to the next 48 images decoded and drawn (a new batch shown
  in the same page: Python's `show()`, the state over the socket, the view's redraw).

Voilà serves the same notebook beside it (`voila NOTEBOOK`, its defaults; `ImageGrid` is
an anywidget, whose front end Voilà loads from its installed labextension), and the runs
alternate, nbfreeze's and Voilà's in turn, so that the machine's other work falls on
both. A Voilà run starts a kernel, runs the notebook in it and then sends the page; its
"next page" click is a comm message to that visitor's kernel. Each Voilà kernel is shut
down after its run, as the page's `beforeunload` does. The 1-minute load average is read
before every run.

    .venv/bin/python bench/thumbnails.py            # writes bench/results/thumbnails.md
"""

from __future__ import annotations

import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nbformat
from federated import voila_serve
from nbformat import v4
from playwright.sync_api import sync_playwright
from widgets import CHROMIUM, CHROMIUM_ARGS  # bench/widgets.py: the same browser

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "thumbnails.md"
RUNS = 7
TARGET_MS = 200

NOTEBOOK = """\
import numpy as np
import ipywidgets as widgets
from freezer.widgets import ImageGrid

rng = np.random.default_rng(0)
ramp = np.linspace(0, 255, 64)
thumbs = [
    np.stack(
        [np.add.outer(ramp, ramp) / 2, np.tile(ramp, (64, 1)), rng.integers(0, 256, (64, 64))], -1
    ).astype(np.uint8)
    for _ in range(96)
]
grid = ImageGrid(thumbs, caption=lambda a: f"{int(a[0, 0, 2])}", size=100)
grid.show(range(48))
more = widgets.Button(description="next page")
more.on_click(lambda _: grid.show(range(48, 96)))
widgets.VBox([more, grid])
"""

# Stamps the first frame with the grid's tiles in the page, and the first with 48
# decoded thumbnails on screen (checked every frame).
DRAWN = """() => new Promise((resolve) => {
  let tiles = null;
  const check = () => {
    const imgs = [...document.querySelectorAll('.nbfl-tile img')];
    const fresh = imgs.length && (!window.__after || imgs[0].src !== window.__after);
    if (fresh && tiles === null) tiles = performance.now();
    const ready = imgs.length === 48 && imgs.every((i) => i.complete && i.naturalWidth > 0);
    if (ready && fresh) resolve({ tiles, drawn: performance.now() });
    else requestAnimationFrame(check);
  };
  check();
})"""


def serve(notebook: Path) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "freezer", "serve", str(notebook), "--open", "--port", "8893"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    while True:
        line = process.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise SystemExit("".join(lines))
        lines.append(line)
        if line.startswith(("Ready.", "Press Ctrl-C")):
            break
    url = re.search(r"http://\S+", "".join(lines))
    assert url, "".join(lines)
    return process, url.group(0)


# In Voilà's page: shut its kernel down as its `beforeunload` does, so that the runs do
# not pile up idle kernels; nothing in nbfreeze's page.
SHUT_DOWN = """async () => {
  const data = document.getElementById('jupyter-config-data');
  if (!data) return;
  const kernel = JSON.parse(data.textContent).kernelId;
  const xsrf = crypto.randomUUID();  // Voilà's page sets no _xsrf cookie: make one
  document.cookie = `_xsrf=${xsrf}; path=/`;
  const answer = await fetch(`/voila/api/shutdown/${kernel}`, {
    method: 'POST', headers: { 'X-XSRFToken': xsrf },
  });
  if (answer.status !== 204) throw new Error(`shutdown: HTTP ${answer.status}`);
}"""


def one_run(browser: Any, url: str) -> dict[str, float]:
    """One visitor in a fresh context: page and grid times, and the click's redraw."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(url, wait_until="commit")
    drawn = page.evaluate(DRAWN)
    page.evaluate("() => { window.__after = document.querySelector('.nbfl-tile img').src; }")
    page.get_by_role("button", name="next page").wait_for()
    clicked = page.evaluate(
        "() => { const t = performance.now();"
        " document.querySelector('.widget-button').click(); return t; }"
    )
    redrawn = page.evaluate(DRAWN)
    page.evaluate(SHUT_DOWN)
    context.close()
    return {
        "page": drawn["drawn"],
        "grid": drawn["drawn"] - drawn["tiles"],
        "next": redrawn["drawn"] - clicked,
    }


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="nbfreeze-thumbs-"))
    notebook = work / "thumbs.ipynb"
    kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cells = [v4.new_code_cell(NOTEBOOK)]
    nbformat.write(v4.new_notebook(cells=cells, metadata={"kernelspec": kernelspec}), notebook)
    process, url = serve(notebook)
    voila = voila_serve(notebook)
    figures: dict[str, dict[str, list[float]]] = {
        side: {"page": [], "grid": [], "next": []} for side in ("nbfreeze", "voila")
    }
    loads: list[float] = []
    try:
        asyncio.run(voila.ready())
        urls = {"nbfreeze": url, "voila": f"{voila.base}/"}
        with sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for run in range(RUNS + 1):  # the first run warms each server up
                for side, address in urls.items():
                    loads.append(os.getloadavg()[0])
                    found = one_run(browser, address)
                    for name, value in found.items():
                        if run:
                            figures[side][name].append(value)
                    print(f"run {run} {side}: {found} (load {loads[-1]:.1f})", flush=True)
            browser.close()
    finally:
        process.terminate()
        process.wait(timeout=30)
        voila.stop()
    loads.append(os.getloadavg()[0])
    report(figures, loads)


def report(figures: dict[str, dict[str, list[float]]], loads: list[float]) -> None:
    """The table: nbfreeze's median beside Voilà's, each run's figures after them."""
    rows = {
        "page": "page: navigation start to 48 thumbnails drawn",
        "grid": "of which: first tiles to 48 drawn",
        "next": "next page: click to the next 48 drawn",
    }
    lines = []
    for name, title in rows.items():
        ours, theirs = figures["nbfreeze"][name], figures["voila"][name]
        lines.append(
            f"| {title} | {statistics.median(ours):,.0f} ms | {statistics.median(theirs):,.0f} ms"
            f" | {', '.join(f'{m:.0f}' for m in ours)} | {', '.join(f'{m:.0f}' for m in theirs)} |"
        )
    table = "\n".join(lines)
    text = f"""# A page of 48 thumbnails in the app, beside Voilà

`python bench/thumbnails.py`, {time.strftime("%Y-%m-%d")}: `ImageGrid` of 96 64x64 RGB
thumbnails, 48 shown, served by `nbfreeze serve --open` and by `voila` (its defaults), in
headless Chromium; median of {RUNS} runs each, in fresh browser contexts, the two servers'
runs in turn. Target: under {TARGET_MS} ms. 1-minute load average {min(loads):.1f} to
{max(loads):.1f} on {os.cpu_count()} cores during the runs.

| what | nbfreeze | Voilà | nbfreeze, every run (ms) | Voilà, every run (ms) |
|---|---:|---:|---|---|
{table}
"""
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
