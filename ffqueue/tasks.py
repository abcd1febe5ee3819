"""Celery tasks: thin adapters from a message to a plain function.

A message carries ids (and readable labels for Flower), never data: the worker reads
everything else from the database.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from ffqueue.celery_app import WAKE_TASK, app
from ffqueue.errors import RunRetry, ServiceUnavailable

log = logging.getLogger(__name__)


@app.task(
    name="ffqueue.train_run",
    bind=True,
    # The database blinked, or training hit an error that may pass: try again later.
    autoretry_for=(ServiceUnavailable, RunRetry),
    retry_backoff=True,
    retry_backoff_max=300,
    max_retries=10,
)
def train_run(self: Any, run_id: int, **labels: Any) -> dict[str, Any]:
    """Train run ``run_id``; ``labels`` (sweep, architecture, mix, seed) are for people."""
    from ffqueue.runner import execute_run

    outcome = execute_run(run_id, worker=f"{self.request.hostname}:{os.getpid()}",
                          progress=progress_reporter(self))
    return outcome.__dict__


@app.task(name=WAKE_TASK)
def wake() -> None:
    """Do nothing: the message only wakes a worker that waits on the folder queue, so
    that it sees its stop flag now (``ffqueue.embedded``). Any worker may take it."""


@app.task(name="ffqueue.analyze", autoretry_for=(ServiceUnavailable,), retry_backoff=True)
def analyze(sweep_id: int) -> int:
    """Recompute the decay fits of one sweep; returns how many fits were stored."""
    from ffqueue.db import session_scope
    from ffqueue.results import analyze_sweep

    with session_scope() as session:
        return len(analyze_sweep(sweep_id, session=session))


@app.task(name="ffqueue.analyze_all", autoretry_for=(ServiceUnavailable,), retry_backoff=True)
def analyze_all() -> list[int]:
    """Beat's periodic task: analyse every sweep with results newer than its analysis."""
    from ffqueue.db import session_scope
    from ffqueue.results import analyze_stale_sweeps

    with session_scope() as session:
        return analyze_stale_sweeps(session=session)


PROGRESS = "PROGRESS"  # the custom state Flower shows while a run trains


def progress_event(epoch: int, epochs: int) -> dict[str, Any]:
    """The fields of a ``task-progress`` event for epoch ``epoch`` of ``epochs``.

    Flower keeps its task table from worker events, not from a result backend (there
    is none: the database holds results). An event type it does not know becomes the
    task's state (``task-progress`` → ``PROGRESS``) and its fields are merged into the
    task; ``result`` is one of the fields Flower's table and API show, so it carries
    the readable text until ``task-succeeded`` replaces it with the outcome.
    """
    return {"epoch": epoch, "epochs": epochs, "result": f"epoch {epoch} of {epochs}"}


def progress_reporter(task: Any) -> Callable[[int, int], None] | None:
    """A per-epoch callback that sends ``task-progress`` events, or None when the broker
    carries no events (the local folder queue). A lost event never fails a run."""
    if not task.app.conf.worker_send_task_events or not task.request.id:
        return None

    def report(epoch: int, epochs: int) -> None:
        try:
            task.send_event("task-progress", retry=False, **progress_event(epoch, epochs))
        except Exception as exc:  # monitoring only: training goes on without it
            log.debug("progress event for epoch %s not sent: %s", epoch, exc)

    return report


@app.task(name="ffqueue.reconcile", autoretry_for=(ServiceUnavailable,), retry_backoff=True)
def reconcile(grace: float | None = None) -> list[int]:
    """Beat's periodic task: publish again the runs that the queue has lost."""
    from ffqueue.reconciler import reconcile as reconcile_runs
    from ffqueue.settings import get_settings

    settings = get_settings()
    grace = settings.reconcile_grace if grace is None else grace
    return reconcile_runs(settings, grace=grace).all


@app.task(name="ffqueue.ae_loss")
def ae_loss(source_dir: str, category: str, sample: int = 1000, seed: int = 0,
            hidden: int = 64, epochs: int = 10) -> dict[str, Any]:
    """The held-out autoencoder loss of one class of ``source_dir`` (a convergence measure)."""
    from pathlib import Path

    from worker.autoencoder import AEConfig, category_ae_loss

    loss = category_ae_loss(Path(source_dir) / f"{category}.npy", sample=sample, seed=seed,
                            config=AEConfig(hidden=hidden, epochs=epochs))
    return {"category": category, "ae_loss": loss}
