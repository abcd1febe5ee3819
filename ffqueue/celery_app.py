"""The Celery app. Its whole configuration derives from ``Settings``.

Messages are JSON only (a pickle message is refused), acknowledged late and
redelivered if the worker dies, one at a time per worker process. The broker only
wakes workers: the database holds every run's state.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu import Exchange, Queue

from ffqueue.settings import Settings, get_settings

TRAIN_QUEUE = "train"
ANALYSIS_QUEUE = "analysis"
WAKE_TASK = "ffqueue.wake"  # a no-op message that wakes a polling consumer


def celery_config(settings: Settings) -> dict[str, Any]:
    transport_options: dict[str, Any] = {
        # A run still training after this many seconds is delivered again; the lease
        # in the database then stops the second copy. Keep it above the longest run.
        "visibility_timeout": settings.visibility_timeout,
    }
    if settings.uses_filesystem_broker:
        queue_dir = settings.broker_dir / "queue"
        processed = settings.broker_dir / "processed"
        control = settings.broker_dir / "control"  # exchange tables; default is ./control
        for folder in (queue_dir, processed, control):
            folder.mkdir(parents=True, exist_ok=True)
        transport_options.update(
            data_folder_in=str(queue_dir),
            data_folder_out=str(queue_dir),
            processed_folder=str(processed),
            store_processed=False,
            control_folder=str(control),
            polling_interval=settings.broker_poll_interval,
        )
    return {
        "broker_url": settings.effective_broker_url,
        "broker_transport_options": transport_options,
        "broker_connection_retry_on_startup": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "result_accept_content": ["json"],
        "event_serializer": "json",
        # The database is where results live; no result backend is needed.
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        # One message in hand per pool process, and on the folder queue one more waiting:
        # a folder is polled, so a process that finished would otherwise idle until the
        # next poll (0.05 s on average, a third of a small run).
        "worker_prefetch_multiplier": 2 if settings.uses_filesystem_broker else 1,
        "task_default_queue": TRAIN_QUEUE,
        "task_queues": tuple(Queue(name, Exchange(name, type="direct"), routing_key=name)
                             for name in (TRAIN_QUEUE, ANALYSIS_QUEUE)),
        "task_routes": {
            "ffqueue.train_run": {"queue": TRAIN_QUEUE},
            "ffqueue.analyze": {"queue": ANALYSIS_QUEUE},
            "ffqueue.analyze_all": {"queue": ANALYSIS_QUEUE},
            "ffqueue.ae_loss": {"queue": ANALYSIS_QUEUE},
            "ffqueue.reconcile": {"queue": ANALYSIS_QUEUE},
            WAKE_TASK: {"queue": TRAIN_QUEUE},  # what every worker consumes
        },
        # Flower learns of a task when a worker receives it; a "sent" event per message
        # would double the broker round trips of submitting a 10,000-run sweep.
        "task_send_sent_event": False,
        "worker_send_task_events": not settings.uses_filesystem_broker,
        "worker_hijack_root_logger": False,
        "beat_schedule": {
            "analyze-all": {"task": "ffqueue.analyze_all", "schedule": settings.analysis_interval},
            "reconcile": {"task": "ffqueue.reconcile", "schedule": settings.reconcile_interval},
        },
        "timezone": "UTC",
        "enable_utc": True,
    }




app = Celery("ffqueue", include=["ffqueue.tasks"])
app.add_defaults(lambda: celery_config(get_settings()))
