"""Sweep control: pause, resume, cancel, retry failed runs.

Pausing stops new claims (a message for a paused sweep's run is consumed and the run
stays queued); resuming publishes the queued runs again. Cancelling ends the queued
runs at once and the running ones at their next heartbeat.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ffqueue.errors import SweepError
from ffqueue.models import Run, RunStatus, Sweep, SweepStatus, utcnow


def _require(sweep: Sweep, allowed: tuple[SweepStatus, ...], action: str) -> None:
    if sweep.status not in allowed:
        raise SweepError(f"sweep {sweep.name!r} (id {sweep.id}) is {sweep.status.value}; "
                         f"cannot {action} it")


def _queued(sweep: Sweep, *, session: Session) -> list[int]:
    return list(session.scalars(select(Run.id).where(Run.sweep_id == sweep.id,
                                                     Run.status == RunStatus.QUEUED)).all())


def pause(sweep: Sweep, *, session: Session) -> None:
    _require(sweep, (SweepStatus.ACTIVE, SweepStatus.PAUSED), "pause")
    sweep.status = SweepStatus.PAUSED


def resume(sweep: Sweep, *, session: Session) -> list[int]:
    """Make the sweep active again; the queued run ids, which need new messages."""
    _require(sweep, (SweepStatus.ACTIVE, SweepStatus.PAUSED), "resume")
    sweep.status = SweepStatus.ACTIVE
    return _queued(sweep, session=session)


def cancel(sweep: Sweep, *, session: Session) -> int:
    """Cancel the sweep; returns how many queued runs were cancelled."""
    _require(sweep, (SweepStatus.ACTIVE, SweepStatus.PAUSED, SweepStatus.CANCELLED), "cancel")
    sweep.status = SweepStatus.CANCELLED
    result = session.execute(
        update(Run).where(Run.sweep_id == sweep.id, Run.status == RunStatus.QUEUED)
        .values(status=RunStatus.CANCELLED, finished_at=utcnow(), error="sweep cancelled")
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0))


def retry_failed(sweep: Sweep, *, session: Session) -> list[int]:
    """Queue the failed runs again with fresh attempts; their ids, to publish."""
    _require(sweep, (SweepStatus.ACTIVE, SweepStatus.PAUSED), "retry runs of")
    failed = list(session.scalars(select(Run.id).where(Run.sweep_id == sweep.id,
                                                       Run.status == RunStatus.FAILED)).all())
    if failed:
        session.execute(update(Run).where(Run.id.in_(failed))
                        .values(status=RunStatus.QUEUED, attempts=0, error=None, worker=None,
                                finished_at=None)
                        .execution_options(synchronize_session=False))
    return failed
