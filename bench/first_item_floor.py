"""The floor under bench/next_item.py's "first item": how soon this machine's Chromium
draws the first of twelve image tiles on a page that does nothing else.

The page is static HTML served by a bare Tornado handler: twelve 64x64 PNG tiles (as
`<img>` elements with `data:` URLs, drawn by the browser's own parser), no script but
the same probe as bench/next_item.py: from the page's navigation start to the first
frame (a requestAnimationFrame loop) in which the first tile's image is complete. One
headless Chromium, a browser context per labeler, 1 and 10 contexts navigating at the
same moment, as bench/next_item.py's labelers open their pool pages. Whatever the app
does, its first item cannot be drawn sooner than this on the same machine.

    python bench/first_item_floor.py            # writes bench/results/first_item_floor.md
    python bench/first_item_floor.py --reps 2
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import os
import statistics
import threading
from pathlib import Path

import numpy as np
import tornado.httpserver
import tornado.ioloop
import tornado.web
from PIL import Image
from playwright.async_api import async_playwright
from widgets import CHROMIUM, CHROMIUM_ARGS, free_port

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "first_item_floor.md"
PROBE = """
(() => {
  const frame = () => {
    const img = document.querySelector('.tile img');
    if (img && img.complete && img.naturalWidth > 0) {
      console.debug('floor-drawn ' + performance.now());
      return;
    }
    requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
})();
"""


def page_html() -> bytes:
    rng = np.random.default_rng(7)
    tiles = []
    for _ in range(12):
        pixels = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        out = io.BytesIO()
        Image.fromarray(pixels).save(out, format="PNG")
        data = base64.b64encode(out.getvalue()).decode()
        tiles.append(f'<div class="tile"><img src="data:image/png;base64,{data}" width="72"></div>')
    return ("<!doctype html><html><body>" + "".join(tiles) + "</body></html>").encode()


class Page(tornado.web.RequestHandler):
    def initialize(self, body: bytes) -> None:
        self.body = body

    def get(self) -> None:
        self.set_header("Content-Type", "text/html")
        self.write(self.body)


def serve(port: int) -> None:
    loop = tornado.ioloop.IOLoop()
    app = tornado.web.Application([(r"/", Page, {"body": page_html()})])
    server = tornado.httpserver.HTTPServer(app)
    server.listen(port, "127.0.0.1")
    loop.start()


async def drawn(browser, url: str, gate: asyncio.Event) -> float:
    context = await browser.new_context(viewport={"width": 1100, "height": 900})
    try:
        await context.add_init_script(PROBE)
        page = await context.new_page()
        seen: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        page.on(
            "console",
            lambda m: (
                m.text.startswith("floor-drawn ")
                and not seen.done()
                and seen.set_result(float(m.text.split()[1]))
            ),
        )
        await gate.wait()
        await page.goto(url)
        return await asyncio.wait_for(seen, 60)
    finally:
        await context.close()


async def run(reps: int) -> dict[int, list[float]]:
    port = free_port()
    threading.Thread(target=serve, args=(port,), daemon=True).start()
    await asyncio.sleep(0.5)
    found: dict[int, list[float]] = {1: [], 10: []}
    async with async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for _ in range(reps):
            for count in found:
                gate = asyncio.Event()
                jobs = [drawn(browser, f"http://127.0.0.1:{port}/", gate) for _ in range(count)]
                waiting = asyncio.gather(*jobs)
                await asyncio.sleep(0.5)  # every context made before any navigates
                gate.set()
                found[count] += await waiting
        await browser.close()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    before = os.getloadavg()[0]
    found = asyncio.run(run(args.reps))
    after = os.getloadavg()[0]
    lines = [
        "# The first item's floor: a static page of twelve tiles",
        "",
        f"`bench/first_item_floor.py --reps {args.reps}`; 1-minute load {before:.1f} "
        f"before, {after:.1f} after.",
        "",
        "| contexts at once | first tile drawn p50 | max | samples |",
        "|---:|---:|---:|---:|",
    ]
    for count, values in found.items():
        lines.append(
            f"| {count} | {statistics.median(values):.0f} ms | {max(values):.0f} ms "
            f"| {len(values)} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.write_text(text)


if __name__ == "__main__":
    main()
