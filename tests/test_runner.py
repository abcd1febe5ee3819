"""Submitting and executing runs without Celery, on SQLite and on PostgreSQL."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import func, select

from ffqueue.db import session_scope
from ffqueue.errors import DataError
from ffqueue.models import EpochMetric, Run, RunStatus, Sweep
from ffqueue.results import analyze_sweep, decay_rows, resolve_sweep, run_rows
from ffqueue.runner import claim_run, execute_run, weights_path
from ffqueue.scheduler import submit
from ffqueue.sweeps import TrainConfig, make_definition

SMALL = [[], [{"type": "fc", "units": 16}]]  # the perceptron and one hidden layer


def small_definition(mixes, **kwargs):
    options = {"name": "small", "mixes_dir": mixes, "specs": SMALL, "seeds": [0],
               "mix_indices": [0, 5, 10], "train": TrainConfig(epochs=2, batch_size=64)}
    options.update(kwargs)
    return make_definition(**options)


def test_submit_creates_one_run_per_architecture_mix_seed_once(settings, tiny_mixes):
    definition = small_definition(tiny_mixes, seeds=[0, 1])
    with session_scope(settings) as session:
        first = submit(definition, session=session)
    with session_scope(settings) as session:
        again = submit(definition, session=session)
        total = session.scalar(select(func.count()).select_from(Run))
    assert first.created and not again.created
    assert first.runs == 2 * 3 * 2 == total
    assert again.sweep_id == first.sweep_id
    assert sorted(again.to_publish) == sorted(first.to_publish)  # still queued: publish again


def test_force_makes_a_new_sweep(settings, tiny_mixes):
    definition = small_definition(tiny_mixes)
    with session_scope(settings) as session:
        first = submit(definition, session=session)
        forced = submit(definition, session=session, force=True)
    assert forced.created and forced.sweep_id != first.sweep_id


def test_submit_with_missing_mixes_changes_nothing(settings, tmp_path):
    (tmp_path / "empty").mkdir()
    definition = small_definition(tmp_path / "empty")
    with pytest.raises(DataError), session_scope(settings) as session:
        submit(definition, session=session)
    with session_scope(settings) as session:
        assert session.scalar(select(func.count()).select_from(Sweep)) == 0


def test_execute_trains_stores_and_is_idempotent(settings, tiny_mixes):
    with session_scope(settings) as session:
        submission = submit(small_definition(tiny_mixes), session=session)
    outcomes = [execute_run(run_id, settings=settings) for run_id in submission.to_publish]
    assert [o.status for o in outcomes] == ["done"] * 6
    assert all(0.0 <= (o.test_accuracy or -1) <= 1.0 for o in outcomes)
    # A second delivery of a finished run changes nothing.
    assert execute_run(submission.to_publish[0], settings=settings).status == "skipped"
    with session_scope(settings) as session:
        runs = session.scalars(select(Run)).all()
        assert all(r.status == RunStatus.DONE and r.attempts == 1 for r in runs)
        assert all(r.epochs_done == 2 and r.device == "cpu" and r.host for r in runs)
        assert all(sum(map(sum, r.confusion)) == r.dataset.n_test for r in runs)
        epochs = session.scalar(select(func.count()).select_from(EpochMetric))
        assert epochs == 6 * 2
        rows = run_rows(resolve_sweep(None, session=session), session=session)
        assert {r["architecture"] for r in rows} == {"perceptron", "fc16"}
        assert {r["mix"] for r in rows} == {0, 5, 10}
        stored = analyze_sweep(submission.sweep_id, session=session)
        assert len(stored) == 2
        fits = decay_rows(resolve_sweep(submission.sweep_id, session=session), session=session)
        assert all(f["slope"] is not None and f["partial"] for f in fits)
    assert weights_path(settings, submission.to_publish[0]).exists()


def test_a_live_lease_cannot_be_claimed_twice(settings, tiny_mixes):
    with session_scope(settings) as session:
        run_id = submit(small_definition(tiny_mixes), session=session).to_publish[0]
    with session_scope(settings) as session:
        assert claim_run(run_id, worker="a:1", lease_seconds=60, max_attempts=3,
                         session=session) is not None
    with session_scope(settings) as session:
        assert claim_run(run_id, worker="b:2", lease_seconds=60, max_attempts=3,
                         session=session) is None
    # Once the lease has expired another worker takes the run over.
    with session_scope(settings) as session:
        job = claim_run(run_id, worker="b:2", lease_seconds=-1, max_attempts=3,
                        session=session)
        assert job is not None and job.attempt == 2


def test_tampered_mix_fails_the_run_without_retry(settings, tiny_mixes, tmp_path):
    import shutil

    copy = tmp_path / "mixes"
    shutil.copytree(tiny_mixes, copy)
    with session_scope(settings) as session:
        submission = submit(small_definition(copy, mix_indices=[0, 1, 2]), session=session)
    # Change one pixel of mix_00: the recorded content hash no longer matches.
    with np.load(copy / "mix_00.npz") as stored:
        arrays = dict(stored)
    arrays["x_train"][0, 0] ^= 0xFF
    np.savez(copy / "mix_00.npz", **arrays)
    with session_scope(settings) as session:
        run_id = session.scalars(select(Run.id).join(Run.dataset)
                                 .where(Run.sweep_id == submission.sweep_id)
                                 .order_by(Run.id)).first()
    outcome = execute_run(run_id, settings=settings)
    assert outcome.status == "failed"
    assert outcome.error and "hash" in outcome.error
    with session_scope(settings) as session:
        run = session.get_one(Run, run_id)
        assert run.status == RunStatus.FAILED and run.attempts == 1
