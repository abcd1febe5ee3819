"""Execute one run: claim it, train it while keeping the lease alive, store the result.

This is what the ``train_run`` task calls; it needs no Celery. Every state change is
its own short transaction (see ``leases.py``), so a crash at any point leaves the
database consistent: the run is either still claimable or done. A trained result is
written to disk before the database, so a database outage never loses training.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ffqueue.db import session_scope
from ffqueue.errors import DataError, RunRetry, ServiceUnavailable, SpecError, TrainingError
from ffqueue.leases import (
    Job,
    attempts_left,
    claim_run,
    discard_epochs_after,
    end_run,
    heartbeat,
    record_epochs,
    requeue_dead_local_runs,
    store_result,
    worker_name,
)
from ffqueue.models import RunStatus
from ffqueue.settings import Settings, get_settings

log = logging.getLogger(__name__)

PERMANENT_ERRORS = (DataError, SpecError, TrainingError)  # retrying cannot fix these
Progress = Callable[[int, int], None]  # (epochs done, epochs in all)

__all__ = ["Job", "Outcome", "claim_run", "execute_run", "requeue_dead_local_runs",
           "weights_path", "worker_name"]


class LeaseLost(Exception):
    """Raised inside training when the lease was taken over or the sweep cancelled."""

    def __init__(self, state: str) -> None:
        super().__init__(state)
        self.state = state


@dataclass(frozen=True)
class Outcome:
    run_id: int
    status: str  # done | failed | queued | cancelled | skipped
    test_accuracy: float | None = None
    error: str | None = None


def run_dir(settings: Settings, run_id: int) -> Path:
    return settings.effective_artifact_dir / "runs" / str(run_id)


def weights_path(settings: Settings, run_id: int) -> Path:
    return run_dir(settings, run_id) / "final.pt"


def checkpoint_path(settings: Settings, run_id: int) -> Path:
    return run_dir(settings, run_id) / "checkpoint.pt"


def pending_path(settings: Settings, run_id: int) -> Path:
    """A trained result waiting to be written to the database."""
    return run_dir(settings, run_id) / "result.json"


class Heartbeat:
    """Refreshes a run's lease from a background thread while it trains."""

    def __init__(self, run_id: int, worker: str, settings: Settings) -> None:
        self.run_id, self.worker, self.settings = run_id, worker, settings
        self.state = "ok"  # ok | lost | cancelled
        self._stop = threading.Event()
        self._interval = max(settings.lease_seconds / 4, 0.2)
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{run_id}",
                                        daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                with session_scope(self.settings) as session:
                    self.state = heartbeat(self.run_id, self.worker, session=session)
            except ServiceUnavailable as exc:  # keep training; the next beat may get through
                log.warning("heartbeat of run %s failed: %s", self.run_id, exc)
            if self.state != "ok":
                return

    def check(self) -> None:
        if self.state != "ok":
            raise LeaseLost(self.state)


class EpochLog:
    """A run's epoch metrics on their way to the database.

    The table is for watching runs train; the final write stores every epoch anyway.
    So epochs are written together at most every ``FFQ_CHECKPOINT_SECONDS`` (as often
    as checkpoints), and the last epoch is left to the final write: epochs of
    milliseconds would otherwise cost a transaction each.
    """

    def __init__(self, job: Job, worker: str, settings: Settings) -> None:
        self.job, self.worker, self.settings = job, worker, settings
        self.pending: list[Any] = []
        self._written = time.monotonic()

    def add(self, metrics: Any) -> None:
        self.pending.append(metrics)
        if metrics.epoch >= self.job.config.epochs:
            return
        if time.monotonic() - self._written < self.settings.checkpoint_seconds:
            return
        try:
            with session_scope(self.settings) as session:
                record_epochs(self.job.run_id, self.worker, self.pending, session=session)
        except ServiceUnavailable as exc:  # kept for the next write or the final one
            log.warning("run %s: epochs not recorded yet: %s", self.job.run_id, exc)
            return
        self.pending.clear()
        self._written = time.monotonic()


