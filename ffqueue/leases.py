"""The database side of running a run: leases, heartbeats, epochs and the final write.

Exactly-once is a property of these writes, not of the queue:
- a run is claimed by one conditional UPDATE, so two deliveries cannot both win;
- a lease is kept alive by heartbeats, and a run whose heartbeat stopped may be taken over;
- epoch metrics are upserted on (run, epoch); the final result is written only while the
  run has not ended, so a late duplicate changes nothing.
Every function takes ``session=`` and runs inside the caller's transaction.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import CursorResult, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ffqueue.models import (
    Architecture,
    Dataset,
    EpochMetric,
    Run,
    RunStatus,
    Sweep,
    SweepStatus,
    utcnow,
)
from ffqueue.sweeps import TrainConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """What a claimed run needs to train, read in the claiming transaction."""

    run_id: int
    sweep_id: int
    architecture_id: int
    spec: list[dict[str, Any]]
    mixes_dir: str
    mix_index: int
    content_hash: str
    seed: int
    config: TrainConfig
    attempt: int
    epochs_done: int = 0  # recorded by earlier attempts


def worker_name() -> str:
    """``host:pid``: the lease holder's name, and how a dead local holder is recognised."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _rowcount(result: Any) -> int:
    return int(result.rowcount) if isinstance(result, CursorResult) else 0


def _claimable(lease_seconds: int) -> Any:
    stale = utcnow() - timedelta(seconds=lease_seconds)
    return or_(Run.status == RunStatus.QUEUED,
               (Run.status == RunStatus.RUNNING) & (Run.heartbeat_at < stale))


def claim_run(run_id: int, *, worker: str, lease_seconds: int, max_attempts: int,
              session: Session) -> Job | None:
    """Take the lease on a run, or return None if it is not ours to train.

    Claimable: queued, or running with a heartbeat older than ``lease_seconds`` (its
    worker died), in an active sweep. A run that has used up ``max_attempts`` is marked
    failed instead: the broker does not count redeliveries, so the database does.
    """
    now = utcnow()
    active = select(Sweep.id).where(Sweep.status == SweepStatus.ACTIVE)
    base = (update(Run).where(Run.id == run_id, Run.sweep_id.in_(active),
                              _claimable(lease_seconds))
            .execution_options(synchronize_session=False))
    claimed = session.execute(
        base.where(Run.attempts < max_attempts)
        .values(status=RunStatus.RUNNING, worker=worker, host=socket.gethostname(),
                attempts=Run.attempts + 1, started_at=now, heartbeat_at=now, finished_at=None)
    )
    if _rowcount(claimed) != 1:
        gave_up = session.execute(
            base.where(Run.attempts >= max_attempts)
            .values(status=RunStatus.FAILED, finished_at=now, worker=None,
                    error=f"gave up after {max_attempts} attempts (last worker died or "
                          f"the run kept failing)")
        )
        if _rowcount(gave_up):
            log.warning("run %s failed: no attempts left", run_id)
        return None
    # One query for everything the job needs: the claim sits on every run's path.
    row = session.execute(
        select(Run.sweep_id, Run.architecture_id, Architecture.spec, Sweep.mixes_dir,
               Dataset.mix_index, Dataset.content_hash, Run.seed, Sweep.config, Run.attempts,
               Run.epochs_done)
        .join(Sweep, Run.sweep_id == Sweep.id)
        .join(Architecture, Run.architecture_id == Architecture.id)
        .join(Dataset, Run.dataset_id == Dataset.id)
        .where(Run.id == run_id)
    ).one()
    return Job(run_id=run_id, sweep_id=row.sweep_id, architecture_id=row.architecture_id,
               spec=row.spec, mixes_dir=row.mixes_dir, mix_index=row.mix_index,
               content_hash=row.content_hash, seed=row.seed,
               config=TrainConfig.from_dict(row.config), attempt=row.attempts,
               epochs_done=row.epochs_done)


def discard_epochs_after(run_id: int, epoch: int, *, session: Session) -> None:
    """Forget epochs a crashed attempt recorded beyond its last checkpoint."""
    session.execute(delete(EpochMetric).where(EpochMetric.run_id == run_id,
                                              EpochMetric.epoch > epoch))
    session.execute(update(Run).where(Run.id == run_id).values(epochs_done=epoch))


