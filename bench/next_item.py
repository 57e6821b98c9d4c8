"""How soon a pool labeler sees their next item after Submit, in real Chromium, with 1 and
10 labelers at once: two revisions side by side, by default the in-page batch swap after
the server's reply (old) beside the page that holds the next batch ahead (new).

The bench writes a notebook of its own: a shared stage that draws a few hundred 64x64 RGB
images (a shape on a gradient each), a pool stage (`overlap: 1`, `batch: 12`) showing them
in `freezer.widgets.ImageGrid` (`--widget image-grid`, the default) or in
`freezer.widgets.ChoiceLabeler` (`--widget choice`: a card per image, standard ipywidgets),
and a `show: true` stage after it. Each revision is checked
out into a worktree of its own (`git worktree add --detach`), and each trial starts a fresh
`nbfreeze serve` of that worktree's code (PYTHONPATH) on a fresh copy of the notebook, so
every trial starts from an empty database. The revisions take turns, one trial each, the
order flipped every repetition, so that the machine's load falls on both alike.

A trial opens one headless Chromium and one browser context per labeler (a person of
their own), all at once (asyncio.gather). Each labeler opens the invite link, skips the
welcome page, and then, batch after batch, picks three tiles (a ChoiceLabeler: gives every
card a choice, as its page moves past a batch only when all are labeled), waits for the
page to have sent those labels, and clicks Submit. Two figures, both taken in the page by an init
script, so that Playwright's round trips are not in them:

- first item: from the pool page's navigation start (`performance.timeOrigin`) to the
  first frame (a requestAnimationFrame loop) in which the grid's first tile holds an
  image that is complete with a natural width;
- next item: from the Submit click's dispatch (a capture listener on the document) to
  the first frame whose first tile is a different item than before the click, its image
  drawn. Before the swap the page loads the next batch as a new page: the click's time
  is kept in sessionStorage and read by the next page's copy of the script.

A submit's reply says whether the server took the page's move to its held batch
(`kept`): the next item is reported for all submits, and for those the page moved at
the click and those it did not (nothing was held ahead: the store of this revision
gives a labeler who holds items those alone, so every other batch comes without one).

The script logs what it measured to the console (`console.debug`), where the bench reads
it, and also every `submitted` reply (`swapped` or not) and the status line after it.
Errors in the console and uncaught exceptions are counted and reported by revision.

    .venv/bin/python bench/next_item.py                        # writes bench/results/next_item.md
    .venv/bin/python bench/next_item.py --old ffdf8ee --new HEAD --reps 4 --batches 6
    .venv/bin/python bench/next_item.py --quick                # one repetition, two batches
    .venv/bin/python bench/next_item.py --widget choice --old c3e16bb --reps 1 --batches 4
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from nbformat import v4
from playwright.async_api import Browser, Page, async_playwright
from widgets import CHROMIUM, CHROMIUM_ARGS, free_port  # bench/widgets.py: the same browser

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
BATCH = 12
PICKS = (0, 4, 9)  # the tiles each labeler picks in a batch
GOALS = {"next p50": 50.0, "next p99": 100.0, "first": 300.0}  # ms
MARK = "nbfreeze-bench-next "

CELLS = (
    """\
import ipywidgets as widgets
import numpy as np
from freezer.widgets import ChoiceLabeler, ImageGrid
from freezer.widgets.choice import render_item

rng = np.random.default_rng(7)
ys, xs = np.mgrid[0:64, 0:64]
images = []
for n in range(ITEMS):
    base = np.stack([xs * 4, ys * 4, np.full((64, 64), (n * 37) % 256)], -1)
    cx, cy, r = rng.integers(12, 52, 2).tolist() + [int(rng.integers(6, 16))]
    shape = (xs - cx) ** 2 + (ys - cy) ** 2 < r * r if n % 2 else (
        (abs(xs - cx) < r) & (abs(ys - cy) < r)
    )
    base[shape] = rng.integers(0, 256, 3)
    images.append(base.astype(np.uint8))


