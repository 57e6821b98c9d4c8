"""The served process's cyclic garbage collector: the shared namespace frozen out of its
reach, and a probe that times its collections.

What the shared stages leave behind lives as long as the server and is most of its heap:
a notebook's data, its models, the pool's items (a `ChoiceLabeler` of 20,000 items was
some 2 million tracked objects while it built a card of widgets per item). Every full
collection walked all of them, 1 to 4 s with the event loop and the store threads held,
every request in flight stalled behind it.
`freeze()` once the shared stages have run, and again whenever another finishes or a
pool opens, moves them to the permanent generation: later collections walk only what
requests made since.

`NBFREEZE_GC_PROBE=FILE` makes `nbfreeze serve` append a JSON line to FILE for every
collection of generation 1 or 2 and for any collection of 1 ms or more (when, which
generation, how long, how many objects it freed), and once a second the counts and total
time of every generation so far; after each freeze, how many objects are frozen.
`bench/labels.py` sets it and reports the longest
collections beside the latencies.
"""

from __future__ import annotations

import asyncio
import atexit
import gc
import json
import os
import time
from typing import Any, TextIO

from runtime.app.pipeline import DONE, FAILED, Pipeline

PROBE_ENV = "NBFREEZE_GC_PROBE"
SLOW_SECONDS = 0.001  # a generation-0 collection this long is written out too


class Probe:
    """Times every collection through `gc.callbacks`, writing to `out` as it goes."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.pid = os.getpid()
        self.counts = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self._started = 0.0
        self._written = time.monotonic()

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        took = time.perf_counter() - self._started
        generation = info["generation"]
        self.counts[generation] += 1
        self.seconds[generation] += took
        if generation or took >= SLOW_SECONDS:
            # Not gc.get_freeze_count() here: it walks every frozen object.
            self._write(gen=generation, ms=round(took * 1000, 3), collected=info["collected"])
        if time.monotonic() - self._written >= 1.0:
            self.totals()

    def froze(self) -> None:
        """How many objects `gc.freeze` has exempted, just after it did."""
        self._write(froze=gc.get_freeze_count())

    def totals(self) -> None:
        """The counts and milliseconds of every generation so far."""
        self._written = time.monotonic()
        self._write(counts=self.counts, total_ms=[round(s * 1000, 1) for s in self.seconds])

    def _write(self, **fields: Any) -> None:
        self.out.write(json.dumps({"t": time.time(), "pid": self.pid, **fields}) + "\n")


def install_probe(environ: dict[str, str] | None = None) -> Probe | None:
    """Start timing collections if `NBFREEZE_GC_PROBE` names a file."""
    path = (os.environ if environ is None else environ).get(PROBE_ENV)
    if not path:
        return None
    probe = Probe(open(path, "a", buffering=1))  # noqa: SIM115 - open as long as the process
    gc.callbacks.append(probe)
    atexit.register(probe.totals)
    return probe


def freeze() -> None:
    """Collect what is garbage now, then exempt every object left from all later
    collections (the permanent generation, `gc.freeze`); objects made from now on are
    collected as before."""
    gc.collect()
    gc.freeze()
    for callback in gc.callbacks:
        if isinstance(callback, Probe):
            callback.froze()


def _settled(pipeline: Pipeline) -> tuple[frozenset[str], frozenset[str]]:
    """The shared stages that have finished (done or failed) and the pools open."""
    finished = {n for n, s in pipeline.status.items() if s.state in (DONE, FAILED)}
    return frozenset(finished), frozenset(pipeline.pools)


def keep_frozen(pipeline: Pipeline) -> asyncio.Task[None]:
    """Freeze now (the shared stages have run), and again whenever a shared stage
    finishes or a pool opens: a later pool's widget is as large as the first's. Not on
    every change: a pool's progress changes with each label, and whatever requests hold
    at that moment would be frozen with it, out of the collector's reach for good."""
    freeze()
    return asyncio.get_running_loop().create_task(_refreeze(pipeline))


async def _refreeze(pipeline: Pipeline) -> None:
    seen = _settled(pipeline)
    while True:
        await pipeline.changed.wait()
        now = _settled(pipeline)
        if now != seen:
            seen = now
            freeze()
