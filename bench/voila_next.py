"""Submit to the next item in Chromium: nbfreeze's pool page beside the same grid in Voilà,
with 1 and 10 labelers at once.

Voilà has no pool: the comparable Voilà app is the natural way to write one there, the
same `ImageGrid` of the same images (bench/next_item.py's notebook) and a Submit button
whose handler keeps the grid's labels in the visitor's own kernel and shows the next 12
images. Ten Voilà labelers are ten kernels, each walking the same images from the first.
nbfreeze's side is bench/next_item.py's trial of this checkout's code (a pool stage,
`overlap: 1`, `batch: 12`, a fresh `nbfreeze serve` per trial). The two take turns, one
trial each, the order flipped every repetition; one Voilà server serves all its trials,
each page's kernel shut down when its labeler is done, as its `beforeunload` does.

The figures are next_item.py's, taken in the page by the same probe: the first item from
navigation start to the first frame whose first tile's image is drawn; the next item
from the Submit click to the first frame whose first tile is another item, its image
drawn. Each labeler picks three tiles, waits for the grid's status to count them, and
submits, `--batches` times.

    python bench/voila_next.py                  # writes bench/results/voila_next.md
    python bench/voila_next.py --reps 1 --batches 2    # a try, printed only
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from federated import voila_serve
from next_item import (
    BATCH,
    CELLS,
    PICKS,
    ROOT,
    WIDGETS,
    Labeler,
    Trial,
    percentile,
    probe,
    settled,
    trial,
    trial_table,
)
from playwright.async_api import Browser, async_playwright
from thumbnails import SHUT_DOWN
from voila_kernels import write_notebook
from widgets import CHROMIUM, CHROMIUM_ARGS

RESULTS = ROOT / "bench" / "results" / "voila_next.md"
WIDGET = WIDGETS["image-grid"]
SUBMIT = "button.widget-button"

# The pool stage written for Voilà: the visitor's kernel walks the images 12 at a time.
VOILA_GRID = f"""\
grid = {WIDGET.make}
saved = {{}}
position = 0
grid.show(range({BATCH}))


def submit(_):
    global position
    saved.update(grid.labels)
    position += {BATCH}
    grid.show(range(position, position + {BATCH}))


button = widgets.Button(description="Submit")
button.on_click(submit)
widgets.VBox([grid, button])"""


async def voila_label(browser: Browser, url: str, done: Trial, batches: int) -> None:
    """One Voilà labeler: the page, its first 12 drawn, then `batches` submits."""
    context = await browser.new_context(viewport={"width": 1100, "height": 900})
    try:
        await context.add_init_script(probe(WIDGET, SUBMIT))
        person = Labeler(await context.new_page(), done)
        page = person.page
        await page.goto(url, timeout=120_000)
        drawn = await person.mark("drawn", timeout=120)
        done.first_ms.append(drawn["since_navigation"])
        for _ in range(batches):
            given = await page.evaluate(WIDGET.label, list(PICKS))
            await page.wait_for_function(settled(WIDGET), arg=given, timeout=60_000)
            before = drawn["key"]
            await page.get_by_role("button", name="Submit").click()
            drawn = await person.mark("drawn", True)
            if drawn["key"] == before:
                done.errors.append(f"the batch after a submit began with the same item {before}")
            fresh = await page.evaluate(WIDGET.fresh.replace("BATCH", str(BATCH)))
            if fresh:
                done.errors.append(f"the batch after a submit is not fresh: {fresh}")
            done.next_ms.append(drawn["since_click"])
        await page.evaluate(SHUT_DOWN)
    finally:
        await context.close()


async def voila_trial(browser: Browser, url: str, labelers: int, batches: int) -> Trial:
    done = Trial("voila", labelers)
    start = os.getloadavg()[0]
    await asyncio.gather(*(voila_label(browser, url, done, batches) for _ in range(labelers)))
    done.load = (start, os.getloadavg()[0])
    return done


async def run(args: argparse.Namespace) -> list[Trial]:
    cells = [CELLS[0].replace("ITEMS", str(args.items)), VOILA_GRID]
    server = voila_serve(write_notebook(args.work / "voila" / "next.ipynb", cells))
    trials = []
    try:
        await server.ready()
        async with async_playwright() as driver:
            browser = await driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for rep in range(args.reps):
                order = ("nbfreeze", "voila") if rep % 2 == 0 else ("voila", "nbfreeze")
                for labelers in args.labelers:
                    for side in order:
                        if side == "voila":
                            found = await voila_trial(
                                browser, f"{server.base}/", labelers, args.batches
                            )
                        else:
                            found = await trial(browser, "nbfreeze", ROOT, labelers, args)
                        trials.append(found)
                        print(
                            f"rep {rep + 1} {side} {labelers:>2}: first p50"
                            f" {statistics.median(found.first_ms):.0f} ms, next p50"
                            f" {statistics.median(found.next_ms):.0f} ms, errors"
                            f" {len(found.errors)}, load {found.load[0]:.1f}-{found.load[1]:.1f}",
                            flush=True,
                        )
            await browser.close()
    finally:
        server.stop()
    return trials


def report(trials: list[Trial], args: argparse.Namespace) -> str:
    loads = [value for t in trials for value in t.load]
    lines = [
        "# Submit to the next item in Chromium, beside Voilà",
        "",
        f"`python bench/voila_next.py --reps {args.reps} --batches {args.batches}`,"
        f" {time.strftime('%Y-%m-%d %H:%M')}: {args.items} 64x64 images in an `ImageGrid`,"
        f" 12 at a time; nbfreeze's pool stage (`overlap: 1`, `batch: 12`) and, in Voilà, the"
        f" same grid with a Submit button that shows the next 12 in the visitor's kernel."
        f" {args.reps} repetitions, the servers in turn; each labeler picks {len(PICKS)} tiles"
        f" and submits, {args.batches} times. {os.cpu_count()} cores shared with other work:"
        f" 1-minute load {min(loads):.1f} to {max(loads):.1f} during the trials.",
        "",
        "| server | labelers at once | first item p50 | first item p99 | next item p50"
        " | next item p99 | submits | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for labelers in args.labelers:
        for side, name in (("nbfreeze", "nbfreeze"), ("voila", "Voilà")):
            mine = [t for t in trials if t.revision == side and t.labelers == labelers]
            first = [v for t in mine for v in t.first_ms]
            nexts = [v for t in mine for v in t.next_ms]
            lines.append(
                f"| {name} | {labelers} | {statistics.median(first):,.0f} ms"
                f" | {percentile(first, 99):,.0f} ms | {statistics.median(nexts):,.0f} ms"
                f" | {percentile(nexts, 99):,.0f} ms | {len(nexts)}"
                f" | {sum(len(t.errors) for t in mine)} |"
            )
    errors = sorted({f"{t.revision}: {e[:300]}" for t in trials for e in t.errors})
    lines += ["", "p99 is the nearest rank (of fewer than 100 samples, the largest).", ""]
    lines += [f"- {error}" for error in errors] or ["No errors in either page."]
    lines += ["", *trial_table(trials, "server")]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--batches", type=int, default=6, help="submits per labeler")
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--labelers", type=int, nargs="+", default=[1, 10])
    args = parser.parse_args()
    args.widget = "image-grid"  # what next_item.py's trial serves on nbfreeze's side
    with tempfile.TemporaryDirectory(prefix="nbfreeze-voila-next-") as scratch:
        args.work = Path(scratch)
        trials = asyncio.run(run(args))
    text = report(trials, args)
    print(text)
    if args.reps >= 2:
        RESULTS.write_text(text)


if __name__ == "__main__":
    main()