def card(pair):
    key = widgets.Label(str(pair[0]))
    key.add_class("bench-key")
    return widgets.VBox([render_item(pair[1]), key])""",
    """\
#| stage: spot
#| input: pool
#| overlap: 1
#| batch: 12
#| title: Pick the round shapes
grid = WIDGET
grid""",
    """\
#| stage: tally
#| show: true
print(sum(label == LABEL for label in grid.labels.values()), "of", len(grid.labels))""",
)


@dataclass(frozen=True)
class Widget:
    """What the bench needs of a labeling widget: how the notebook makes it, how the page
    finds its first item (`first`, a JS function) and that item's key (`key`), how a
    labeler labels a batch (`label`, JS given the batch size), and when the page has
    sent it all (`settled`) and shows a fresh batch (`fresh`)."""

    make: str
    label_value: str
    first: str
    key: str
    label: str
    settled: str
    fresh: str


WIDGETS = {
    "image-grid": Widget(
        make="ImageGrid(images, size=72)",
        label_value='"yes"',
        first="() => document.querySelector('.nbfl-tile')",
        key="(tile) => tile.dataset.key",
        label=(
            "(picks) => { const tiles = document.querySelectorAll('.nbfl-tile');"
            " picks.forEach((n) => tiles[n].click()); return picks.length; }"
        ),
        settled=(
            "(picked) => document.querySelector('.nbfl-status')?.textContent"
            ".startsWith(picked + ' of')"
        ),
        fresh="""() => {
  const tiles = document.querySelectorAll('.nbfl-tile');
  const picked = document.querySelectorAll('.nbfl-tile[aria-pressed="true"]');
  if (tiles.length !== BATCH) return `${tiles.length} tiles`;
  return picked.length ? `${picked.length} tiles already picked` : '';
}""",
    ),
    "choice": Widget(
        make=(
            "ChoiceLabeler(list(enumerate(images)), ['round', 'square'], render=card,"
            " key=lambda pair: pair[0])"
        ),
        label_value='"round"',
        # The shown cards: a held batch's wait in a hidden grid.
        first="() => [...document.querySelectorAll('.nbfc-card')].find((c) => c.offsetParent)",
        key="(card) => card.querySelector('.bench-key')?.textContent ?? ''",
        label=(
            "(picks) => { const cards = [...document.querySelectorAll('.nbfc-card')]"
            ".filter((c) => c.offsetParent);"
            " cards.forEach((card, n) => card.querySelectorAll('.widget-toggle-button')"
            "[picks.includes(n) ? 0 : 1].click()); return cards.length; }"
        ),
        settled=(
            "(labeled) => document.querySelector('.widget-html')?.textContent"
            ".startsWith(labeled + ' of')"
        ),
        fresh="""() => {
  const cards = [...document.querySelectorAll('.nbfc-card')].filter((c) => c.offsetParent);
  const chosen = cards.filter((card) => card.querySelector('.mod-active'));
  if (cards.length !== BATCH) return `${cards.length} cards`;
  return chosen.length ? `${chosen.length} cards already labeled` : '';
}""",
    ),
}

# In every document of a labeler's context, before the page's own scripts.
PROBE = """
(() => {
  const MARK = MARK_TEXT;
  const store = sessionStorage;
  const log = (what) => console.debug(MARK + JSON.stringify(what));
  const firstTile = FIRST;
  const keyOf = KEY;
  let clicked = null;
  document.addEventListener('click', (event) => {
    if (!event.target.closest || !event.target.closest(SUBMIT)) return;
    clicked = performance.timeOrigin + performance.now();
    store.setItem('nbfBenchClick', String(clicked));
    const tile = firstTile();
    store.setItem('nbfBenchBefore', tile ? keyOf(tile) : '');
  }, true);
  document.addEventListener('nbf:submitted', (event) => {
    const { swapped = false, kept = false, next } = event.detail;
    const reply = performance.timeOrigin + performance.now() - clicked;
    // The status line is written by stage.js's listener, registered before this one runs.
    setTimeout(() => {
      const status = document.querySelector('.nbf-submit-status')?.textContent ?? '';
      log({ kind: 'submitted', swapped, kept, next, status, reply });
    });
  });
  let seen = null;
  const frame = () => {
    const tile = firstTile();
    const img = tile?.querySelector('img');
    if (img && img.complete && img.naturalWidth > 0 && img.src !== seen) {
      seen = img.src;
      const now = performance.now();
      const drawn = { kind: 'drawn', key: keyOf(tile), since_navigation: now };
      const click = store.getItem('nbfBenchClick');
      if (click !== null && keyOf(tile) !== store.getItem('nbfBenchBefore')) {
        drawn.since_click = performance.timeOrigin + now - Number(click);
        store.removeItem('nbfBenchClick');
      }
      log(drawn);
    }
    requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
})();
"""


def probe(widget: Widget, submit: str = "form.nbf-submit button") -> str:
    """The probe, finding the widget's first item, timing a click on `submit` (a CSS
    selector: the stage page's Submit, or a Submit button of the notebook's own)."""
    text = PROBE.replace("MARK_TEXT", json.dumps(MARK)).replace("SUBMIT", json.dumps(submit))
    return text.replace("FIRST", widget.first).replace("KEY", widget.key)


def settled(widget: Widget) -> str:
    """The page shows the labels given and has sent them."""
    return (
        f"(n) => ({widget.settled})(n)"
        " && document.body.dataset.nbfStatus !== 'busy'"
        " && (document.body.dataset.nbfPending ?? '0') === '0'"
    )


READY = "() => document.body.dataset.nbfState === 'ready'"


@dataclass
class Trial:
    """What one trial measured: one revision, `labelers` at once."""

    revision: str
    labelers: int
    first_ms: list[float] = field(default_factory=list)
    next_ms: list[float] = field(default_factory=list)
    reply_ms: list[float] = field(default_factory=list)  # click to the submitted reply
    moved_ms: list[float] = field(default_factory=list)  # next item, the page moved at the click
    after_ms: list[float] = field(default_factory=list)  # next item, shown after the reply
    swapped: int = 0
    reloaded: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    load: tuple[float, float] = (0.0, 0.0)  # 1-minute load average at start and end


class Labeler:
    """One person's page and what its probe logged."""

    def __init__(self, page: Page, trial: Trial) -> None:
        self.page = page
        self.trial = trial
        self.marks: list[dict[str, Any]] = []
        self.arrived = asyncio.Event()
        page.on("console", self._console)
        page.on("pageerror", lambda error: trial.errors.append(f"uncaught: {error}"))

    def _console(self, message: Any) -> None:
        if message.text.startswith(MARK):
            self.marks.append(json.loads(message.text[len(MARK) :]))
            self.arrived.set()
        elif message.type == "error":
            self.trial.errors.append(f"console: {message.text}")

    async def mark(self, kind: str, clicked: bool = False, timeout: float = 60.0) -> dict[str, Any]:
        """The first mark of `kind` not taken yet (with `clicked`, a drawing timed from a
        click); the marks of its kind before it are dropped, the others kept: a batch's
        drawing and the submit's reply come in either order."""
        deadline = time.monotonic() + timeout
        while True:
            for n, found in enumerate(self.marks):
                if found["kind"] == kind and (not clicked or "since_click" in found):
                    self.marks = [m for m in self.marks[n + 1 :] if m["kind"] != kind] + [
                        m for m in self.marks[:n] if m["kind"] != kind
                    ]
                    return found
            self.arrived.clear()
            await asyncio.wait_for(self.arrived.wait(), deadline - time.monotonic())


