"""Writes that several server processes make at once are single statements that cannot
race: two processes, started together at a barrier, write the same new row at the same
moment, on both databases, many times over."""

from __future__ import annotations

import multiprocessing

from runtime.store.database import open_store

ROUNDS = 40


def _write_stage_runs(url: str, barrier, failures) -> None:
    store = open_store(url)
    try:
        for number in range(ROUNDS):
            barrier.wait()
            try:
                store.set_stage_run(f"stage-{number}", "done", cache_key=f"key-{number}")
            except Exception as error:  # the failure this test is about, reported back
                failures.put(f"round {number}: {type(error).__name__}: {error}")
    finally:
        store.dispose()


def test_two_processes_finishing_the_same_stage_at_once_both_succeed(database_url):
    open_store(database_url).dispose()  # the tables, made once
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    failures = context.Queue()
    workers = [
        context.Process(target=_write_stage_runs, args=(database_url, barrier, failures))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [worker.exitcode for worker in workers] == [0, 0]
    seen = []
    while not failures.empty():
        seen.append(failures.get())
    assert not seen, seen
    runs = open_store(database_url).stage_runs()
    assert {name: run.cache_key for name, run in runs.items()} == {
        f"stage-{n}": f"key-{n}" for n in range(ROUNDS)
    }
