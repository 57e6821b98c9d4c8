"""Installed widget front ends against Voilà: a bqplot figure's first drawing in Chromium
and its memory per user, and what the loader of those front ends costs a page of standard
widgets.

Three figures, each with the servers it compares up at once and measured in turn, so
that other work on the machine falls on both alike:

1. **First figure drawn.** A notebook of one bqplot `Figure` (a `Lines` of 5,000 points
   and a `Scatter` of 2,000 of them, two axes) served by `nbfreeze serve --open` and by
   `voila` (as bench/widgets.py starts it). Headless Chromium, a fresh browser context
   per load, nbfreeze's and Voilà's loads alternating (and which goes first alternating
   too): from navigation start to the figure's marks in the DOM, the line's
   `g.curve path.line` with its path and every one of the scatter's `path.dot` with
   theirs (an init script's MutationObserver and requestAnimationFrame loop stamp
   `performance.now()` and log it, as bench/widgets.py does for a first widget). Beside
   it, one more load of each that waits until the network is idle and sums what every
   response's body took on the wire (gzip where the server compresses).
2. **Memory per user with the figure open.** `bench/widget_server.py` serving the bqplot
   notebook, then ipywidgets' Widget List (the peer notebook bench/widgets.py measures),
   in turn: N browser-less sessions (bench/widgets.py's `nbfreeze_memory`: GET `/`, the
   widget socket, its first `status: idle`, then idle and connected), the process's RSS
   growth per session; then the same with a few real browser contexts kept open on the
   page (the figure drawn), which is what a session with the figure *open* holds if the
   page's front end sends the server anything. Voilà's per user: its kernel per visitor
   (`voila_memory`).
3. **A page of standard widgets, before and after the loader** (`--before DIR`: a
   checkout of the code before it, `git worktree add DIR COMMIT`): the one-slider
   notebook and Widget List served by `nbfreeze serve` from DIR and from this tree
   (`PYTHONPATH` picks the code), first widget in Chromium in turn, and the bytes each
   page downloads, file by file.

    .venv/bin/python bench/federated.py --before /path/to/old-checkout   # writes the table
    .venv/bin/python bench/federated.py --quick                          # fewer loads
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
from client import TornadoConnection
from nbformat import v4
from widgets import (
    BIN,
    CHROMIUM,
    CHROMIUM_ARGS,
    FIRST_WIDGET_JS,
    FIRST_WIDGET_MARK,
    MIB,
    ROOT,
    Server,
    free_port,
    load_once,
    machine,
    nbfreeze_memory,
    prepare,
    voila_env,
    voila_memory,
    voila_shutdown,
)

RESULTS = ROOT / "bench" / "results" / "federated.md"
POINTS = 5_000  # the line's
DOTS = 2_000  # the scatter's
LOADS: list[float] = []  # the 1-minute load average at each phase's start, and at the end

BQPLOT_CELL = f"""\
import bqplot as bq
import numpy as np

