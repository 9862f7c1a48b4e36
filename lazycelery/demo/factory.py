"""Builds the demo's Celery app for a DemoEnvironment (no app made at import: `app` does that)."""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu.entity import Exchange, Queue

from lazycelery.demo.environment import DemoEnvironment

__all__ = ["EMBEDDED_TRANSPORT", "create_app"]

#: the ``broker_transport`` that makes ``filesystem://`` the demo's atomic embedded broker
EMBEDDED_TRANSPORT = "lazycelery.demo.transport:Transport"


def _queue(name: str, **options: Any) -> Queue:
    exchange = Exchange(name, type="direct")  # type: ignore[no-untyped-call]
    return Queue(name, exchange, routing_key=name, **options)  # type: ignore[no-untyped-call]


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
            # x-max-priority on RabbitMQ; Redis splits the queue by priority; the embedded
            # transport ignores priorities.
            _queue(environment.priority_queue, max_priority=9),
        ),
        task_routes={
            "demo.send_email": {"queue": environment.priority_queue},
            "demo.notify": {"queue": environment.priority_queue},
        },
        broker_transport=EMBEDDED_TRANSPORT if environment.is_embedded else None,
        broker_transport_options=environment.transport_options(),
        broker_connection_retry_on_startup=True,
        task_send_sent_event=True,
        worker_send_task_events=True,
        # the args are kept with the result, so lazycelery's retry action works on demo tasks
        result_extended=True,
        result_expires=3600,
        task_track_started=True,
        worker_prefetch_multiplier=1,
    )
    return app
