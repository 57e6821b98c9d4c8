"""How fast a page of 48 thumbnails renders in the app (`ImageGrid`), in real Chromium.

`nbfreeze serve --open` serves a notebook whose `ImageGrid` holds 96 thumbnails
(64x64 RGB PNGs, about 12 KiB each) and shows 48 of them; a Button shows the other 48.
Two figures, each the median of several runs in fresh browser contexts:

- page: from navigation start to all 48 images decoded and drawn (what a labeler waits
  for when a batch opens as a new page), and the part of it from the grid's first tiles
  in the page (the widget drawing, after the page's front end has booted);
- next page: from the click to the next 48 images decoded and drawn (a new batch shown
  in the same page: Python's `show()`, the state over the socket, the view's redraw).

    .venv/bin/python bench/thumbnails.py            # writes bench/results/thumbnails.md
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
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


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="nbfreeze-thumbs-"))
    notebook = work / "thumbs.ipynb"
    nbformat.write(v4.new_notebook(cells=[v4.new_code_cell(NOTEBOOK)]), notebook)
    process, url = serve(notebook)
    page_ms, grid_ms, next_ms = [], [], []
    try:
        with sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for run in range(RUNS + 1):  # the first run warms the server up
                context = browser.new_context(viewport={"width": 1280, "height": 900})
                page = context.new_page()
                page.goto(url, wait_until="commit")
                drawn = page.evaluate(DRAWN)
                page.evaluate(
                    "() => { window.__after = document.querySelector('.nbfl-tile img').src; }"
                )
                button = page.get_by_role("button", name="next page")
                button.wait_for()
                clicked = page.evaluate(
                    "() => { const t = performance.now();"
                    " document.querySelector('.widget-button').click(); return t; }"
                )
                redrawn = page.evaluate(DRAWN)
                context.close()
                if run:
                    page_ms.append(drawn["drawn"])
                    grid_ms.append(drawn["drawn"] - drawn["tiles"])
                    next_ms.append(redrawn["drawn"] - clicked)
            browser.close()
    finally:
        process.terminate()
        process.wait(timeout=30)
    report({"page": page_ms, "grid": grid_ms, "next": next_ms})


def report(figures: dict[str, list[float]]) -> None:
    median = {name: statistics.median(values) for name, values in figures.items()}
    every = {name: ", ".join(f"{m:.0f}" for m in values) for name, values in figures.items()}
    text = f"""# A page of 48 thumbnails in the app

`python bench/thumbnails.py`, {time.strftime("%Y-%m-%d")}: `ImageGrid` of 96 64x64 RGB
thumbnails served by `nbfreeze serve --open`, 48 shown, in headless Chromium; median of
{RUNS} runs, each in a fresh browser context. Target: under {TARGET_MS} ms.

| what | median | every run (ms) |
|---|---|---|
| page: navigation start to 48 thumbnails drawn | {median["page"]:.0f} ms | {every["page"]} |
| of which: first tiles to 48 drawn | {median["grid"]:.0f} ms | {every["grid"]} |
| next page: click to the next 48 drawn | {median["next"]:.0f} ms | {every["next"]} |
"""
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
