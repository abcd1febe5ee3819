"""Execute one run: claim it in the database, train, store the result.

This is what the ``train_run`` task calls; it needs no Celery. Every state change is
its own short transaction, so a crash at any point leaves the database consistent:
the run is either still claimable or done.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import CursorResult, delete, or_, select, update
from sqlalchemy.orm import Session

from ffqueue.db import session_scope
from ffqueue.errors import DataError, SpecError, TrainingError
from ffqueue.models import EpochMetric, Run, RunStatus, Sweep, SweepStatus, utcnow
from ffqueue.settings import Settings, get_settings
from ffqueue.sweeps import TrainConfig

log = logging.getLogger(__name__)

PERMANENT_ERRORS = (DataError, SpecError, TrainingError)  # retrying cannot fix these


@dataclass(frozen=True)
class Job:
    """What a claimed run needs to train, read in the claiming transaction."""

    run_id: int
    spec: list[dict[str, Any]]
    mixes_dir: str
    mix_index: int
    content_hash: str
    seed: int
    config: TrainConfig
    attempt: int


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def claim_run(run_id: int, *, worker: str, lease_seconds: int, session: Session) -> Job | None:
    """Take the lease on a run, or return None if it is not ours to train.

    One conditional UPDATE decides, so two workers racing for the same run cannot
    both win: it succeeds for a queued run, or a running run whose lease expired.
    """
    now = utcnow()
    stale = now - timedelta(seconds=lease_seconds)
    active_sweep = select(Sweep.id).where(Sweep.status == SweepStatus.ACTIVE)
    claimed: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(Run)
        .where(Run.id == run_id, Run.sweep_id.in_(active_sweep))
        .where(or_(Run.status == RunStatus.QUEUED,
                   (Run.status == RunStatus.RUNNING) & (Run.heartbeat_at < stale)))
        .values(status=RunStatus.RUNNING, worker=worker, host=socket.gethostname(),
                attempts=Run.attempts + 1, started_at=now, heartbeat_at=now, error=None)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:
        return None
    run = session.get_one(Run, run_id)
    session.refresh(run)
    # A fresh start: epochs from an earlier, crashed attempt are replaced.
    session.execute(delete(EpochMetric).where(EpochMetric.run_id == run_id))
    run.epochs_done = 0
    return Job(run_id=run.id, spec=run.architecture.spec, mixes_dir=run.sweep.mixes_dir,
               mix_index=run.dataset.mix_index, content_hash=run.dataset.content_hash,
               seed=run.seed, config=TrainConfig.from_dict(run.sweep.config),
               attempt=run.attempts)


def record_epoch(run_id: int, worker: str, metrics: Any, *, session: Session) -> None:
    """Store one epoch's metrics and refresh the lease's heartbeat."""
    session.add(EpochMetric(run_id=run_id, epoch=metrics.epoch, train_loss=metrics.train_loss,
                            val_accuracy=metrics.val_accuracy,
                            test_accuracy=metrics.test_accuracy, seconds=metrics.seconds))
    session.execute(update(Run).where(Run.id == run_id, Run.worker == worker)
                    .values(heartbeat_at=utcnow(), epochs_done=metrics.epoch))


def finish_run(run_id: int, worker: str, result: Any, device: str, torch_version: str, *,
               session: Session) -> bool:
    """Write the final result if this worker still holds the lease; True if written."""
    final = result.final
    written: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(Run)
        .where(Run.id == run_id, Run.worker == worker, Run.status == RunStatus.RUNNING)
        .values(status=RunStatus.DONE, finished_at=utcnow(), heartbeat_at=utcnow(),
                device=device, torch_version=torch_version,
                epochs_done=len(result.epochs),
                train_loss=final.train_loss if final else None,
                val_accuracy=final.val_accuracy if final else None,
                test_accuracy=final.test_accuracy if final else None,
                train_seconds=result.seconds, confusion=result.confusion)
        .execution_options(synchronize_session=False)
    )
    return bool(written.rowcount == 1)


def fail_run(run_id: int, worker: str, error: str, *, retry: bool, max_attempts: int,
             session: Session) -> RunStatus:
    """Record an error: back to queued while attempts remain and ``retry``, else failed."""
    run = session.get_one(Run, run_id)
    if run.worker != worker or run.status != RunStatus.RUNNING:
        return run.status
    run.error = error[:2000]
    run.finished_at = utcnow()
    run.status = (RunStatus.QUEUED if retry and run.attempts < max_attempts
                  else RunStatus.FAILED)
    return run.status


@dataclass(frozen=True)
class Outcome:
    run_id: int
    status: str  # done | failed | queued | skipped
    test_accuracy: float | None = None
    error: str | None = None


Progress = Callable[[int, int], None]  # (epochs done, epochs in all)


def execute_run(run_id: int, *, settings: Settings | None = None, worker: str | None = None,
                progress: Progress | None = None) -> Outcome:
    """Claim, train and store one run. Torch is imported only here.

    ``progress`` is called after every epoch (the Celery task reports it to Flower).
    """
    settings = settings or get_settings()
    worker = worker or worker_name()
    with session_scope(settings) as session:
        job = claim_run(run_id, worker=worker, lease_seconds=settings.lease_seconds,
                        session=session)
    if job is None:
        log.info("run %s is not claimable (done, running elsewhere or paused); skipping", run_id)
        return Outcome(run_id, "skipped")
    try:
        result, device, torch_version = _train(job, settings, worker, progress)
    except PERMANENT_ERRORS as exc:
        return _failed(run_id, worker, str(exc), settings, retry=False)
    except Exception as exc:
        _failed(run_id, worker, f"{type(exc).__name__}: {exc}", settings, retry=True)
        raise
    with session_scope(settings) as session:
        finish_run(run_id, worker, result, device, torch_version, session=session)
    final = result.final
    return Outcome(run_id, "done", final.test_accuracy if final else None)


def _failed(run_id: int, worker: str, error: str, settings: Settings, *, retry: bool) -> Outcome:
    log.warning("run %s failed: %s", run_id, error)
    with session_scope(settings) as session:
        status = fail_run(run_id, worker, error, retry=retry,
                          max_attempts=settings.max_attempts, session=session)
    return Outcome(run_id, status.value, error=error)


def weights_path(settings: Settings, run_id: int) -> Path:
    return settings.effective_artifact_dir / "runs" / f"{run_id}" / "final.pt"


def _train(job: Job, settings: Settings, worker: str,
           progress: Progress | None) -> tuple[Any, str, str]:
    import torch

    from ffqueue.data.mixes import load_mix
    from worker.device import describe, pick_device, set_threads
    from worker.train import Split, save_weights, train

    set_threads(settings.torch_threads)
    device = pick_device(settings.device)
    mix = load_mix(Path(job.mixes_dir), job.mix_index, expected_hash=job.content_hash)

    def on_epoch(metrics: Any) -> None:
        with session_scope(settings) as session:
            record_epoch(job.run_id, worker, metrics, session=session)
        if progress is not None:
            progress(metrics.epoch, job.config.epochs)

    result = train(job.spec, Split.of(mix), job.config, seed=job.seed, device=device,
                   on_epoch=on_epoch)
    if result.state_dict is not None:
        save_weights(result.state_dict, weights_path(settings, job.run_id))
    return result, describe(device), torch.__version__


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def requeue_dead_local_runs(sweep_id: int, *, session: Session) -> list[int]:
    """Runs of this sweep leased by a process of this host that no longer exists.

    They are put back to queued and returned so the caller can publish them again:
    an interrupted ``ffqueue demo`` resumes at once instead of waiting for the lease
    to expire.
    """
    host = socket.gethostname()
    running = session.scalars(select(Run).where(Run.sweep_id == sweep_id,
                                                Run.status == RunStatus.RUNNING,
                                                Run.host == host)).all()
    requeued = []
    for run in running:
        pid = (run.worker or "").rsplit(":", 1)[-1]
        if pid.isdigit() and not _pid_alive(int(pid)):
            run.status, run.worker = RunStatus.QUEUED, None
            requeued.append(run.id)
    return requeued
