"""The SQL views, through the README's own example queries, on SQLite and PostgreSQL.

The queries are read out of README.md, so the README cannot drift from the schema.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pytest
from sqlalchemy import text

from ffqueue.db import get_engine, session_scope
from ffqueue.results import analyze_sweep, class_rows, resolve_sweep, run_rows, summary_rows
from tests.sweep_factory import CNNS, finish, make_sweep

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_queries() -> list[str]:
    """The statements of the sql block in README's "Querying results" section."""
    section = README.read_text().split("## Querying results", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sql\n(.*?)```", section, re.S)
    assert block, "README's Querying results section has no sql block"
    code = "\n".join(line for line in block.group(1).splitlines()
                     if not line.lstrip().startswith("--"))
    return [q.strip() for q in code.split(";") if q.strip()]


def test_the_readme_has_three_queries_one_per_view():
    queries = readme_queries()
    assert len(queries) == 3
    for query, view in zip(queries, ["decay_curves", "model_decay", "class_convergence"],
                           strict=True):
        assert f"FROM {view}" in query


@pytest.fixture
def demo_sweep(settings, tiny_mixes):
    """A sweep named demo: the perceptron, two more nets and two CNNs, two seeds, analysed."""
    sweep_id = make_sweep(settings, tiny_mixes, presets=(), name="demo",
                          cnns=[[], [{"type": "fc", "units": 16}], *CNNS[:2]])
    finish(settings, sweep_id, weights=False)
    other = make_sweep(settings, tiny_mixes, presets=(), name="other", cnns=[[]], seeds=(5,))
    finish(settings, other, weights=False)
    with session_scope(settings) as session:
        analyze_sweep(sweep_id, session=session)
        analyze_sweep(other, session=session)
    return sweep_id


def run(settings, query):
    with get_engine(settings).connect() as connection:
        return [tuple(row) for row in connection.execute(text(query))]


def test_readme_queries_answer_from_the_views(settings, demo_sweep):
    curves_q, decay_q, classes_q = readme_queries()
    with session_scope(settings) as session:
        sweep = resolve_sweep(demo_sweep, session=session)
        runs = run_rows(sweep, session=session)
        summaries = summary_rows(sweep, session=session)
        classes = class_rows(sweep, session=session)

    # 1. decay curves: the mean over seeds of every (architecture, mix), nothing from "other"
    oracle = defaultdict(list)
    for r in runs:
        oracle[(r["architecture"], r["mix"])].append(r["test_accuracy"])
    rows = run(settings, curves_q)
    assert len(rows) == len(oracle) == 4 * 11
    assert [(a, m) for a, m, *_ in rows] == sorted(oracle)
    for architecture, mix, accuracy, seeds in rows:
        values = oracle[(architecture, mix)]
        assert accuracy == pytest.approx(sum(values) / len(values)) and seeds == 2

    # 2. least decay: the stored fits' means over seeds, best first
    rows = run(settings, decay_q)
    assert len(rows) == 4
    assert [r[0] for r in rows] == [s["architecture"] for s in summaries]
    by_name = {s["architecture"]: s for s in summaries}
    for architecture, params, depth, decay, best in rows:
        s = by_name[architecture]
        assert (params, depth) == (s["params"], s["depth"])
        assert decay == pytest.approx(s["slope"]) and best == pytest.approx(s["max_accuracy"])
    assert [r[3] for r in rows] == sorted((r[3] for r in rows), reverse=True)

    # 3. classes, hardest first, with their measures
    rows = run(settings, classes_q)
    assert len(rows) == 20
    expected = sorted(classes, key=lambda c: (-c["difficulty"], c["class"]))
    assert [r[0] for r in rows] == [c["class"] for c in expected]
    for (_, kind, difficulty, entropy, variance), c in zip(rows, expected, strict=True):
        assert kind == c["kind"] and difficulty == pytest.approx(1 - c["accuracy"])
        assert entropy == pytest.approx(c["entropy"])
        assert variance == pytest.approx(c["pixel_variance"])


def test_views_follow_the_stored_analysis(settings, demo_sweep):
    """model_decay reads decay_results: a new analysis shows at once, partial fits too."""
    with get_engine(settings).begin() as connection:
        connection.execute(text("UPDATE runs SET status = 'failed' WHERE sweep_id = :s AND "
                                "dataset_id IN (SELECT id FROM datasets WHERE mix_index > 2)"),
                           {"s": demo_sweep})
    with session_scope(settings) as session:
        analyze_sweep(demo_sweep, session=session)
    rows = run(settings, f"SELECT n_mixes, partial, slope FROM model_decay "
                         f"WHERE sweep_id = {demo_sweep}")
    assert len(rows) == 8 and all(n == 3 and bool(p) and s is not None for n, p, s in rows)
    assert run(settings, f"SELECT COUNT(*) FROM decay_curves WHERE sweep_id = {demo_sweep}") \
        == [(4 * 2 * 3,)]