def execute_run(run_id: int, *, settings: Settings | None = None, worker: str | None = None,
                progress: Progress | None = None) -> Outcome:
    """Claim, train and store one run. Torch is imported only when training.

    ``progress`` is called after every epoch (the Celery task reports it to Flower).
    Raises ServiceUnavailable when the database is down (the task retries later) and
    RunRetry when training failed in a way that may pass.
    """
    settings = settings or get_settings()
    worker = worker or worker_name()
    if pending_path(settings, run_id).exists():
        return _store_pending(run_id, settings)
    with session_scope(settings) as session:
        job = claim_run(run_id, worker=worker, lease_seconds=settings.lease_seconds,
                        max_attempts=settings.max_attempts, session=session)
    if job is None:
        log.info("run %s is not claimable (ended, running elsewhere or paused)", run_id)
        return Outcome(run_id, "skipped")
    from ffqueue.fusion import execute_fused  # here: fusion imports this module

    fused = execute_fused(job, settings=settings, worker=worker, progress=progress)
    if fused is not None:  # trained with its queued siblings (FFQ_FUSE)
        return fused
    resume = _resume_epoch(settings, run_id)
    if job.epochs_done > resume:  # a crashed attempt recorded epochs its checkpoint lacks
        with session_scope(settings) as session:
            discard_epochs_after(run_id, resume, session=session)
    try:
        with Heartbeat(run_id, worker, settings) as beat:
            result = _train(job, settings, worker, progress, beat)
    except LeaseLost as exc:
        if exc.state == "cancelled":
            return _end(run_id, worker, RunStatus.CANCELLED, "sweep cancelled", settings)
        log.warning("run %s: lease lost to another worker; dropping this copy", run_id)
        return Outcome(run_id, "skipped")
    except PERMANENT_ERRORS as exc:
        return _end(run_id, worker, RunStatus.FAILED, str(exc), settings)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        with session_scope(settings) as session:
            retry = attempts_left(run_id, settings.max_attempts, session=session)
        outcome = _end(run_id, worker, RunStatus.QUEUED if retry else RunStatus.FAILED,
                       error, settings)
        if retry:
            raise RunRetry(f"run {run_id} queued again after {error}") from exc
        return outcome
    return keep_result(settings, run_id, result)


def _end(run_id: int, worker: str, status: RunStatus, error: str, settings: Settings) -> Outcome:
    log.warning("run %s %s: %s", run_id, status.value, error)
    with session_scope(settings) as session:
        end_run(run_id, worker, status, error, session=session)
    return Outcome(run_id, status.value, error=error)


def keep_result(settings: Settings, run_id: int, result: dict[str, Any]) -> Outcome:
    """Put a trained result on disk first, then into the database."""
    path = pending_path(settings, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(path)
    return _store_pending(run_id, settings, result)


def _store_pending(run_id: int, settings: Settings,
                   result: dict[str, Any] | None = None) -> Outcome:
    """Write a result kept on disk; remove it once the database has it (or refused it)."""
    path = pending_path(settings, run_id)
    if result is None:  # left by an attempt that could not reach the database
        result = json.loads(path.read_text())
    with session_scope(settings) as session:
        written = store_result(run_id, result, session=session)
    path.unlink(missing_ok=True)
    if not written:
        log.info("run %s had already ended; its duplicate result is dropped", run_id)
        return Outcome(run_id, "skipped")
    checkpoint_path(settings, run_id).unlink(missing_ok=True)  # finished: keep final weights
    final = result["epochs"][-1] if result["epochs"] else {}
    return Outcome(run_id, "done", final.get("test_accuracy"))


def _resume_epoch(settings: Settings, run_id: int) -> int:
    """The epoch the run's checkpoint holds (0 without one)."""
    path = checkpoint_path(settings, run_id)
    if not path.exists():
        return 0
    from worker.checkpoint import checkpoint_epoch

    return int(checkpoint_epoch(path))


@lru_cache(maxsize=11)  # runs arrive architecture by architecture: keep all 11 mixes
def _cached_mix(mixes_dir: str, index: int, content_hash: str) -> Any:
    """Mixes stay in memory between runs: a worker trains many runs on the same 11 mixes."""
    from ffqueue.data.mixes import load_mix

    return load_mix(Path(mixes_dir), index, expected_hash=content_hash)


def _train(job: Job, settings: Settings, worker: str, progress: Progress | None,
           beat: Heartbeat) -> dict[str, Any]:
    import torch

    from worker.checkpoint import run_key
    from worker.device import configure, describe, pick_device, resolve_precision, set_threads
    from worker.train import train

    set_threads(settings.torch_threads)
    device = pick_device(settings.device)
    configure(device)
    mix = _cached_mix(job.mixes_dir, job.mix_index, job.content_hash)

    epochs = EpochLog(job, worker, settings)

    def on_epoch(metrics: Any) -> None:
        epochs.add(metrics)
        beat.check()
        if progress is not None:
            progress(metrics.epoch, job.config.epochs)

    result = train(job.spec, mix, job.config, seed=job.seed, device=device,
                   precision=resolve_precision(settings.precision, device), on_epoch=on_epoch,
                   checkpoint=checkpoint_path(settings, job.run_id),
                   checkpoint_seconds=settings.checkpoint_seconds,
                   key=run_key(job.spec, job.seed, job.config.as_dict(), job.content_hash))
    return result_record(settings, job, result, describe(device), torch.__version__)


def result_record(settings: Settings, job: Job, result: Any, device: str,
                  torch_version: str) -> dict[str, Any]:
    """Save a trained run's final weights; the JSON record of its result."""
    from worker.train import save_weights

    if result.state_dict is not None and job.config.epochs > 0:  # untrained weights: not worth it
        save_weights(result.state_dict, weights_path(settings, job.run_id))
    return {"epochs": [asdict(e) for e in result.epochs], "confusion": result.confusion,
            "seconds": result.seconds, "device": device, "torch_version": torch_version}
