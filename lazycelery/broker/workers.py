"""Which queues live workers consume, asked by name (never a broadcast) and merged into snapshots."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from lazycelery.broker.model import QueueSnapshot, QueueStats, Source

if TYPE_CHECKING:
    from lazycelery.broker.inspector import BrokerInspector

__all__ = ["active_queue_replies", "ask_active_queues", "discover_active_queues",
           "merge_consumers", "worker_probe"]


def ask_active_queues(app: Any, hostnames: Sequence[str],
                      timeout: float = 1.0) -> dict[str, list[str]]:
    """queue name -> hostnames of the named workers that consume it.

    Only the given workers are asked (``destination=[...]``): a broadcast would reach every
    worker on the vhost, other apps' too. Workers that don't answer within ``timeout`` are
    left out; with a destination the call returns as soon as all have answered.
    """
    if not hostnames:
        return {}
    inspect = app.control.inspect(destination=list(hostnames), timeout=timeout)
    return _by_queue(inspect.active_queues())


def discover_active_queues(app: Any, timeout: float = 1.0) -> dict[str, list[str]]:
    """queue name -> hostnames, from a read-only ``inspect active_queues`` broadcast.

    Only for a broker that cannot name its workers (RabbitMQ without the management API): every
    worker on the vhost answers, other apps' too; it changes nothing, and it waits ``timeout``
    for the last answer."""
    return _by_queue(app.control.inspect(timeout=timeout).active_queues())


def worker_probe(app: Callable[[], Any], inspector: BrokerInspector,
                 timeout: float = 1.0) -> Callable[[], dict[str, list[str]]]:
    """The ``QueueMonitor`` probe of the CLI (``--workers``) and the dashboard: the workers the
    broker names, asked by name; on RabbitMQ, when it names none (no management API), a
    read-only broadcast finds them, so their queues are passive-declared too."""
    def probe() -> dict[str, list[str]]:
        names = inspector.worker_hostnames()
        if names:
            return ask_active_queues(app(), names, timeout)
        if inspector.transport == "amqp":
            return discover_active_queues(app(), timeout)
        return {}

    return probe


def active_queue_replies(app: Any, inspector: BrokerInspector,
                         timeout: float = 1.0) -> dict[str, Any]:
    """hostname -> its ``active_queues`` reply (exchange, routing key per queue): the workers
    the broker names, asked by name; on RabbitMQ naming none, a read-only broadcast."""
    names = inspector.worker_hostnames()
    if names:
        inspect = app.control.inspect(destination=list(names), timeout=timeout)
    elif inspector.transport == "amqp":
        inspect = app.control.inspect(timeout=timeout)
    else:
        return {}
    return dict(inspect.active_queues() or {})


def _by_queue(replies: Mapping[str, Any] | None) -> dict[str, list[str]]:
    consumers: dict[str, list[str]] = {}
    for host, queues in (replies or {}).items():
        for queue in queues or ():
            name = queue.get("name") if isinstance(queue, dict) else None
            if isinstance(name, str):
                consumers.setdefault(name, []).append(host)
    return consumers


def merge_consumers(snapshot: QueueSnapshot,
                    consumers: Mapping[str, Sequence[str]]) -> QueueSnapshot:
    """Fill ``consumers`` from worker answers where the broker doesn't count them (Redis).

    A broker's own count (RabbitMQ) is kept: it counts channels, which is what delivery
    depends on, and it includes consumers that are not Celery workers.
    """
    queues: list[QueueStats] = []
    filled = False
    for stats in snapshot.queues:
        if stats.consumers is None:
            filled = True
            stats = msgspec.structs.replace(
                stats, consumers=len(consumers.get(stats.name, ())),
                sources={**stats.sources, "consumers": Source.WORKERS})
        queues.append(stats)
    source = snapshot.source + ("; consumers: workers' active_queues" if filled else "")
    return msgspec.structs.replace(snapshot, queues=tuple(queues), source=source)
