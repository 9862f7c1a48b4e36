"""The immutable records that queue introspection produces: per-queue stats, snapshots, peeked messages."""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["PeekedMessage", "QueueSnapshot", "QueueStats", "Source"]


class Source:
    """Where a figure came from; the values appear in ``QueueStats.sources`` and in ``--json``."""

    REDIS_LLEN = "redis:LLEN"
    REDIS_UNACKED = "redis:unacked-hash"
    REDIS_TAIL = "redis:tail-message"
    AMQP_DECLARE = "amqp:queue_declare"
    MANAGEMENT = "rabbitmq:management-api"
    MANAGEMENT_BINDINGS = "rabbitmq:management-api-bindings"
    DEAD_LETTER_PATTERN = "config:queues.dead_letter"
    WORKERS = "workers:active_queues"
    DEPTH_DELTA = "monitor:depth-delta"
    OBSERVED = "monitor:observed"


class QueueStats(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=False):
    """What is known about one queue at one moment; ``None`` always means "not known", never 0."""

    name: str
    #: Messages waiting to be delivered (Redis: sum of the priority sub-lists; AMQP: ready).
    ready: int | None
    #: Delivered to a consumer but not acknowledged yet (Redis: ``unacked`` hash entries).
    reserved: int | None = None
    consumers: int | None = None
    #: Redis only: ready messages per priority step (step 3 holds priorities 3..5 by default).
    by_priority: dict[int, int] | None = None
    #: Messages published / delivered per second: only where the broker counts them.
    in_rate: float | None = None
    out_rate: float | None = None
    #: Smoothed change of ``ready`` per second (in - out), from successive snapshots.
    net_rate: float | None = None
    #: Seconds the next message has waited, as a lower bound (see docs/queues.md).
    oldest_age_s: float | None = None
    #: The broker says this queue does not exist (AMQP 404). Redis cannot tell.
    missing: bool = False
    #: RabbitMQ: the queue's ``x-max-priority`` (argument or policy); the management API
    #: counts a priority queue's messages as a whole, never per priority.
    max_priority: int | None = None
    #: The queue its rejected/expired messages go to (RabbitMQ: resolved from its
    #: dead-letter exchange; Redis: the configured ``dead_letter`` pattern), and its depth.
    dead_letter: str | None = None
    dead_letter_ready: int | None = None
    #: This queue is some other queue's dead-letter queue (that queue's name).
    dead_letter_of: str | None = None
    #: figure name -> ``Source`` value, for every figure that is not None.
    sources: dict[str, str] = msgspec.field(default_factory=dict)


class QueueSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """All queues read in one pass; swapped in whole, never mutated."""

    taken_at: float
    queues: tuple[QueueStats, ...]
    #: Which broker and which methods, e.g. ``redis 127.0.0.1:6379/4 (LLEN pipeline)``.
    source: str
    #: Set when the latest attempt failed; the figures are then those of the last good snapshot.
    error: str | None = None
    stale: bool = False
    #: Seconds the broker read took.
    duration_s: float = 0.0
    #: Caveats a reader should see (caps hit, management API unreachable, ...).
    notes: tuple[str, ...] = ()
    #: Redis: ``HLEN unacked``, reserved messages of all queues together.
    unacked_total: int | None = None

    def get(self, name: str) -> QueueStats | None:
        for stats in self.queues:
            if stats.name == name:
                return stats
        return None


class PeekedMessage(msgspec.Struct, frozen=True, kw_only=True):
    """One waiting message, decoded without consuming it and without ever unpickling."""

    position: int
    task: str | None
    id: str | None
    argsrepr: str | None = None
    kwargsrepr: str | None = None
    #: Real args/kwargs when the body is JSON or msgpack; ``None`` for pickle/yaml (see ``note``).
    args: list[Any] | None = None
    kwargs: dict[str, Any] | None = None
    eta: str | None = None
    expires: str | None = None
    retries: int | None = None
    priority: int | None = None
    #: Redis priority step (sub-list) the message sits in.
    priority_step: int | None = None
    root_id: str | None = None
    parent_id: str | None = None
    origin: str | None = None
    content_type: str | None = None
    size: int = 0
    #: Seconds since publication when the message carries a timestamp; Celery's own don't.
    age_s: float | None = None
    note: str | None = None
