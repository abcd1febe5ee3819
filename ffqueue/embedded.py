"""Run a Celery worker inside the current process, and wait for a sweep with a progress bar.

This is the embedded path: ``ffqueue demo`` and ``ffqueue sweep run`` publish their
runs to the configured broker and consume them here, through the same task code
that a separate ``ffqueue worker`` runs. On a CPU the worker has one pool process per
core, each with one torch thread: small nets do not parallelise inside an op, so
separate runs side by side use the cores better (docs/benchmarks.md). On a GPU it is
one process (solo pool) that feeds the device; CUDA is then never touched before a fork.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from celery.worker import WorkController
from celery.worker import state as worker_state
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ffqueue.celery_app import ANALYSIS_QUEUE, TRAIN_QUEUE, WAKE_TASK, app
from ffqueue.cli_common import progress_bar
from ffqueue.db import session_scope
from ffqueue.errors import ServiceUnavailable
from ffqueue.models import RunStatus, Sweep
from ffqueue.results import status_counts
from ffqueue.settings import (
    Settings,
    available_cores,
    get_settings,
    sharing_cores,
    use_settings,
)

log = logging.getLogger(__name__)


def embedded_processes(settings: Settings) -> int:
    """Pool processes for the embedded worker: one on a GPU; on a CPU one per core, or
    one per ``FFQ_TORCH_THREADS`` cores when that is set."""
    from worker.gpus import list_gpus  # nvidia-smi, not torch: nothing initialises CUDA here

    if settings.device.startswith("cuda") or (settings.device == "auto" and list_gpus()):
        return 1
    return max(1, available_cores() // (settings.torch_threads or 1))


@contextmanager
def embedded_worker(settings: Settings, *, processes: int | None = None,
                    shutdown_timeout: float = 600.0) -> Iterator[WorkController]:
    """A worker on a background thread, consuming the train and analysis queues with
    ``processes`` pool processes (default: ``embedded_processes``)."""
    import ffqueue.tasks  # noqa: F401  (registers the tasks with the app)
    from ffqueue.celery_app import celery_config

    processes = processes or embedded_processes(settings)
    app.conf.update(celery_config(settings))  # the worker consumes from *these* settings
    previous = get_settings()
    use_settings(sharing_cores(settings, processes))  # what the pool processes read
    ready = threading.Event()
    worker = WorkController(
        app=app, pool="prefork" if processes > 1 else "solo", concurrency=processes,
        queues=[TRAIN_QUEUE, ANALYSIS_QUEUE], loglevel="WARNING", without_heartbeat=True,
        without_mingle=True, without_gossip=True, hostname=f"embedded@{settings.home_dir.name}",
        ready_callback=lambda _consumer: ready.set(),
    )
    thread = threading.Thread(target=worker.start, name="ffqueue-worker", daemon=True)
    thread.start()
    try:
        # The pool forks its processes as the worker starts. Until then this thread must
        # not import anything: a process forked while another thread holds a module's
        # import lock deadlocks on that module.
        while not ready.wait(0.05) and thread.is_alive():
            pass
        if not ready.is_set():
            raise ServiceUnavailable("the embedded worker stopped as it started; "
                                     "its log above says why")
        yield worker
    finally:
        # Celery's own graceful stop: finish the tasks in hand, then leave the loop. A
        # consumer of the folder queue checks the flag between 2-second polls, and polls
        # once more after seeing it; a no-op message for each poll ends them at once.
        # (Redis wakes its consumer by itself: a message there would only be left over.)
        worker_state.should_stop = 0  # type: ignore[assignment]
        polled = settings.uses_filesystem_broker and thread.is_alive()
        for _ in range(2 if polled else 0):
            app.send_task(WAKE_TASK)
        thread.join(shutdown_timeout)
        worker_state.should_stop = None
        use_settings(previous)
        if thread.is_alive():  # pragma: no cover - only when a run outlives the timeout
            log.warning("the embedded worker did not stop within %.0f s", shutdown_timeout)


def wait_for_sweep(sweep_id: int, settings: Settings, *, console: Console | None = None,
                   poll: float = 0.5, timeout: float | None = None) -> dict[str, int]:
    """Show a progress bar until every run of the sweep has ended; the final counts."""
    console = console or Console(stderr=True)
    ended = [s.value for s in RunStatus.ended()]
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[detail]}"), TimeElapsedColumn(), TimeRemainingColumn())
    deadline = None if timeout is None else time.monotonic() + timeout
    with progress_bar(*columns, console=console) as progress:
        with session_scope(settings) as session:
            sweep = session.get_one(Sweep, sweep_id)
            name = sweep.name
        bar = progress.add_task(f"runs of {name}", total=None, detail="")
        while True:
            with session_scope(settings) as session:
                counts = status_counts(session.get_one(Sweep, sweep_id), session=session)
            total = sum(counts.values())
            finished = sum(counts[s] for s in ended)
            detail = f"running {counts['running']}  failed {counts['failed']}"
            progress.update(bar, total=total, completed=finished, detail=detail)
            if finished >= total:
                return counts
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"sweep {sweep_id} did not finish in {timeout} s")
            time.sleep(poll)
