"""Celery tasks: thin adapters from a message to a plain function.

A message carries ids (and readable labels for Flower), never data: the worker reads
everything else from the database.
"""

from __future__ import annotations

import logging
from typing import Any

from ffqueue.celery_app import app
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

    outcome = execute_run(run_id, worker=f"{self.request.hostname}:{_pid()}")
    return outcome.__dict__


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


@app.task(name="ffqueue.reconcile", autoretry_for=(ServiceUnavailable,), retry_backoff=True)
def reconcile(grace: float | None = None) -> list[int]:
    """Beat's periodic task: publish again the runs that the queue has lost."""
    from ffqueue.reconciler import reconcile as reconcile_runs
    from ffqueue.settings import get_settings

    settings = get_settings()
    grace = settings.reconcile_grace if grace is None else grace
    return reconcile_runs(settings, grace=grace).all


def _pid() -> int:
    import os

    return os.getpid()
