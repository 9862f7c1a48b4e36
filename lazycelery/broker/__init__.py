"""Broker queue introspection: the inspector interface and the choice of module by URL scheme.

Importing this package is cheap: redis-py and kombu are imported by ``open_inspector`` only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from lazycelery.broker.model import PeekedMessage, QueueSnapshot, QueueStats, Source
from lazycelery.broker.monitor import QueueMonitor
from lazycelery.errors import BrokerError

__all__ = [
    "AMQP_SCHEMES",
    "REDIS_SCHEMES",
    "BrokerInspector",
    "PeekedMessage",
    "QueueMonitor",
    "QueueSnapshot",
    "QueueStats",
    "Source",
    "open_inspector",
    "scheme_of",
]

REDIS_SCHEMES = frozenset({"redis", "rediss", "redis+socket"})
AMQP_SCHEMES = frozenset({"amqp", "amqps", "pyamqp", "librabbitmq"})


class BrokerInspector(Protocol):
    """What the CLI and the dashboard need from a broker; one implementation per transport.

    Methods raise ``BrokerError`` (broker unreachable, credentials refused, ...) or
    ``UsageError`` (unknown queue, unsupported operation), each with a one-line message.
    An inspector is used from one thread at a time, except ``peek``/``purge``/``stats``
    which may run in another thread while ``snapshot`` runs in the monitor's.
    """

    transport: str

    @property
    def source(self) -> str:
        """Which broker, without credentials, e.g. ``redis 127.0.0.1:6379/0``."""
        ...

    def snapshot(self) -> QueueSnapshot:
        """All known queues, read now. Rates are left to ``QueueMonitor``."""
        ...

    def stats(self, queue: str) -> QueueStats:
        """One queue, read now; ``UsageError`` if the broker doesn't know it."""
        ...

    def peek(self, queue: str, n: int = 10) -> list[PeekedMessage]:
        """The next ``n`` messages in consumption order, without consuming them."""
        ...

    def purge(self, queue: str) -> int:
        """Delete the queue's ready messages (not reserved ones); returns how many."""
        ...

    def purge_tasks(self, queue: str) -> tuple[int, list[str] | None]:
        """``purge``, and the task ids of the messages it deleted when the broker can tell
        (None: unknown, e.g. AMQP cannot read messages without taking them)."""
        ...

    def watch_queues(self, names: Iterable[str]) -> None:
        """Also report these queues from the next snapshot on (e.g. found via workers)."""
        ...

    def worker_hostnames(self) -> list[str]:
        """Workers the broker shows remote-control queues for (may include stale ones)."""
        ...

    def close(self) -> None: ...


def scheme_of(broker_url: str) -> str:
    """The transport scheme of a (possibly ``;``-separated failover) broker URL."""
    first = broker_url.split(";", 1)[0].strip()
    scheme, sep, _ = first.partition("://")
    return scheme.lower() if sep else ""


def open_inspector(broker_url: str, transport_options: Mapping[str, Any] | None = None,
                   known_queues: Iterable[str] = (), *,
                   management_url: str | None = None) -> BrokerInspector:
    """The inspector for the broker's transport.

    ``known_queues`` are reported even when empty or undiscoverable (the app's configured
    queues). ``management_url`` is for RabbitMQ only: None derives it from the broker URL,
    ``""`` disables the management API.
    """
    scheme = scheme_of(broker_url)
    try:
        if scheme in REDIS_SCHEMES:
            from lazycelery.broker.redis import RedisInspector

            return RedisInspector(broker_url, transport_options, known_queues)
        if scheme in AMQP_SCHEMES:
            from lazycelery.broker.amqp import AmqpInspector

            return AmqpInspector(broker_url, transport_options, known_queues,
                                 management_url=management_url)
    except (ValueError, UnicodeError) as exc:
        # config.check_url refuses such URLs first; a URL built elsewhere still gets one line.
        # Not the library's message: it may quote a piece of the password ("port 'p4ss'").
        from lazycelery.urls import shown_url

        raise BrokerError(f"bad broker URL {shown_url(broker_url)} "
                          f"({type(exc).__name__})") from None
    shown = f"{scheme}://" if scheme else "these"
    raise BrokerError(f"queue depths are not supported for {shown} brokers "
                      "(supported: redis, amqp)")