rng = np.random.default_rng(0)
x = np.arange({POINTS})
y = np.cumsum(rng.standard_normal({POINTS}))
picked = np.sort(rng.choice({POINTS}, {DOTS}, replace=False))
sx, sy = bq.LinearScale(), bq.LinearScale()
line = bq.Lines(x=x, y=y, scales={{"x": sx, "y": sy}})
dots = bq.Scatter(x=x[picked], y=y[picked], scales={{"x": sx, "y": sy}}, default_size=8)
axes = [
    bq.Axis(scale=sx, label="step"),
    bq.Axis(scale=sy, orientation="vertical", label="value"),
]
bq.Figure(marks=[line, dots], axes=axes, title="A random walk")
"""

# Stamps the moment the figure's marks are drawn: the line's path has its points and
# the scatter's every dot has its shape. Logged as bench/widgets.py logs a first widget.
FIRST_FIGURE_JS = """
(() => {
  let done = false;
  const look = (how) => {
    if (done) return;
    const line = document.querySelector('svg g.curve path.line');
    if (!line || !line.getAttribute('d')) return;
    const dots = document.querySelectorAll('svg path.dot');
    if (dots.length < DOTS || !dots[dots.length - 1].getAttribute('d')) return;
    if ((line.getAttribute('d').match(/L/g) || []).length < POINTS - 1) return;
    done = true;
    observer.disconnect();
    const stamp = { ms: performance.now(), how, cls: `path.line, ${dots.length} path.dot` };
    console.debug(MARK + JSON.stringify(stamp));
  };
  const observer = new MutationObserver(() => look('mutation'));
  observer.observe(document, {
    childList: true, subtree: true, attributes: true, attributeFilter: ['d'],
  });
  const frame = () => { look('frame'); if (!done) requestAnimationFrame(frame); };
  requestAnimationFrame(frame);
})();
"""
FIRST_FIGURE_JS = (
    FIRST_FIGURE_JS.replace("MARK", json.dumps(FIRST_WIDGET_MARK))
    .replace("POINTS", str(POINTS))
    .replace("DOTS", str(DOTS))
)
READY = "() => document.body.dataset.nbfState === 'ready'"  # docs/frontend.md


@dataclass
class Plan:
    figure_loads: int = 9  # of each server, after a warm-up load
    sessions: tuple[int, ...] = (20, 50)
    browser_sessions: int = 5
    repeats: int = 3  # of each memory figure
    voila_visitors: int = 4
    standard_loads: int = 11


QUICK = Plan(figure_loads=2, sessions=(5,), browser_sessions=2, repeats=1, voila_visitors=1,
             standard_loads=2)  # fmt: skip


def say(text: str) -> None:
    LOADS.append(os.getloadavg()[0])
    print(f"  {text} (load {LOADS[-1]:.1f})", file=sys.stderr, flush=True)


def bqplot_notebook(work: Path) -> Path:
    path = work / "bqplot" / "bqplot.ipynb"
    path.parent.mkdir(parents=True)
    notebook = v4.new_notebook(cells=[v4.new_code_cell(BQPLOT_CELL)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}  # fmt: skip
    nbformat.write(notebook, path)
    return path


def nbfreeze_serve(notebook: Path, code: Path = ROOT) -> Server:
    """`nbfreeze serve NOTEBOOK --open`, running the code of the tree `code`."""
    port = free_port()
    argv = [str(BIN / "nbfreeze"), "serve", notebook.name, "--open", "--port", str(port)]
    env = os.environ | {"PYTHONPATH": str(code)}
    return Server(f"nbfreeze-{code.name}", argv, notebook.parent, port, env=env)


def voila_serve(notebook: Path) -> Server:
    port = free_port()
    argv = [str(BIN / "voila"), notebook.name, "--no-browser", "--port", str(port)]
    argv.append("--Voila.ip=127.0.0.1")
    return Server("voila", argv, notebook.parent, port, env=voila_env())


async def page_bytes(browser: Any, url: str, script: str, voila: bool) -> dict[str, Any]:
    """One load of `url` until its network is idle: each response's body bytes on the wire
    (encoded, as sent), by file name, and for Voilà the kernel to shut down."""
    context = await browser.new_context()
    await context.add_init_script(script)
    page = await context.new_page()
    finished: list[Any] = []
    page.on("requestfinished", lambda request: finished.append(request))
    try:
        async with page.expect_console_message(
            lambda message: message.text.startswith(FIRST_WIDGET_MARK), timeout=60_000
        ):
            await page.goto(url, wait_until="commit", timeout=60_000)
        if not voila:
            await page.wait_for_function(READY, timeout=60_000)
        await page.wait_for_load_state("networkidle", timeout=60_000)
        kernel = None
        if voila:
            kernel = await page.evaluate(
                "() => JSON.parse(document.getElementById('jupyter-config-data')"
                ".textContent).kernelId"
            )
        files: dict[str, int] = {}
        for request in finished:
            if not request.url.startswith("http"):
                continue  # data: and blob: URLs, made in the page
            name = request.url.split("?", 1)[0].rsplit("/", 1)[-1] or "/"
            files[name] = files.get(name, 0) + (await request.sizes())["responseBodySize"]
    finally:
        await context.close()
    return {"files": files, "total": sum(files.values()), "kernel": kernel}


def median(values: list[float]) -> float:
    return statistics.median(values)


# ---- 1. the first figure


async def first_figure(browser: Any, notebook: Path, plan: Plan) -> dict[str, Any]:
    say("bqplot: nbfreeze serve and voila, first figure in turn")
    ours, theirs = nbfreeze_serve(notebook), voila_serve(notebook)
    try:
        await ours.ready()
        await theirs.ready()
        voila_http = TornadoConnection(theirs.port)
        urls = {"nbfreeze": (f"{ours.base}/", False), "voila": (f"{theirs.base}/", True)}
        times: dict[str, list[float]] = {"nbfreeze": [], "voila": []}
        for i in range(plan.figure_loads + 1):  # one warm-up load of each
            order = list(urls) if i % 2 == 0 else list(reversed(urls))
            for name in order:
                url, voila = urls[name]
                stamp = await load_once(browser, url, FIRST_FIGURE_JS, voila=voila)
                if voila:
                    await voila_shutdown(voila_http, stamp["kernel"])
                    await asyncio.sleep(0.2)
                if i >= 1:
                    times[name].append(stamp["ms"])
        downloads = {}
        for name, (url, voila) in urls.items():
            downloads[name] = await page_bytes(browser, url, FIRST_FIGURE_JS, voila)
            if voila:
                await voila_shutdown(voila_http, downloads[name]["kernel"])
        say(f"bqplot: voila, {plan.voila_visitors} kernels")
        memory = await voila_memory(theirs, plan.voila_visitors)
    finally:
        ours.stop()
        theirs.stop()
    return {"times": times, "downloads": downloads, "voila_memory": memory}


# ---- 2. memory per user


async def browser_memory(browser: Any, server: Server, script: str, count: int) -> dict:
    """RSS growth per page with `count` browser contexts open on the page, each shown
    until it is ready, after one warm-up page (closed)."""
    url = f"{server.base}/"
    await load_once(browser, url, script)
    await asyncio.sleep(1.5)
    before = await server.settled_rss()
    contexts = []
    try:
        for _ in range(count):
            context = await browser.new_context()
            await context.add_init_script(script)
            page = await context.new_page()
            contexts.append(context)
            async with page.expect_console_message(
                lambda message: message.text.startswith(FIRST_WIDGET_MARK), timeout=60_000
            ):
                await page.goto(url, wait_until="commit", timeout=60_000)
            await page.wait_for_function(READY, timeout=60_000)
        with_pages = await server.settled_rss()
    finally:
        for context in contexts:
            await context.close()
    return {"n": count, "before": before, "with": with_pages}


def widget_server(notebook: Path) -> Server:
    port = free_port()
    script = str(ROOT / "bench" / "widget_server.py")
    argv = [str(BIN / "python"), script, notebook.name, "--port", str(port)]
    env = os.environ | {"PYTHONMALLOC": "malloc"}  # as `nbfreeze serve` runs
    return Server("widget_server", argv, notebook.parent, port, env=env)


async def memory(browser: Any, notebooks: dict[str, Path], plan: Plan) -> dict[str, Any]:
    """Per session, bytes: {notebook: {"N": [...], "browser": [...]}}, in turn."""
    found: dict[str, dict[str, list[float]]] = {key: {} for key in notebooks}
    scripts = {"bqplot": FIRST_FIGURE_JS, "widget_list": FIRST_WIDGET_JS}
    for _ in range(plan.repeats):
        for count in (*plan.sessions, "browser"):
            for key, notebook in notebooks.items():
                say(f"{key}: widget_server, {count} sessions")
                server = widget_server(notebook)
                try:
                    await server.ready()
                    await server.logged("^Serving")
                    if count == "browser":
                        got = await browser_memory(
                            browser, server, scripts[key], plan.browser_sessions
                        )
                    else:
                        got = await nbfreeze_memory(server, count, 4)
                finally:
                    server.stop()
                per = (got["with"] - got["before"]) / got["n"]
                found[key].setdefault(str(count), []).append(per)
    return found


# ---- 3. standard widgets before and after


async def standard(browser: Any, work: Path, before: Path, plan: Plan) -> dict[str, Any]:
    trees = {"before": before, "now": ROOT}
    notebooks = {}
    for name in trees:  # a directory each: `nbfreeze serve` builds its bundle beside it
        (work / name).mkdir(parents=True)
        notebooks[name] = prepare(work / name)
    found: dict[str, Any] = {}
    for index, notebook in enumerate(notebooks["now"]):
        say(f"{notebook.key}: nbfreeze serve, the code before the loader and now, in turn")
        servers = {name: nbfreeze_serve(notebooks[name][index].path, trees[name])
                   for name in trees}  # fmt: skip
        try:
            for server in servers.values():
                await server.ready()
            times: dict[str, list[float]] = {name: [] for name in trees}
            for i in range(plan.standard_loads + 1):
                order = list(trees) if i % 2 == 0 else list(reversed(trees))
                for name in order:
                    stamp = await load_once(browser, f"{servers[name].base}/")
                    if i >= 1:
                        times[name].append(stamp["ms"])
            downloads = {
                name: await page_bytes(browser, f"{server.base}/", FIRST_WIDGET_JS, False)
                for name, server in servers.items()
            }
        finally:
            for server in servers.values():
                server.stop()
        found[notebook.key] = {"title": notebook.title, "times": times, "downloads": downloads}
    return found


# ---- the run and the report


async def run(plan: Plan, before: Path | None) -> tuple[dict[str, Any], dict[str, str]]:
    from playwright.async_api import async_playwright

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="nbfreeze-bench-") as tmp:
        work = Path(tmp)
        bqplot = bqplot_notebook(work)
        (work / "peers").mkdir()
        listing = next(n for n in prepare(work / "peers") if n.key == "widget_list")
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
            try:
                results["figure"] = await first_figure(browser, bqplot, plan)
                notebooks = {"bqplot": bqplot, "widget_list": listing.path}
                results["memory"] = await memory(browser, notebooks, plan)
                if before is not None:
                    results["standard"] = await standard(browser, work / "standard", before, plan)
            finally:
                chromium = browser.version
                await browser.close()
    LOADS.append(os.getloadavg()[0])
    return results, machine(chromium)


def before_commit(tree: Path) -> str:
    """The short hash of the commit checked out in `tree`."""
    done = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True)  # fmt: skip
    return done.stdout.strip() or str(tree)


def kib(value: float) -> str:
    return f"{value / 1024:,.1f} KiB"


def ms_list(values: list[float]) -> str:
    return ", ".join(f"{v:.0f}" for v in values)


def report(results: dict[str, Any], info: dict[str, str], plan: Plan, before: Path | None) -> str:
    figure, mem = results["figure"], results["memory"]
    t = figure["times"]
    ours, theirs = median(t["nbfreeze"]), median(t["voila"])
    vm = figure["voila_memory"]
    voila_per = (vm["with"] - vm["before"]) / vm["n"]
    lines = [
        "# Installed widget front ends against Voilà: a bqplot figure",
        "",
        "`bench/federated.py` (its docstring says exactly what each figure is): one "
        f"bqplot `Figure`, a `Lines` of {POINTS:,} points and a `Scatter` of {DOTS:,} of "
        "them, served by nbfreeze and by Voilà, the servers up at once and measured in "
        "turn; the client and the browser on the same machine.",
        "",
        "## First figure drawn in Chromium",
        "",
        "From navigation start to the line's path and every dot in the DOM, a fresh "
        "browser context per load, nbfreeze's and Voilà's loads alternating.",
        "",
        "| | nbfreeze | Voilà | Voilà / nbfreeze |",
        "|---|---:|---:|---:|",
        f"| **first figure drawn, median** | **{ours:.0f} ms** (n={len(t['nbfreeze'])}) | "
        f"**{theirs:.0f} ms** (n={len(t['voila'])}) | **{theirs / ours:.1f}x** |",
    ]
    downloads = figure["downloads"]
    lines += [
        f"| the page's downloads (bodies on the wire) | {kib(downloads['nbfreeze']['total'])} "
        f"({len(downloads['nbfreeze']['files'])} files) | {kib(downloads['voila']['total'])} "
        f"({len(downloads['voila']['files'])} files) | |",
        "",
        f"Each load, ms: nbfreeze {ms_list(t['nbfreeze'])}; Voilà {ms_list(t['voila'])}.",
        "",
        "nbfreeze's files, bytes on the wire: "
        + ", ".join(
            f"`{n}` {b:,}"
            for n, b in sorted(downloads["nbfreeze"]["files"].items(), key=lambda item: -item[1])
        )
        + ".",
        "",
        "## Memory per user with the figure open",
        "",
        "RSS growth of the server per session (nbfreeze: one process, "
        "`bench/widget_server.py`; Voilà: the server and its kernels), each row's runs "
        "in turn with the other notebook's; the median of the runs, and each run.",
        "",
        "| sessions | bqplot figure | Widget List | bqplot / Widget List |",
        "|---|---:|---:|---:|",
    ]
    verdicts = []
    for count in (*[str(n) for n in plan.sessions], "browser"):
        b, w = mem["bqplot"][count], mem["widget_list"][count]
        label = (f"{plan.browser_sessions} Chromium pages kept open" if count == "browser"
                 else f"{count} browser-less sessions")  # fmt: skip
        r = median(b) / median(w)
        verdicts.append((label, r))
        lines.append(
            f"| {label} | {kib(median(b))} ({', '.join(kib(v) for v in b)}) | "
            f"{kib(median(w))} ({', '.join(kib(v) for v in w)}) | {r:.2f}x |"
        )
    lines += [
        f"| Voilà, {vm['n']} visitors (a kernel each) | {voila_per / MIB:,.1f} MiB | | |",
        "",
    ]
    met = all(r <= 2.0 for _, r in verdicts)
    lines.append(
        "Goal: a session with the bqplot figure open within 2x of a Widget List session: "
        + ("**met**" if met else "**missed**")
        + " ("
        + "; ".join(f"{label}: {r:.2f}x" for label, r in verdicts)
        + ")."
    )
    lines.append("")
    if "standard" in results:
        lines += [
            "## A page of standard widgets, before the loader of installed front ends and now",
            "",
            f"`--before DIR`, DIR a checkout of {before_commit(before)}: the code before the "
            "loader; now: this tree. "
            "Both served by `nbfreeze serve --open` at once, loads in turn (median).",
            "",
            "| notebook | first widget, before | now | downloads, before | now | JavaScript, "
            "before | now |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        notes = []
        for figures in results["standard"].values():
            st, dl = figures["times"], figures["downloads"]

            def js(side: str, dl: dict = dl) -> int:
                return sum(b for n, b in dl[side]["files"].items() if n.endswith(".js"))

            lines.append(
                f"| {figures['title']} | {median(st['before']):.0f} ms | "
                f"{median(st['now']):.0f} ms | {kib(dl['before']['total'])} | "
                f"{kib(dl['now']['total'])} | {kib(js('before'))} | {kib(js('now'))} |"
            )
            notes.append(
                f"{figures['title']}, each load, ms: before {ms_list(st['before'])}; now "
                f"{ms_list(st['now'])}. Files now: "
                + ", ".join(f"`{n}` {b:,}" for n, b in sorted(dl["now"]["files"].items()))
                + "; before: "
                + ", ".join(f"`{n}` {b:,}" for n, b in sorted(dl["before"]["files"].items()))
                + "."
            )
        lines += ["", *("- " + note for note in notes), ""]
    lines += [
        "## Machine",
        "",
        f"{info['cpu']}, {info['memory']} of memory; {info['system']}; {info['python']}; "
        f"{info['versions']}. The 1-minute load average at each phase's start and at the "
        f"end: {', '.join(f'{load:.1f}' for load in LOADS)}.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="few loads and runs; writes nothing")
    parser.add_argument("--json", type=Path, help="also write every figure here, as JSON")
    parser.add_argument(
        "--before", type=Path, help="a checkout of the code before the loader, to compare"
    )
    args = parser.parse_args()
    plan = QUICK if args.quick else Plan()
    before = args.before.resolve() if args.before else None
    began = time.monotonic()
    results, info = asyncio.run(run(plan, before))
    text = report(results, info, plan, before)
    text += f"\nThe whole run took {time.monotonic() - began:.0f} s.\n"
    print(text)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    if not args.quick:
        RESULTS.write_text(text)
        print(f"written to {RESULTS.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
