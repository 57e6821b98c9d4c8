"""docs/quickstart.md as a new user follows it: its notebook compiles, two labelers take
it to the end through the API, and its commands run on the app they leave."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from staged_harness import StagedTestCase
from tornado.testing import gen_test

ROOT = Path(__file__).resolve().parents[1]
PAGE = (ROOT / "docs" / "quickstart.md").read_text()
CELLS = tuple(
    re.search(r"^```python notebook\n(.*?)^```", PAGE, re.S | re.M).group(1).split("# %%\n")
)


def commands(after: str) -> list[list[str]]:
    """The nbfreeze commands of the sh block under the heading `after`."""
    block = re.search(rf"^## {re.escape(after)}\n.*?^```sh\n(.*?)^```", PAGE, re.S | re.M)
    return [line.split() for line in block.group(1).strip().splitlines()]


class TestQuickStart(StagedTestCase):
    cells = CELLS

    async def label_all(self, person, label_of) -> None:
        while True:
            status, batch = await person.get_json("/api/v1/stages/label/batch")
            assert status == 200, batch
            if not batch["items"]:
                return
            assert len(batch["items"]) <= 3
            labels = {key: label_of(int(key)) for key in batch["items"]}
            assert (await person.submit("label", {"__labels__": labels}))[0] == 200

    async def walk(self) -> None:
        """Alice and Bob label every review; the tally is shown to both."""
        await self.advance()
        alice, bob = await self.labeler(), await self.labeler()
        await self.label_all(alice, lambda i: "negative" if i in (1, 3, 5) else "positive")
        await self.label_all(bob, lambda i: "negative" if i in (1, 3) else "positive")
        await self.advance()
        for person in (alice, bob):
            status, stages = await person.get_json("/api/v1/stages")
            assert (status, stages["next"]) == (200, "/stage/tally")
        said = "".join(o["html"] for o in self.staged.pipeline.status["tally"].outputs)
        # Review 5 ties; the label given first, Alice's, stands.
        assert "3 of 6 reviews are positive" in said

    @gen_test(timeout=120)
    async def test_two_labelers_label_every_review_and_both_see_the_tally(self):
        await self.walk()

    def test_the_commands_of_step_5_run_on_the_app(self):
        self.io_loop.run_sync(self.walk)
        for words in commands("5. The labels"):
            assert words[0] == "nbfreeze"
            args = [str(self.bundle_dir) if w == "reviews.ipynb" else w for w in words[1:]]
            result = subprocess.run(
                [sys.executable, "-m", "freezer", *args, "--db", self.db_url],
                cwd=self.tmp,
                capture_output=True,
                text=True,
            )
            assert result.returncode == 0, result.stderr
        lines = (self.tmp / "labels.jsonl").read_text().splitlines()
        assert len(lines) == 6 and all(len(json.loads(line)["annotations"]) == 2 for line in lines)
        assert (self.tmp / "reviews-done.ipynb").is_file()