async def label(browser: Browser, invite: str, trial: Trial, batches: int, widget: Widget) -> None:
    """One labeler: the invite link, the pool's first batch, then `batches` submits."""
    context = await browser.new_context(viewport={"width": 1100, "height": 900})
    try:
        await context.add_init_script(probe(widget))
        person = Labeler(await context.new_page(), trial)
        page = person.page
        await page.goto(invite)
        await page.get_by_role("link", name="Skip").click()
        drawn = await person.mark("drawn")
        trial.first_ms.append(drawn["since_navigation"])
        for _ in range(batches):
            await page.wait_for_function(READY, timeout=60_000)
            given = await page.evaluate(widget.label, list(PICKS))
            await page.wait_for_function(settled(widget), arg=given, timeout=60_000)
            before = drawn["key"]
            await page.get_by_role("button", name="Submit").click()
            submitted, drawn = await person.mark("submitted"), await person.mark("drawn", True)
            trial.reply_ms.append(submitted["reply"])
            trial.swapped += submitted["swapped"]
            trial.reloaded += not submitted["swapped"]
            status = submitted["status"]
            trial.statuses[status] = trial.statuses.get(status, 0) + 1
            if drawn["key"] == before:
                trial.errors.append(f"the batch after a submit began with the same item {before}")
            fresh = await page.evaluate(widget.fresh.replace("BATCH", str(BATCH)))
            if fresh:
                trial.errors.append(f"the batch after a submit is not fresh: {fresh}")
            trial.next_ms.append(drawn["since_click"])
            (trial.moved_ms if submitted["kept"] else trial.after_ms).append(drawn["since_click"])
    finally:
        await context.close()


