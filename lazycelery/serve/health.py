"""``GET /healthcheck``: Flower's path and its 200 ``OK`` once serve can see what is published,
a 503 JSON error before.

Flower answers ``OK`` as soon as its web server runs, before its event thread has subscribed:
a client that waits for ``OK`` and then publishes can lose its first events. serve answers
``OK`` only once its ingest has subscribed to the event stream (Redis: the ``PSUBSCRIBE``
confirmed; AMQP: the event queue declared, bound and consumed). Until then, 503.

After a lost subscription (the ingest reconnecting) ``/healthcheck`` still answers ``OK``, as
Flower does through a broker outage: orchestrators use it as a liveness probe, and restarting
serve then would not bring the broker back but would drop every task held in memory.
``/healthcheck?ready=1`` is the strict readiness answer: 503 whenever the stream is not
subscribed right now, first start or reconnect (docs/serve.md#health)."""

from __future__ import annotations

from lazycelery.core.ingest_status import CONNECTED, STOPPED, IngestStatus
from lazycelery.serve.errors import ApiError

__all__ = ["not_ready"]


def not_ready(status: IngestStatus | None, subscribed_once: bool, *,
              strict: bool) -> ApiError | None:
    """Why ``/healthcheck`` answers 503 now (None: answer ``OK``). ``subscribed_once``: the
    ingest has been subscribed at least once since serve started."""
    if status is not None and status.state == CONNECTED:
        return None
    if status is not None and status.state == STOPPED:
        return ApiError(503, "not ready: the event ingest has stopped")
    if subscribed_once and not strict:
        return None  # a gap: alive, reconnecting by itself (Flower answers OK too)
    state = status.describe() if status is not None else "not started"
    if subscribed_once:
        return ApiError(503, f"not ready: the event stream is not subscribed ({state}); "
                             "events published now are not seen")
    return ApiError(503, f"starting: the event stream is not subscribed yet ({state})")
