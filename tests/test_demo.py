"""``ffqueue demo`` exactly as a newcomer runs it: defaults, twice."""

from __future__ import annotations

import json
import re

import pytest

from tests.helpers import ffqueue


@pytest.mark.slow
def test_demo_shows_decay_and_does_not_duplicate_runs(tmp_path):
    home = tmp_path / "demo"
    first = ffqueue("demo", "--dir", str(home), timeout=600)
    last = first.stdout.strip().splitlines()[-1]
    assert last == f"export FFQ_DATABASE_URL=sqlite:///{home / 'ffqueue.db'}"
    match = re.search(r"(\d+) of (\d+) nets decay", first.stdout)
    assert match, first.stdout
    negative, total = map(int, match.groups())
    assert total == 12 and negative >= 9  # most fully-connected nets decay
    assert "132 done, 0 failed" in first.stdout

    env = {"FFQ_DATABASE_URL": last.split("=", 1)[1]}
    fits = json.loads(ffqueue("analyze", "--format", "json", env=env).stdout)
    assert len(fits) == 12
    assert {"architecture", "seed", "slope", "intercept", "r2", "max_accuracy", "params",
            "depth", "partial"} <= set(fits[0])
    assert sum(f["slope"] < 0 for f in fits) == negative
    runs = json.loads(ffqueue("results", "--format", "json", env=env).stdout)
    assert len(runs) == 132 and all(r["status"] == "done" for r in runs)

    second = ffqueue("demo", "--dir", str(home), timeout=600)
    assert "already submitted" in second.stderr and "0 to queue" in second.stderr
    again = json.loads(ffqueue("results", "--format", "json", env=env).stdout)
    assert [(r["run"], r["test_accuracy"]) for r in again] == [
        (r["run"], r["test_accuracy"]) for r in runs]
