"""Fused jobs: a worker that claimed one run also claims its queued siblings and trains
them together (worker/fused.py), then stores one result per run.

Siblings are the runs of the same sweep and architecture (so the same TrainConfig):
the 11 mixes and every seed. Each is claimed with the same conditional UPDATE as a
single run (``leases.claim_run``), so the siblings' own messages later find their runs
taken and exit as "skipped". Each member then goes through the single-run path's
bookkeeping: heartbeats, epoch metrics and checkpoints (every ``FFQ_CHECKPOINT_SECONDS``),
the result written to disk and then to the database.

Fusion is used where it is faster: ``FFQ_FUSE=auto`` turns it on for CUDA devices
only (on a CPU, batched matmuls and grouped convolutions are no faster than one run
after another; docs/benchmarks.md has the figures), ``on`` everywhere, ``off`` never.
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from typing import Any

from sqlalchemy import select

from ffqueue.db import session_scope
from ffqueue.errors import DataError, RunRetry, SpecError
from ffqueue.leases import (
    Job,
    _claimable,
    attempts_left,
    claim_run,
    discard_epochs_after,
)
from ffqueue.models import Run, RunStatus
from ffqueue.runner import (
    EpochLog,
    Heartbeat,
    LeaseLost,
    Outcome,
    Progress,
    _cached_mix,
    _end,
    _resume_epoch,
    checkpoint_path,
    keep_result,
    pending_path,
    result_record,
)
from ffqueue.settings import Settings

log = logging.getLogger(__name__)


def fusion_enabled(settings: Settings) -> bool:
    """Whether this worker fuses: ``FFQ_FUSE`` on/off, or auto = on when it trains on CUDA."""
    if settings.fuse != "auto":
        return settings.fuse == "on"
    if settings.device != "auto":
        return settings.device.startswith("cuda")
    import torch

    return bool(torch.cuda.is_available())


def claim_siblings(job: Job, *, worker: str, settings: Settings, limit: int) -> list[Job]:
    """Claim up to ``limit`` claimable runs of the job's sweep and architecture."""
    if limit < 1:
        return []
    with session_scope(settings) as session:
        candidates = session.scalars(
            select(Run.id).where(Run.sweep_id == job.sweep_id,
                                 Run.architecture_id == job.architecture_id,
                                 Run.id != job.run_id, _claimable(settings.lease_seconds))
            .order_by(Run.id).limit(limit)).all()
    siblings = []
    for run_id in candidates:
        if pending_path(settings, run_id).exists():
            continue  # trained already, waiting to be stored: its own message does that
        with session_scope(settings) as session:
            sibling = claim_run(run_id, worker=worker, lease_seconds=settings.lease_seconds,
                                max_attempts=settings.max_attempts, session=session)
        if sibling is not None and sibling.config == job.config:
            siblings.append(sibling)
        elif sibling is not None:  # pragma: no cover - one sweep has one config
            _end(run_id, worker, RunStatus.QUEUED, "not fusable", settings)
    return siblings


def execute_fused(job: Job, *, settings: Settings, worker: str,
                  progress: Progress | None = None) -> Outcome | None:
    """Train ``job`` fused with its claimed siblings; its Outcome, or None to train it
    alone (fusion off, or no sibling to claim)."""
    if not fusion_enabled(settings):
        return None
    siblings = claim_siblings(job, worker=worker, settings=settings,
                              limit=settings.fuse_max - 1)
    if not siblings:
        return None
    jobs = [job, *siblings]
    log.info("run %s: training fused with runs %s", job.run_id, [s.run_id for s in siblings])
    for member in jobs:
        with session_scope(settings) as session:
            discard_epochs_after(member.run_id, _resume_epoch(settings, member.run_id),
                                 session=session)
    loaded: list[tuple[Job, Any]] = []
    outcomes: dict[int, Outcome] = {}
    for member in jobs:
        try:
            loaded.append((member, _cached_mix(member.mixes_dir, member.mix_index,
                                               member.content_hash)))
        except DataError as exc:  # this mix is broken; the others still train
            outcomes[member.run_id] = _end(member.run_id, worker, RunStatus.FAILED, str(exc),
                                           settings)
    if loaded:
        outcomes.update(_train_and_store(loaded, settings, worker, progress,
                                         primary=job.run_id))
    return outcomes[job.run_id]


def _train_and_store(loaded: list[tuple[Job, Any]], settings: Settings, worker: str,
                     progress: Progress | None, *, primary: int) -> dict[int, Outcome]:
    import torch

    from worker.checkpoint import run_key
    from worker.device import configure, describe, pick_device, resolve_precision, set_threads
    from worker.fused import Member, train_fused

    set_threads(settings.torch_threads)
    device = pick_device(settings.device)
    configure(device)
    jobs = [job for job, _ in loaded]
    members = [Member(seed=job.seed, data=mix,
                      checkpoint=checkpoint_path(settings, job.run_id),
                      key=run_key(job.spec, job.seed, job.config.as_dict(), job.content_hash))
               for job, mix in loaded]
    outcomes: dict[int, Outcome] = {}
    with ExitStack() as stack:
        beats = [stack.enter_context(Heartbeat(job.run_id, worker, settings)) for job in jobs]
        logs = [EpochLog(job, worker, settings) for job in jobs]

        def on_epoch(i: int, metrics: Any) -> None:
            if beats[i].state == "cancelled":
                raise LeaseLost("cancelled")  # the whole sweep: stop every member
            if beats[i].state != "ok":
                return  # taken over elsewhere: keep training the others, store nothing
            logs[i].add(metrics)
            if progress is not None and jobs[i].run_id == primary:
                progress(metrics.epoch, jobs[i].config.epochs)

        try:
            results = train_fused(jobs[0].spec, members, jobs[0].config, device=device,
                                  precision=resolve_precision(settings.precision, device),
                                  on_epoch=on_epoch,
                                  checkpoint_seconds=settings.checkpoint_seconds)
        except LeaseLost:
            return {job.run_id: _end(job.run_id, worker, RunStatus.CANCELLED,
                                     "sweep cancelled", settings) for job in jobs}
        except SpecError as exc:
            return {job.run_id: _end(job.run_id, worker, RunStatus.FAILED, str(exc), settings)
                    for job in jobs}
        except Exception as exc:
            _requeue_all(jobs, worker, f"{type(exc).__name__}: {exc}", settings)
            raise RunRetry(f"fused runs {[j.run_id for j in jobs]} queued again after "
                           f"{type(exc).__name__}: {exc}") from exc
        lost = {job.run_id for job, beat in zip(jobs, beats, strict=True) if beat.state != "ok"}
    for job, result in zip(jobs, results, strict=True):
        if job.run_id in lost:
            outcomes[job.run_id] = Outcome(job.run_id, "skipped")
        elif isinstance(result, Exception):
            outcomes[job.run_id] = _end(job.run_id, worker, RunStatus.FAILED, str(result),
                                        settings)
        else:
            record = result_record(settings, job, result, describe(device), torch.__version__)
            outcomes[job.run_id] = keep_result(settings, job.run_id, record)
    return outcomes


def _requeue_all(jobs: list[Job], worker: str, error: str, settings: Settings) -> None:
    """A failure that may pass: each member back to the queue while it has attempts left
    (the reconciler publishes queued runs whose messages were already used up)."""
    for job in jobs:
        with session_scope(settings) as session:
            retry = attempts_left(job.run_id, settings.max_attempts, session=session)
        _end(job.run_id, worker, RunStatus.QUEUED if retry else RunStatus.FAILED, error,
             settings)
