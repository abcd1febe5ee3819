"""Periodic analysis: only sweeps with new results are analysed, and nothing else changes.

The first tests call the function beat's task runs; the last one runs the real thing:
``ffqueue beat`` and an ``ffqueue worker`` on Redis and PostgreSQL.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from ffqueue.db import session_scope
from ffqueue.models import ClassResult, Dataset, DecayResult, Run, RunStatus, Sweep
from ffqueue.results import analyze_stale_sweeps
from tests.helpers import CLEAN_ENV, stop
from tests.sweep_factory import finish, make_sweep

ONE_NET = [[{"type": "fc", "units": 16}]]


def snapshot(settings, sweep_id):
    """Everything the analysis stores for a sweep, with the times it was computed."""
    with session_scope(settings) as session:
        sweep = session.get_one(Sweep, sweep_id)
        fits = session.execute(select(DecayResult.id, DecayResult.seed, DecayResult.n_mixes,
                                      DecayResult.slope, DecayResult.computed_at)
                               .where(DecayResult.sweep_id == sweep_id)
                               .order_by(DecayResult.id)).all()
        classes = session.execute(select(ClassResult.id, ClassResult.accuracy,
                                         ClassResult.computed_at)
                                  .where(ClassResult.sweep_id == sweep_id)
                                  .order_by(ClassResult.id)).all()
        return sweep.analyzed_at, [tuple(f) for f in fits], [tuple(c) for c in classes]


def first_mixes(n):
    return Run.dataset_id.in_(select(Dataset.id).where(Dataset.mix_index < n))


def test_only_sweeps_with_new_results_are_analysed(settings, tiny_mixes):
    busy = make_sweep(settings, tiny_mixes, presets=(), cnns=ONE_NET, seeds=(0,), name="busy")
    idle = make_sweep(settings, tiny_mixes, presets=(), cnns=ONE_NET, seeds=(1,), name="idle")
    with session_scope(settings) as session:
        assert analyze_stale_sweeps(session=session) == []  # nothing done anywhere yet
    finish(settings, busy, where=first_mixes(4), weights=False)
    with session_scope(settings) as session:
        assert analyze_stale_sweeps(session=session) == [busy]
    before = snapshot(settings, busy)
    assert before[0] is not None and [f[2] for f in before[1]] == [4]
    assert snapshot(settings, idle) == (None, [], [])

    with session_scope(settings) as session:  # a tick with nothing new
        assert analyze_stale_sweeps(session=session) == []
    assert snapshot(settings, busy) == before

    finish(settings, busy, where=first_mixes(8), weights=False)
    with session_scope(settings) as session:
        assert analyze_stale_sweeps(session=session) == [busy]
    after = snapshot(settings, busy)
    assert after[0] > before[0] and [f[2] for f in after[1]] == [8]
    assert after[1][0][3] != before[1][0][3]  # a new slope from more points


def test_a_run_that_commits_late_is_still_seen(settings, tiny_mixes):
    """A run whose finished_at predates the last analysis (its transaction committed
    after the analysis read) still makes the sweep stale: its count gives it away."""
    sweep_id = make_sweep(settings, tiny_mixes, presets=(), cnns=ONE_NET, seeds=(0,))
    finish(settings, sweep_id, where=first_mixes(5), weights=False)
    with session_scope(settings) as session:
        assert analyze_stale_sweeps(session=session) == [sweep_id]
    finish(settings, sweep_id, where=first_mixes(6), weights=False)
    with session_scope(settings) as session:
        sweep = session.get_one(Sweep, sweep_id)
        late = session.scalars(select(Run).where(Run.sweep_id == sweep_id,
                                                 Run.finished_at > sweep.analyzed_at)).all()
        assert len(late) == 1
        late[0].finished_at = sweep.analyzed_at - timedelta(seconds=5)
    with session_scope(settings) as session:
        assert analyze_stale_sweeps(session=session) == [sweep_id]
        assert session.scalar(select(func.sum(DecayResult.n_mixes))
                              .where(DecayResult.sweep_id == sweep_id)) == 6
        assert analyze_stale_sweeps(session=session) == []


def test_failed_runs_alone_do_not_trigger_an_analysis(settings, tiny_mixes):
    sweep_id = make_sweep(settings, tiny_mixes, presets=(), cnns=ONE_NET, seeds=(0,))
    finish(settings, sweep_id, where=first_mixes(3), weights=False)
    with session_scope(settings) as session:
        analyze_stale_sweeps(session=session)
    before = snapshot(settings, sweep_id)
    with session_scope(settings) as session:
        for run in session.scalars(select(Run).where(Run.sweep_id == sweep_id,
                                                     Run.status == RunStatus.QUEUED)):
            run.status, run.error = RunStatus.FAILED, "boom"
    with session_scope(settings) as session:
        assert analyze_stale_sweeps(session=session) == []
    assert snapshot(settings, sweep_id) == before


def ticks(log_path):
    """The results of the analyze_all tasks the worker has logged so far."""
    text = log_path.read_text(errors="replace") if log_path.exists() else ""
    return re.findall(r"Task ffqueue\.analyze_all\[[^\]]+\] succeeded in [^:]+: (\[[^\]]*\])",
                      text)


def wait_for(condition, timeout, what, processes):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        for p in processes:
            assert p.poll() is None, f"{p.args} exited with {p.returncode}"
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.mark.redis
@pytest.mark.postgres
def test_beat_and_a_worker_analyse_new_results_and_leave_the_rest(tmp_path, tiny_mixes,
                                                                   redis_url, postgres_url):
    from ffqueue import db
    from ffqueue.settings import load_settings, use_settings

    settings = load_settings(home=tmp_path / "home", database_url=postgres_url)
    use_settings(settings)
    db.upgrade(settings)
    sweep_id = make_sweep(settings, tiny_mixes, presets=(), cnns=ONE_NET, seeds=(0,))
    finish(settings, sweep_id, where=first_mixes(4), weights=False)

    env = {**CLEAN_ENV, "FFQ_DATABASE_URL": postgres_url, "FFQ_BROKER_URL": redis_url,
           "FFQ_HOME": str(tmp_path / "home"), "FFQ_ANALYSIS_INTERVAL": "1"}
    log = tmp_path / "worker.log"
    with log.open("w") as sink:
        processes = [
            subprocess.Popen([sys.executable, "-m", "ffqueue", "worker", "--queues", "analysis",
                              "--loglevel", "INFO", "--hostname", "analyst@%h"], env=env,
                             stdout=sink, stderr=subprocess.STDOUT),
            subprocess.Popen([sys.executable, "-m", "ffqueue", "beat", "--loglevel", "WARNING"],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        ]
        try:
            wait_for(lambda: snapshot(settings, sweep_id)[0] is not None, 90,
                     "the first analysis", processes)
            first = snapshot(settings, sweep_id)
            assert [f[2] for f in first[1]] == [4] and len(first[2]) == 20

            # Ticks with nothing new: they run, find nothing and change nothing.
            seen = len(ticks(log))
            wait_for(lambda: len(ticks(log)) >= seen + 3, 30, "three more ticks", processes)
            assert ticks(log)[seen:] == ["[]"] * len(ticks(log)[seen:])
            assert snapshot(settings, sweep_id) == first

            finish(settings, sweep_id, where=first_mixes(9), weights=False)
            wait_for(lambda: [f[2] for f in snapshot(settings, sweep_id)[1]] == [9], 30,
                     "the analysis of the new runs", processes)
            assert f"[{sweep_id}]" in ticks(log)
            assert snapshot(settings, sweep_id)[0] > first[0]
        finally:
            stop(processes)
            from ffqueue.db import _engine

            _engine.cache_clear()
