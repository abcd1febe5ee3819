"""CLI commands that steer sweeps already submitted: pause, resume, cancel, retry, reconcile."""

from __future__ import annotations

from typing import Any

import click

from ffqueue.cli_common import err
from ffqueue.settings import get_settings


def _publish(run_ids: list[int], settings: Any) -> int:
    from ffqueue.db import session_scope
    from ffqueue.scheduler import message_labels, publish

    with session_scope(settings) as session:
        messages = message_labels(run_ids, session=session)
    return publish(messages, settings=settings)


def _steer(sweep_ref: str, action: str) -> None:
    from ffqueue import control
    from ffqueue.db import session_scope
    from ffqueue.results import resolve_sweep

    settings = get_settings()
    to_publish: list[int] = []
    with session_scope(settings) as session:
        sweep = resolve_sweep(sweep_ref, session=session)
        if action == "pause":
            control.pause(sweep, session=session)
            message = "paused: running runs finish, queued runs wait"
        elif action == "resume":
            to_publish = control.resume(sweep, session=session)
            message = f"resumed: {len(to_publish)} queued runs published"
        elif action == "cancel":
            cancelled = control.cancel(sweep, session=session)
            message = f"cancelled: {cancelled} queued runs cancelled, running runs stop soon"
        else:
            to_publish = control.retry_failed(sweep, session=session)
            message = f"{len(to_publish)} failed runs queued again"
        name, sweep_id = sweep.name, sweep.id
    _publish(to_publish, settings)
    err.print(f"sweep {name!r} (id {sweep_id}) {message}")


@click.command("pause")
@click.argument("sweep_ref", metavar="SWEEP")
def sweep_pause(sweep_ref: str) -> None:
    """Stop starting new runs of SWEEP (running runs finish)."""
    _steer(sweep_ref, "pause")


@click.command("resume")
@click.argument("sweep_ref", metavar="SWEEP")
def sweep_resume(sweep_ref: str) -> None:
    """Start runs of a paused SWEEP again."""
    _steer(sweep_ref, "resume")


@click.command("cancel")
@click.argument("sweep_ref", metavar="SWEEP")
def sweep_cancel(sweep_ref: str) -> None:
    """Cancel SWEEP: queued runs end now, running runs at their next heartbeat."""
    _steer(sweep_ref, "cancel")


@click.command("retry-failed")
@click.argument("sweep_ref", metavar="SWEEP")
def sweep_retry_failed(sweep_ref: str) -> None:
    """Queue the failed runs of SWEEP again, with fresh attempts."""
    _steer(sweep_ref, "retry")


@click.command()
@click.option("--grace", type=click.FloatRange(min=0), default=None,
              help="Seconds a run may go unseen before it is queued again "
                   "[FFQ_RECONCILE_GRACE, 60].")
def reconcile(grace: float | None) -> None:
    """Queue again the runs that the broker lost or whose worker died."""
    from ffqueue.reconciler import reconcile as reconcile_runs

    settings = get_settings()
    orphans = reconcile_runs(settings, grace=settings.reconcile_grace if grace is None else grace)
    err.print(f"queued again: {len(orphans.queued)} runs without a message, "
              f"{len(orphans.expired)} runs with an expired lease")
    click.echo(len(orphans.all))


CONTROL_COMMANDS = (sweep_pause, sweep_resume, sweep_cancel, sweep_retry_failed)
