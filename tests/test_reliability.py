"""Leases, attempts, cancellation, results kept on disk, sweep control and the reconciler.

These run the plain functions against SQLite and PostgreSQL; tests/test_faults.py does
the same through real worker processes that get killed.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from ffqueue import control
from ffqueue.db import session_scope
from ffqueue.errors import ServiceUnavailable, SweepError
from ffqueue.leases import claim_run, heartbeat
from ffqueue.models import EpochMetric, Run, RunStatus, Sweep, SweepStatus, utcnow
from ffqueue.reconciler import find_orphans, queued_run_ids, reconcile
from ffqueue.runner import execute_run, pending_path
from ffqueue.scheduler import message_labels, publish, submit
from ffqueue.sweeps import TrainConfig, make_definition


def new_sweep(settings, mixes, *, epochs=2, mix_indices=(0, 5, 10)):
    definition = make_definition(name="rel", mixes_dir=mixes, specs=[[]], seeds=[0],
                                 mix_indices=list(mix_indices),
                                 train=TrainConfig(epochs=epochs, batch_size=64))
    with session_scope(settings) as session:
        return submit(definition, session=session)


def run_row(settings, run_id):
    with session_scope(settings) as session:
        run = session.get_one(Run, run_id)
        session.expunge(run)
        return run


def test_attempts_are_counted_and_exhausted_runs_fail(settings, tiny_mixes):
    run_id = new_sweep(settings, tiny_mixes).to_publish[0]
    for attempt in (1, 2, 3):  # three workers claim it and die (their heartbeat stops)
        with session_scope(settings) as session:
            job = claim_run(run_id, worker=f"w:{attempt}", lease_seconds=0, max_attempts=3,
                            session=session)
            assert job is not None and job.attempt == attempt
        with session_scope(settings) as session:
            session.execute(update(Run).values(heartbeat_at=utcnow() - timedelta(seconds=5)))
    with session_scope(settings) as session:
        assert claim_run(run_id, worker="w:4", lease_seconds=0, max_attempts=3,
                         session=session) is None
    run = run_row(settings, run_id)
    assert run.status == RunStatus.FAILED and run.attempts == 3
    assert "gave up after 3 attempts" in (run.error or "")


def test_heartbeat_reports_lost_lease_and_cancellation(settings, tiny_mixes):
    submission = new_sweep(settings, tiny_mixes)
    run_id = submission.to_publish[0]
    with session_scope(settings) as session:
        claim_run(run_id, worker="a:1", lease_seconds=60, max_attempts=3, session=session)
        assert heartbeat(run_id, "a:1", session=session) == "ok"
        assert heartbeat(run_id, "b:2", session=session) == "lost"
    with session_scope(settings) as session:  # b takes the expired lease over
        assert claim_run(run_id, worker="b:2", lease_seconds=-1, max_attempts=3,
                         session=session) is not None
        assert heartbeat(run_id, "a:1", session=session) == "lost"
        control.cancel(session.get_one(Sweep, submission.sweep_id), session=session)
    with session_scope(settings) as session:
        assert heartbeat(run_id, "b:2", session=session) == "cancelled"
        assert session.scalar(select(func.count()).select_from(Run).where(
            Run.status == RunStatus.CANCELLED)) == 2  # the two queued siblings


def test_cancelling_a_sweep_stops_its_running_run(settings, tiny_mixes):
    settings = settings.model_copy(update={"lease_seconds": 1})
    submission = new_sweep(settings, tiny_mixes, epochs=6)
    run_id = submission.to_publish[0]

    def cancel_then_wait(epoch: int, _total: int) -> None:
        if epoch == 1:
            with session_scope(settings) as session:
                control.cancel(session.get_one(Sweep, submission.sweep_id), session=session)
            time.sleep(0.8)  # a few heartbeats (every lease/4 s) see the cancellation

    outcome = execute_run(run_id, settings=settings, progress=cancel_then_wait)
    assert outcome.status == "cancelled"
    run = run_row(settings, run_id)
    assert run.status == RunStatus.CANCELLED and run.epochs_done < 6


def test_a_result_survives_a_database_outage_on_disk(settings, tiny_mixes, monkeypatch):
    import ffqueue.runner as runner

    run_id = new_sweep(settings, tiny_mixes, epochs=3).to_publish[0]
    real_store = runner.store_result

    def outage(*args, **kwargs):
        raise ServiceUnavailable("cannot use the database: connection refused")

    monkeypatch.setattr(runner, "store_result", outage)
    with pytest.raises(ServiceUnavailable):
        execute_run(run_id, settings=settings)
    assert pending_path(settings, run_id).exists()
    assert run_row(settings, run_id).status == RunStatus.RUNNING
    monkeypatch.setattr(runner, "store_result", real_store)
    started = time.perf_counter()
    outcome = execute_run(run_id, settings=settings)  # Celery's retry delivers it again
    assert outcome.status == "done" and time.perf_counter() - started < 30
    assert not pending_path(settings, run_id).exists()
    run = run_row(settings, run_id)
    assert run.status == RunStatus.DONE and run.attempts == 1 and run.epochs_done == 3
    with session_scope(settings) as session:
        epochs = session.scalars(select(EpochMetric.epoch).where(EpochMetric.run_id == run_id)
                                 .order_by(EpochMetric.epoch)).all()
    assert epochs == [1, 2, 3]


def test_finished_run_executed_again_changes_nothing(settings, tiny_mixes):
    run_id = new_sweep(settings, tiny_mixes).to_publish[0]
    assert execute_run(run_id, settings=settings).status == "done"
    before = run_row(settings, run_id)
    assert execute_run(run_id, settings=settings).status == "skipped"
    after = run_row(settings, run_id)
    assert (after.finished_at, after.test_accuracy, after.attempts) == (
        before.finished_at, before.test_accuracy, before.attempts)


def test_pause_resume_cancel_retry(settings, tiny_mixes):
    submission = new_sweep(settings, tiny_mixes)
    first, second, third = submission.to_publish
    with session_scope(settings) as session:
        control.pause(session.get_one(Sweep, submission.sweep_id), session=session)
    assert execute_run(first, settings=settings).status == "skipped"  # paused: not claimed
    assert run_row(settings, first).status == RunStatus.QUEUED
    with session_scope(settings) as session:
        to_publish = control.resume(session.get_one(Sweep, submission.sweep_id),
                                    session=session)
    assert sorted(to_publish) == sorted(submission.to_publish)
    assert execute_run(first, settings=settings).status == "done"
    with session_scope(settings) as session:
        session.execute(update(Run).where(Run.id == second).values(status=RunStatus.FAILED,
                                                                    attempts=3, error="x"))
    with session_scope(settings) as session:
        assert control.retry_failed(session.get_one(Sweep, submission.sweep_id),
                                    session=session) == [second]
    run = run_row(settings, second)
    assert (run.status, run.attempts, run.error) == (RunStatus.QUEUED, 0, None)
    with session_scope(settings) as session:
        sweep = session.get_one(Sweep, submission.sweep_id)
        assert control.cancel(sweep, session=session) == 2
    assert {run_row(settings, r).status for r in (second, third)} == {RunStatus.CANCELLED}
    assert run_row(settings, first).status == RunStatus.DONE
    with session_scope(settings) as session, pytest.raises(SweepError, match="is cancelled"):
        control.resume(session.get_one(Sweep, submission.sweep_id), session=session)


def test_orphans_are_found_by_comparing_database_and_queue(settings, tiny_mixes):
    submission = new_sweep(settings, tiny_mixes)
    a, b, c = submission.to_publish
    with session_scope(settings) as session:
        claim_run(c, worker="gone:1", lease_seconds=60, max_attempts=3, session=session)
        session.execute(update(Run).where(Run.id == c)
                        .values(heartbeat_at=utcnow() - timedelta(seconds=600)))
    with session_scope(settings) as session:
        orphans = find_orphans(session=session, grace=0, lease_seconds=60, in_queue={a},
                               now=utcnow() + timedelta(seconds=1))
        assert (orphans.queued, orphans.expired) == ([b], [c])
        # Within the grace period nothing is touched: the submitter may still be publishing.
        young = find_orphans(session=session, grace=3600, lease_seconds=60, in_queue=set())
        assert young.all == []
        session.get_one(Sweep, submission.sweep_id).status = SweepStatus.PAUSED
    with session_scope(settings) as session:
        assert find_orphans(session=session, grace=0, lease_seconds=60, in_queue=set(),
                            now=utcnow() + timedelta(seconds=1)).all == []


def test_reconcile_republishes_what_the_folder_queue_lost(settings, tiny_mixes):
    submission = new_sweep(settings, tiny_mixes)
    with session_scope(settings) as session:
        publish(message_labels(submission.to_publish, session=session), settings=settings)
    assert queued_run_ids(settings) == set(submission.to_publish)
    assert reconcile(settings, grace=0).all == []  # everything has its message
    for message in (settings.broker_dir / "queue").glob("*.msg"):
        message.unlink()  # the broker loses its data
    assert queued_run_ids(settings) == set()
    time.sleep(0.01)
    assert sorted(reconcile(settings, grace=0).queued) == sorted(submission.to_publish)
    assert queued_run_ids(settings) == set(submission.to_publish)


@pytest.mark.redis
def test_reconcile_after_redis_flush(settings, tiny_mixes, redis_url):
    import redis

    settings = settings.model_copy(update={"broker_url": redis_url})
    submission = new_sweep(settings, tiny_mixes)
    with session_scope(settings) as session:
        messages = message_labels(submission.to_publish, session=session)
    publish(messages, settings=settings)
    assert queued_run_ids(settings) == set(submission.to_publish)
    redis.Redis.from_url(redis_url).flushdb()
    assert queued_run_ids(settings) == set()
    time.sleep(0.01)
    assert sorted(reconcile(settings, grace=0).all) == sorted(submission.to_publish)
    assert redis.Redis.from_url(redis_url).llen("train") == 3