class Server:
    """`nbfreeze serve` of one worktree's code, on a fresh copy of the notebook."""

    def __init__(self, code: Path, notebook: Path) -> None:
        port = free_port()
        env = {**os.environ, "PYTHONPATH": str(code)}
        command = [sys.executable, "-m", "freezer", "serve", str(notebook), "--port", str(port)]
        # From the notebook's directory: `python -m` puts the working directory first on
        # sys.path, before PYTHONPATH, and the bench may be run from another checkout.
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=notebook.parent,
        )
        lines = []
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()  # type: ignore[union-attr]
            if not line:
                break
            lines.append(line)
            if line.startswith("Ready."):
                break
        text = "".join(lines)
        if "Ready." not in text:
            self.stop()
            raise RuntimeError(f"nbfreeze serve did not start:\n{text}")
        self.invite = re.search(r"Invite:\s+(\S+)", text).group(1)  # type: ignore[union-attr]
        self.lines = lines

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


async def trial(
    browser: Browser,
    revision: str,
    code: Path,
    labelers: int,
    args: argparse.Namespace,
) -> Trial:
    done = Trial(revision, labelers)
    widget = WIDGETS[args.widget]
    with tempfile.TemporaryDirectory(prefix="nbfreeze-next-") as scratch:
        notebook = Path(scratch) / "next.ipynb"
        cells = (
            CELLS[0].replace("ITEMS", str(args.items)),
            CELLS[1].replace("WIDGET", widget.make),
            CELLS[2].replace("LABEL", widget.label_value),
        )
        nbformat.write(
            v4.new_notebook(
                cells=[v4.new_code_cell(source) for source in cells],
                metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}},
            ),
            notebook,
        )
        server = Server(code, notebook)
        try:
            start = os.getloadavg()[0]
            await asyncio.gather(
                *(
                    label(browser, server.invite, done, args.batches, widget)
                    for _ in range(labelers)
                )
            )
            done.load = (start, os.getloadavg()[0])
        finally:
            server.stop()
    return done


