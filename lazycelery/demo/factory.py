"""Builds the demo's Celery app for a DemoEnvironment (no app made at import: `app` does that)."""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.schedules import crontab
from kombu.entity import Exchange, Queue

from lazycelery.demo.environment import DemoEnvironment

__all__ = ["beat_schedule", "create_app"]


def _queue(name: str, **options: Any) -> Queue:
    exchange = Exchange(name, type="direct")  # type: ignore[no-untyped-call]
    return Queue(name, exchange, routing_key=name, **options)  # type: ignore[no-untyped-call]


def beat_schedule() -> dict[str, dict[str, Any]]:
    """What the demo's ``celery beat`` sends: two frequent entries (the beat pane counts their
    runs), and two crontab entries that show how the pane words a schedule."""
    return {
        "cleanup-sessions": {"task": "demo.cleanup_sessions", "schedule": 10.0},
        "sync-inventory": {"task": "demo.sync_inventory", "schedule": 30.0,
                           "args": ("warehouse",)},
        "nightly-report": {"task": "demo.generate_report", "schedule": crontab(hour=3, minute=0),
                           "args": (0, 5.0)},
        "weekday-digest": {"task": "demo.send_email",
                           "schedule": crontab(hour=7, minute=30, day_of_week="mon-fri"),
                           "args": ("team@example.com", "Daily digest"),
                           "options": {"priority": 3}},
    }


def create_app(environment: DemoEnvironment) -> Celery:
    """A demo app for ``environment``; ``lazycelery.demo.app.app`` is the one for this process's
    environment variables, `lazycelery demo` makes one for its run to talk to its workers."""
    app = Celery(
        "lazycelery.demo",
        broker=environment.broker_url,
        backend=environment.result_backend,
        include=["lazycelery.demo.tasks"],
        set_as_current=False,
    )
    app.conf.update(
        # Pinned: celery prefers $CELERY_BROKER_URL to broker_url, but not to these.
        broker_read_url=environment.broker_url,
        broker_write_url=environment.broker_url,
        task_default_queue=environment.default_queue,
        # Each queue gets its own direct exchange and routing key: left to celery, both would
        # be bound to the default exchange with the default routing key, and both would get
        # every task sent to the default queue.
        task_queues=(
            _queue(environment.default_queue),
            # x-max-priority on RabbitMQ; Redis splits the queue into priority sub-lists.
            _queue(environment.priority_queue, max_priority=9),
        ),
        task_routes={
            "demo.send_email": {"queue": environment.priority_queue},
            "demo.notify": {"queue": environment.priority_queue},
        },
        broker_connection_retry_on_startup=True,
        task_send_sent_event=True,
        worker_send_task_events=True,
        # the args are kept with the result, so lazycelery's retry action works on demo tasks
        result_extended=True,
        result_expires=3600,
        task_track_started=True,
        worker_prefetch_multiplier=1,
        beat_schedule=beat_schedule(),
        # beat writes its shelve after every send (default: every 3 min), so the beat pane's
        # last runs and run counts are live
        beat_sync_every=1,
        # absolute, in the run's data dir: the beat pane finds it from any directory
        beat_schedule_filename=str(environment.beat_schedule),
    )
    return app