def heartbeat(run_id: int, worker: str, *, session: Session) -> str:
    """Refresh the lease: ``ok``, ``lost`` (someone else holds it now) or ``cancelled``."""
    renewed = session.execute(
        update(Run).where(Run.id == run_id, Run.worker == worker,
                          Run.status == RunStatus.RUNNING)
        .values(heartbeat_at=utcnow()).execution_options(synchronize_session=False)
    )
    if _rowcount(renewed) != 1:
        return "lost"
    status = session.scalar(select(Sweep.status).join(Run, Run.sweep_id == Sweep.id)
                            .where(Run.id == run_id))
    return "cancelled" if status == SweepStatus.CANCELLED else "ok"


def _upsert_epochs(rows: list[dict[str, Any]], *, session: Session) -> None:
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(EpochMetric)
    columns = ("train_loss", "val_accuracy", "test_accuracy", "seconds")
    # Rows go as parameters (executemany), not as VALUES: the statement is then the same
    # for every call and SQLAlchemy compiles it once.
    session.execute(statement.on_conflict_do_update(
        index_elements=["run_id", "epoch"],
        set_={c: getattr(statement.excluded, c) for c in columns},
    ), rows)


def epoch_row(run_id: int, metrics: Any) -> dict[str, Any]:
    return {"run_id": run_id, "epoch": metrics.epoch, "train_loss": metrics.train_loss,
            "val_accuracy": metrics.val_accuracy, "test_accuracy": metrics.test_accuracy,
            "seconds": metrics.seconds}


def record_epochs(run_id: int, worker: str, epochs: Sequence[Any], *, session: Session) -> bool:
    """Store epochs (upsert) and refresh the heartbeat, if we still hold the lease."""
    if not epochs:
        return True
    renewed = session.execute(
        update(Run).where(Run.id == run_id, Run.worker == worker,
                          Run.status == RunStatus.RUNNING)
        .values(heartbeat_at=utcnow(), epochs_done=max(m.epoch for m in epochs))
        .execution_options(synchronize_session=False)
    )
    if _rowcount(renewed) != 1:
        return False
    _upsert_epochs([epoch_row(run_id, m) for m in epochs], session=session)
    return True


def store_result(run_id: int, result: dict[str, Any], *, session: Session) -> bool:
    """Write a finished run in one transaction: all its epochs, then its final metrics.

    Written only while the run has not ended, so the first finished copy wins and any
    later one (a duplicate delivery, a run taken over) changes nothing. True if written.
    """
    epochs = sorted(result["epochs"], key=lambda e: e["epoch"])
    final = epochs[-1] if epochs else {}
    # A resumed run may carry only the epochs after its checkpoint: the earlier ones
    # are already stored, so the last epoch's number, not the count, is the total.
    last = int(final.get("epoch", 0))
    written = session.execute(
        update(Run)
        .where(Run.id == run_id, Run.status.in_([RunStatus.RUNNING, RunStatus.QUEUED]))
        .values(status=RunStatus.DONE, finished_at=utcnow(), heartbeat_at=utcnow(),
                worker=None, error=None, device=result["device"],
                torch_version=result["torch_version"], epochs_done=last,
                train_loss=final.get("train_loss"), val_accuracy=final.get("val_accuracy"),
                test_accuracy=final.get("test_accuracy"), train_seconds=result["seconds"],
                confusion=result["confusion"])
        .execution_options(synchronize_session=False)
    )
    if _rowcount(written) != 1:
        return False
    session.execute(delete(EpochMetric).where(EpochMetric.run_id == run_id,
                                              EpochMetric.epoch > last))
    _upsert_epochs([{"run_id": run_id, **e} for e in epochs], session=session)
    return True


def end_run(run_id: int, worker: str, status: RunStatus, error: str | None, *,
            session: Session) -> bool:
    """Set a run we hold to ``status`` (failed, cancelled or back to queued)."""
    ended = session.execute(
        update(Run).where(Run.id == run_id, Run.worker == worker,
                          Run.status == RunStatus.RUNNING)
        .values(status=status, error=error[:2000] if error else None, worker=None,
                finished_at=utcnow() if status in RunStatus.ended() else None)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(ended) == 1


def attempts_left(run_id: int, max_attempts: int, *, session: Session) -> bool:
    return (session.scalar(select(Run.attempts).where(Run.id == run_id)) or 0) < max_attempts


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