def percentile(values: list[float], p: float) -> float:
    """The nearest-rank percentile: p99 of fewer than 100 values is their largest."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]


def worktree(revision: str, where: Path) -> tuple[str, Path]:
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", revision], capture_output=True, text=True, check=True
    ).stdout.strip()
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(where), commit],
        capture_output=True,
        check=True,
    )
    return commit, where


async def run(args: argparse.Namespace) -> tuple[list[Trial], dict[str, str]]:
    scratch = Path(tempfile.mkdtemp(prefix="nbfreeze-next-trees-"))
    trees: dict[str, tuple[str, Path]] = {}
    try:
        for name, revision in (("old", args.old), ("new", args.new)):
            trees[name] = worktree(revision, scratch / name)
        trials = []
        async with async_playwright() as driver:
            browser = await driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for rep in range(args.reps):
                order = ("old", "new") if rep % 2 == 0 else ("new", "old")
                for labelers in args.labelers:
                    for name in order:
                        found = await trial(browser, name, trees[name][1], labelers, args)
                        trials.append(found)
                        print(
                            f"rep {rep + 1} {name} {labelers:>2} labelers: first p50"
                            f" {statistics.median(found.first_ms):.0f} ms, next p50"
                            f" {statistics.median(found.next_ms):.0f} ms, swapped"
                            f" {found.swapped}/{found.swapped + found.reloaded}, errors"
                            f" {len(found.errors)}, load {found.load[0]:.1f}-{found.load[1]:.1f}",
                            flush=True,
                        )
            await browser.close()
    finally:
        for _, where in trees.values():
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(where)],
                capture_output=True,
            )
        shutil.rmtree(scratch, ignore_errors=True)
    return trials, {name: commit for name, (commit, _) in trees.items()}


def spread(values: list[float]) -> str:
    """p50 and p99 of some samples, and how many: "12 ms, 40 ms (75)"."""
    if not values:
        return "none"
    p50, p99 = statistics.median(values), percentile(values, 99)
    return f"{p50:.0f} ms, {p99:.0f} ms ({len(values)})"


LABELS = {
    "image-grid": f"picks {len(PICKS)} of {BATCH} tiles",
    "choice": f"gives each of {BATCH} cards a choice",
}


def met(value: float, goal: float) -> str:
    return "met" if value < goal else "not met"


def report(trials: list[Trial], commits: dict[str, str], args: argparse.Namespace) -> str:
    loads = [value for t in trials for value in t.load]
    verdicts: list[str] = []
    lines = [
        f"# Submit to the next item, in Chromium ({args.widget})",
        "",
        f"`bench/next_item.py --widget {args.widget} --reps {args.reps} --batches"
        f" {args.batches} --items {args.items}`:"
        f" old {commits['old'][:7]}, new {commits['new'][:7]}. {args.reps}"
        f" repetitions, the revisions in turn; each labeler {LABELS[args.widget]}"
        f" and submits, {args.batches} times. Python {platform.python_version()},"
        f" {os.cpu_count()} cores shared with other workers: 1-minute load"
        f" {min(loads):.1f} to {max(loads):.1f} during the trials.",
        "",
        "| code | labelers at once | first item p50 | first item p99 | next item p50 |"
        " next item p99 | moved at the click: p50, p99 (n) | shown after the reply: p50, p99 (n)"
        " | the reply, p50 | submits (swapped) | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for labelers in args.labelers:
        for name in ("old", "new"):
            mine = [t for t in trials if t.revision == name and t.labelers == labelers]
            first = [v for t in mine for v in t.first_ms]
            nexts = [v for t in mine for v in t.next_ms]
            replies = [v for t in mine for v in t.reply_ms]
            swapped = sum(t.swapped for t in mine)
            submits = swapped + sum(t.reloaded for t in mine)
            errors = sum(len(t.errors) for t in mine)
            moved = [v for t in mine for v in t.moved_ms]
            after = [v for t in mine for v in t.after_ms]
            lines.append(
                f"| {name} {commits[name][:7]} | {labelers} | {statistics.median(first):.0f} ms"
                f" | {percentile(first, 99):.0f} ms | {statistics.median(nexts):.0f} ms"
                f" | {percentile(nexts, 99):.0f} ms | {spread(moved)} | {spread(after)}"
                f" | {statistics.median(replies):.0f} ms | {submits} ({swapped}) | {errors} |"
            )
            if name == "new" and labelers == max(args.labelers):
                verdicts.append(
                    f"- next item with {labelers} labelers at once: p50"
                    f" {statistics.median(nexts):.0f} ms against {GOALS['next p50']:.0f} ms,"
                    f" {met(statistics.median(nexts), GOALS['next p50'])}; p99"
                    f" {percentile(nexts, 99):.0f} ms against {GOALS['next p99']:.0f} ms,"
                    f" {met(percentile(nexts, 99), GOALS['next p99'])}."
                )
            if name == "new":
                p50 = statistics.median(first)
                verdicts.append(
                    f"- first item with {labelers} at once: p50 {p50:.0f} ms against"
                    f" {GOALS['first']:.0f} ms, {met(p50, GOALS['first'])}."
                )
    lines += ["", "The goals, for the new code:", "", *verdicts]
    lines += ["", "Samples: first item one per labeler per trial, next item one per submit."]
    lines += ["The reply: from the click to the page's `submitted` reply, in the page."]
    lines += ["p99 is the nearest rank (of fewer than 100 samples, the largest).", ""]
    statuses: dict[str, dict[str, int]] = {"old": {}, "new": {}}
    errors: dict[str, set[str]] = {"old": set(), "new": set()}
    for t in trials:
        for text, count in t.statuses.items():
            statuses[t.revision][text] = statuses[t.revision].get(text, 0) + count
        errors[t.revision].update(e[:300] for e in t.errors)
    for name in ("old", "new"):
        said = ", ".join(f"{text!r} ({count})" for text, count in sorted(statuses[name].items()))
        lines.append(f"- {name}: the status line after a submit: {said}.")
        for error in sorted(errors[name]):
            lines.append(f"- {name}: {error}")
    lines += ["", "Per trial:", "", *trial_table(trials, "code")]
    return "\n".join(lines) + "\n"


def trial_table(trials: list[Trial], side: str) -> list[str]:
    """A row per trial, its side (`side`: what the first column names) first."""
    lines = [f"| {side} | labelers | first p50 | next p50 | next max | load |"]
    lines += ["|---|---:|---:|---:|---:|---|"]
    for t in trials:
        lines.append(
            f"| {t.revision} | {t.labelers} | {statistics.median(t.first_ms):,.0f} ms"
            f" | {statistics.median(t.next_ms):,.0f} ms | {max(t.next_ms):,.0f} ms"
            f" | {t.load[0]:.1f} to {t.load[1]:.1f} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", default="ffdf8ee", help="the revision before prefetching")
    parser.add_argument("--new", default="HEAD", help="the revision with it")
    parser.add_argument("--reps", type=int, default=4)
    parser.add_argument("--batches", type=int, default=6, help="submits per labeler")
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--labelers", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--quick", action="store_true", help="one repetition, two batches")
    parser.add_argument("--widget", choices=sorted(WIDGETS), default="image-grid")
    parser.add_argument("--out", type=Path, help="default: bench/results/next_item[_WIDGET].md")
    args = parser.parse_args()
    if args.out is None:
        suffix = "" if args.widget == "image-grid" else f"_{args.widget}"
        args.out = RESULTS / f"next_item{suffix}.md"
    if args.quick:
        args.reps, args.batches = 1, 2
    needed = max(args.labelers) * (args.batches + 2) * BATCH  # a batch shown, one held
    if args.items < needed:
        parser.error(f"--items {args.items}: the labelers lease up to {needed} items")
    trials, commits = asyncio.run(run(args))
    text = report(trials, commits, args)
    print(text)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
