"""`nbfreeze serve` on SQLite killed with SIGKILL while labelers submit, then started
again on the same database: every submit that was answered 200 is saved, no item goes
beyond its overlap, the labelers carry on where they were, and a batch leased to someone
who never came back returns to the pool once its lease runs out."""

from __future__ import annotations

import asyncio
import json

from served import Labeler, Person, Served, notebook
from sqlalchemy import create_engine, text
from tornado.httpclient import AsyncHTTPClient

ITEMS = 150
LABELERS = 10
CELLS = (
    "from freezer.widgets import ChoiceLabeler\n"
    f"items = {{i: f'item {{i}}' for i in range({ITEMS})}}",
    "#| stage: label\n#| input: pool\n#| overlap: 2\n#| batch: 5\n#| lease: 30s\n"
    "labeler = ChoiceLabeler(items, choices=['a', 'b'], render=str)\nlabeler",
    "#| stage: done\n#| show: true\nprint(len(labeler.labels))",
)


def test_a_killed_sqlite_server_restarted_on_its_database_loses_nothing(tmp_path):
    path = notebook(tmp_path, CELLS)
    db = f"sqlite:///{tmp_path / 'app.sqlite'}"
    served = Served(path, "--db", db)
    port = served.port

    async def main() -> tuple[list[Labeler], list[str], list[str], int, int]:
        nonlocal served
        client = AsyncHTTPClient(max_clients=LABELERS + 2, force_instance=True)
        bob, carol = Person(port, client), Person(port, client)
        bob_id, carol_id = await bob.enter(served.invite), await carol.enter(served.invite)
        _, held, _ = await bob.call("/api/v1/stages/label/batch")
        _, gone, _ = await carol.call("/api/v1/stages/label/batch")  # she never comes back
        people = [Labeler(port, client) for _ in range(LABELERS)]
        tasks = [asyncio.ensure_future(p.work(served.invite, idle_rounds=200)) for p in people]
        while sum(len(p.acknowledged) for p in people) < 100:
            await asyncio.sleep(0.05)
        served.kill()
        served = Served(path, "--db", db, port=port)
        _, again, _ = await bob.call("/api/v1/stages/label/batch")
        assert again["items"] == held["items"], "the restart lost Bob's batch"
        labels = dict.fromkeys(held["items"], "a")
        body = json.dumps({"request_id": "bob-1", "labels": labels})
        status, _, _ = await bob.call("/api/v1/stages/label/submit", method="POST", body=body)
        assert status == 200
        await asyncio.gather(*tasks)
        client.close()
        return people, held["items"], gone["items"], bob_id, carol_id

    try:
        people, held, gone, bob, carol = asyncio.run(main())
    finally:
        terminal = served.stop()
    assert "Traceback" not in terminal, terminal
    engine = create_engine(db)
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT item_key, user_id FROM annotations WHERE stage = 'label'")
        ).all()
    engine.dispose()
    per_item: dict[str, list[int]] = {}
    for key, user in rows:
        per_item.setdefault(key, []).append(user)
    saved = set(rows)
    for person in people:
        assert all((key, person.user) in saved for key in person.acknowledged)
        assert person.statuses[500] == 0
    assert all((key, bob) in saved for key in held)
    # Carol's batch went to others when her lease ran out: the pool is full all the same.
    assert len(per_item) == ITEMS
    assert all(len(users) == 2 == len(set(users)) for users in per_item.values())
    assert all(carol not in per_item[key] for key in gone)
    assert sum(p.statuses[599] for p in people) > 0, "the kill came after the labeling"
