"""Broker queue introspection: the inspector interface and the choice of module by URL scheme.

Importing this package is cheap: redis-py and kombu are imported by ``open_inspector`` only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from lazycelery.broker.inspector import BrokerInspector
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


def scheme_of(broker_url: str) -> str:
    """The transport scheme of a (possibly ``;``-separated failover) broker URL."""
    first = broker_url.split(";", 1)[0].strip()
    scheme, sep, _ = first.partition("://")
    return scheme.lower() if sep else ""


def open_inspector(broker_url: str, transport_options: Mapping[str, Any] | None = None,
                   known_queues: Iterable[str] = (), *,
                   management_url: str | None = None,
                   dead_letter: str | None = None,
                   ssl_options: Any = None) -> BrokerInspector:
    """The inspector for the broker's transport.

    ``known_queues`` are reported even when empty or undiscoverable (the app's configured
    queues). ``management_url`` is for RabbitMQ only: None derives it from the broker URL,
    ``""`` disables the management API. ``dead_letter`` is Redis's naming convention for
    dead-letter queues (``"{queue}.dlq"``); RabbitMQ declares its own. ``ssl_options`` is
    celery's ``broker_use_ssl`` (RabbitMQ; an ``amqps://`` URL's ``ssl_*`` options are read too).
    """
    scheme = scheme_of(broker_url)
    try:
        if scheme in REDIS_SCHEMES:
            from lazycelery.broker.redis import RedisInspector

            return RedisInspector(broker_url, transport_options, known_queues,
                                  dead_letter=dead_letter)
        if scheme in AMQP_SCHEMES:
            from lazycelery.broker.amqp import AmqpInspector

            return AmqpInspector(broker_url, transport_options, known_queues,
                                 management_url=management_url, ssl_options=ssl_options)
    except (ValueError, UnicodeError) as exc:
        # config.check_url refuses such URLs first; a URL built elsewhere still gets one line.
        # Not the library's message: it may quote a piece of the password ("port 'p4ss'").
        from lazycelery.urls import shown_url

        raise BrokerError(f"bad broker URL {shown_url(broker_url)} "
                          f"({type(exc).__name__})") from None
    shown = f"{scheme}://" if scheme else "these"
    raise BrokerError(f"queue depths are not supported for {shown} brokers "
                      "(supported: redis, amqp)")
