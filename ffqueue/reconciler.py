"""Compare the database with the queue and publish again what the queue has lost.

Redis restarted without persistence, a ``FLUSHALL``, a worker killed with ``-9``, a
message lost in between: in each case the database still says which runs are not
finished. A run needs a new message when it is queued but no message for it is in the
broker, or when it is running but its lease has expired (its worker is gone). A
duplicate message is harmless: its run is claimed once, and the copy exits.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ffqueue.celery_app import TRAIN_QUEUE
from ffqueue.db import session_scope
from ffqueue.errors import ServiceUnavailable
from ffqueue.models import Run, RunStatus, Sweep, SweepStatus, utcnow
from ffqueue.settings import Settings, get_settings, mask_url

log = logging.getLogger(__name__)


def _run_id_of(payload: Any) -> int | None:
    """The ``run_id`` a kombu message payload (a dict, or a JSON text of one) names."""
    try:
        message = json.loads(payload) if isinstance(payload, (str, bytes)) else payload
        if isinstance(message, list):  # Redis "unacked": [message, exchange, routing key]
            message = message[0]
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        _args, kwargs, _embed = json.loads(body)
        return int(kwargs["run_id"])
    except (ValueError, KeyError, TypeError, IndexError):
        return None  # not one of our messages (or not JSON at all): ignore it


def queued_run_ids(settings: Settings) -> set[int] | None:
    """Run ids with a message in the broker (waiting or delivered but unacknowledged).

    None when the transport gives no way to look (AMQP): then only expired leases
    are acted on.
    """
    url = settings.effective_broker_url
    if url.startswith(("redis://", "rediss://")):
        import redis

        try:
            client = redis.Redis.from_url(url)
            payloads: Iterable[Any] = [*client.lrange(TRAIN_QUEUE, 0, -1),
                                       *client.hvals("unacked")]
        except redis.RedisError as exc:
            raise ServiceUnavailable(f"cannot reach the broker FFQ_BROKER_URL={mask_url(url)}: "
                                     f"{exc}") from None
    elif settings.uses_filesystem_broker:
        folder = settings.broker_dir / "queue"
        payloads = []
        for path in folder.glob(f"*.{TRAIN_QUEUE}.msg"):
            try:
                payloads.append(path.read_bytes())
            except OSError:  # taken by a worker meanwhile
                continue
    else:
        return None
    return {run_id for run_id in map(_run_id_of, payloads) if run_id is not None}


@dataclass(frozen=True)
class Orphans:
    queued: list[int]  # queued, older than the grace period, with no message
    expired: list[int]  # running, heartbeat older than lease + grace

    @property
    def all(self) -> list[int]:
        return sorted(set(self.queued) | set(self.expired))


def find_orphans(*, session: Session, grace: float, lease_seconds: float,
                 in_queue: set[int] | None, now: datetime | None = None) -> Orphans:
    """Runs of active sweeps that no live message or lease will ever finish."""
    now = now or utcnow()
    active = select(Sweep.id).where(Sweep.status == SweepStatus.ACTIVE)
    queued: list[int] = []
    if in_queue is not None:
        candidates = session.scalars(
            select(Run.id).where(Run.sweep_id.in_(active), Run.status == RunStatus.QUEUED,
                                 Run.created_at < now - timedelta(seconds=grace))
        ).all()
        queued = [run_id for run_id in candidates if run_id not in in_queue]
    expired = session.scalars(
        select(Run.id).where(
            Run.sweep_id.in_(active), Run.status == RunStatus.RUNNING,
            Run.heartbeat_at < now - timedelta(seconds=lease_seconds + grace))
    ).all()
    return Orphans(queued=list(queued), expired=list(expired))


def reconcile(settings: Settings | None = None, *, grace: float = 60.0) -> Orphans:
    """Find orphaned runs and publish a message for each; returns what it found."""
    from ffqueue.scheduler import message_labels, publish

    settings = settings or get_settings()
    in_queue = queued_run_ids(settings)
    with session_scope(settings) as session:
        orphans = find_orphans(session=session, grace=grace,
                               lease_seconds=settings.lease_seconds, in_queue=in_queue)
        messages = message_labels(orphans.all, session=session)
    publish(messages, settings=settings)
    if orphans.all:
        log.warning("reconcile: queued again %d runs without a message and %d with an expired "
                    "lease", len(orphans.queued), len(orphans.expired))
    return orphans
