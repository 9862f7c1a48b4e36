"""What the CLI and the dashboard need from a broker's queues: the inspector interface, one
implementation per transport (``redis``, ``amqp``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from lazycelery.broker.bulk import BulkOutcome, Selection
from lazycelery.broker.keys import Binding
from lazycelery.broker.model import PeekedMessage, QueueSnapshot, QueueStats

__all__ = ["BrokerInspector"]


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

    def move(self, source: str, target: str, selection: Selection) -> BulkOutcome:
        """Move the selected waiting messages of ``source`` to the back of ``target``."""
        ...

    def delete(self, source: str, selection: Selection) -> BulkOutcome:
        """Delete the selected waiting messages of ``source``."""
        ...

    def requeue_dead(self, source: str, selection: Selection) -> BulkOutcome:
        """Move the selected messages of dead-letter queue ``source`` back to the queue each
        was dead-lettered from (RabbitMQ: ``x-death``; Redis: the ``dead_letter`` pattern)."""
        ...

    def bindings(self) -> tuple[list[Binding], dict[str, str | None]]:
        """The work queues' bindings (Celery's plumbing left out) and exchange -> type
        (None where the broker doesn't record it); RabbitMQ needs the management API."""
        ...

    def watch_queues(self, names: Iterable[str]) -> None:
        """Also report these queues from the next snapshot on (e.g. found via workers)."""
        ...

    def worker_hostnames(self) -> list[str]:
        """Workers the broker shows remote-control queues for (may include stale ones)."""
        ...

    def close(self) -> None: ...
