"""PostgreSQL restarted (`pg_ctl restart -m fast`, then `-m immediate`, as after a crash)
under `nbfreeze serve --workers 2` and two dozen labelers: the requests in flight are
answered 503 with Retry-After, never 500; the processes reconnect by themselves; every
label acknowledged is in the database afterwards, and the labelers, retrying, fill the
pool to its overlap exactly."""

from __future__ import annotations

import asyncio

from private_postgres import PrivateCluster
from served import Labeler, Person, Served, notebook
from sqlalchemy import create_engine, text
from tornado.httpclient import AsyncHTTPClient

ITEMS = 300
LABELERS = 24
CELLS = (
    "from freezer.widgets import ChoiceLabeler\n"
    f"items = {{i: f'item {{i}}' for i in range({ITEMS})}}",
    "#| stage: label\n#| input: pool\n#| overlap: 2\n#| batch: 5\n#| lease: 20s\n"
    "labeler = ChoiceLabeler(items, choices=['a', 'b'], render=str)\nlabeler",
    "#| stage: done\n#| show: true\nprint(len(labeler.labels))",
)


def labels_in(url: str) -> list[tuple[str, int]]:
    engine = create_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT item_key, user_id FROM annotations WHERE stage = 'label'")
        ).all()
    engine.dispose()
    return [(key, user) for key, user in rows]


def test_postgresql_restarted_under_load_loses_nothing_and_never_answers_500(tmp_path):
    cluster = PrivateCluster()
    served = None
    try:
        served = Served(notebook(tmp_path, CELLS), "--db", cluster.url, "--workers", "2")

        async def main() -> tuple[list[Labeler], Person]:
            client = AsyncHTTPClient(max_clients=LABELERS + 1, force_instance=True)
            people = [Labeler(served.port, client) for _ in range(LABELERS)]
            tasks = [asyncio.ensure_future(p.work(served.invite, idle_rounds=200)) for p in people]
            for mode, labels in (("fast", 100), ("immediate", 250)):
                while sum(len(p.acknowledged) for p in people) < labels:
                    await asyncio.sleep(0.05)
                await asyncio.to_thread(cluster.restart, mode)
            await asyncio.gather(*tasks)
            owner = Person(served.port, client)
            await owner.enter(served.owner)
            for _ in range(10):  # both processes, reconnected, answer the owner
                assert (await owner.call("/api/v1/pipeline"))[0] == 200
            client.close()
            return people, owner

        people, owner = asyncio.run(main())
        rows = labels_in(cluster.url)
    finally:
        terminal = served.stop() if served else ""
        cluster.remove()
    statuses = sum((p.statuses for p in people), start=type(people[0].statuses)())
    assert statuses[500] == 0 and statuses[599] == 0, (statuses, terminal)
    assert statuses[503] > 0, "no request met the restarts"
    assert all(p.retry_after_missing == 0 for p in people)
    saved = set(rows)
    for person in people:
        assert all((key, person.user) in saved for key in person.acknowledged)
    per_item: dict[str, list[int]] = {}
    for key, user in rows:
        per_item.setdefault(key, []).append(user)
    assert len(per_item) == ITEMS
    assert all(len(users) == 2 == len(set(users)) for users in per_item.values())
    assert "Traceback" not in terminal, terminal[terminal.find("Traceback") - 300 :][:3000]
