"""Worker-side companion of lazycelery's span export (docs/tracing.md).

Celery's events carry no trace headers. Installed in the producers and the workers, this
package

* on ``before_task_publish`` (producer side): puts the current OpenTelemetry context into the
  message headers as ``traceparent`` (unless something, e.g. opentelemetry-instrumentation-celery,
  already did);
* on ``task_prerun`` (worker side): sends one custom event per task run through the worker's
  event dispatcher: ``task-traceparent`` with ``uuid`` and ``traceparent`` (the one the message
  carried, else the worker's current span). ``lazycelery record --otel`` then makes the task's
  span a child of that span: the request that enqueued the task and the task's execution are one
  trace.

Use: ``celery -A proj worker -E -I lazycelery_traceparent.worker`` (or add
``lazycelery_traceparent.worker`` to the app's ``imports``), and call ``install()`` once in the
producer (a web app's start-up), or import ``lazycelery_traceparent.worker`` there too.
"""

from __future__ import annotations

import logging
from typing import Any, Final

__all__ = ["EVENT", "HEADER", "current_traceparent", "install", "uninstall"]

#: the custom event type lazycelery reads
EVENT: Final = "task-traceparent"
#: the W3C header name (also what opentelemetry-instrumentation-celery injects)
HEADER: Final = "traceparent"

log = logging.getLogger(__name__)
_installed = False


def current_traceparent() -> str | None:
    """The W3C traceparent of the current OpenTelemetry span, None when there is none."""
    from opentelemetry import propagate

    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    value = carrier.get(HEADER)
    return value if isinstance(value, str) and value else None


def _on_publish(headers: dict[str, Any] | None = None, **_: Any) -> None:
    if headers is None or headers.get(HEADER):
        return
    try:
        value = current_traceparent()
    except Exception:  # never break publishing
        log.debug("traceparent: no context to inject", exc_info=True)
        return
    if value:
        headers[HEADER] = value


def _on_prerun(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    if task is None or task_id is None:
        return
    try:
        value = getattr(task.request, HEADER, None)
        if not isinstance(value, str) or not value:
            value = current_traceparent()
        if value:
            task.send_event(EVENT, traceparent=value, retry=False)
    except Exception:  # a monitoring aid: never fail the task for it
        log.debug("traceparent: event not sent", exc_info=True)


def install() -> None:
    """Connect the two signal handlers (idempotent)."""
    global _installed
    if _installed:
        return
    from celery import signals

    signals.before_task_publish.connect(_on_publish, weak=False)
    signals.task_prerun.connect(_on_prerun, weak=False)
    _installed = True


def uninstall() -> None:
    global _installed
    from celery import signals

    signals.before_task_publish.disconnect(_on_publish)
    signals.task_prerun.disconnect(_on_prerun)
    _installed = False
