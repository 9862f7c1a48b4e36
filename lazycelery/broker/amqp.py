"""Queue figures for RabbitMQ: passive queue_declare over AMQP, plus the management API when reachable."""

from __future__ import annotations

import contextlib
import functools
import math
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NamedTuple

import amqp.exceptions
import kombu.exceptions

from lazycelery.broker.bulk import BulkOutcome, Selection
from lazycelery.broker.dead_letters import amqp_dead_letters, with_dead_letters
from lazycelery.broker.keys import Binding, is_internal
from lazycelery.broker.management import (
    ManagementAPI,
    ManagementBinding,
    ManagementError,
    ManagementQueue,
    derive_management_url,
)
from lazycelery.broker.model import PeekedMessage, QueueSnapshot, QueueStats, Source
from lazycelery.errors import BrokerError, UsageError
from lazycelery.urls import amqp_tls, scrub, shown_url, url_problem

__all__ = ["DEFAULT_QUEUES", "AmqpInspector"]

#: Probed when nothing else names a queue: Celery's ``task_default_queue``.
DEFAULT_QUEUES = ("celery",)
CONNECT_TIMEOUT = 4.0
MANAGEMENT_TIMEOUT = 2.0
#: After the management API failed, AMQP alone is used for this long before trying again.
MANAGEMENT_RETRY_S = 30.0
#: Bindings and exchange types (for dead-letter queues) are re-read this often, and only
#: while some queue has a dead-letter exchange.
BINDINGS_EVERY_S = 10.0


class _Probe(NamedTuple):
    ready: int
    consumers: int


def _is_internal(name: str) -> bool:
    # Event receivers, pidbox (remote control) and reply queues, and server-named queues
    # (RPC result consumers) are plumbing, not work queues.
    return name.startswith(("celeryev.", "amq.")) or name.endswith(".pidbox")


def _connection(url: str, transport_options: Mapping[str, Any] | None,
                ssl_options: Any = None) -> tuple[Any, str]:
    """A kombu Connection (not connected yet) and a credential-free ``host:port vhost 'v'``.
    ``ssl_options`` is celery's ``broker_use_ssl``; the URL's ``ssl_*`` options (``amqp_tls``:
    kombu would hand them to py-amqp unrenamed) are added to it."""
    from kombu.connection import Connection

    try:
        kombu_url, url_tls = amqp_tls(url)
        tls: Any = ssl_options or False
        if url_tls:
            tls = {**(ssl_options if isinstance(ssl_options, Mapping) else {}), **url_tls}
        connection = Connection(kombu_url, transport_options=dict(transport_options or {}),  # type: ignore[no-untyped-call]
                                connect_timeout=CONNECT_TIMEOUT, ssl=tls)
        # kombu parses the port lazily: a malformed one must fail here, as a one-line error.
        where = (f"{connection.hostname}:{connection.port or 5672} "
                 f"vhost {connection.virtual_host or '/'!r}")
    except ValueError as exc:
        # url_problem's clause, or the library's message without the password in it
        reason = url_problem(url) or scrub(str(exc), url)
        raise BrokerError(f"bad amqp broker URL {shown_url(url)}: {reason}") from None
    return connection, where


@functools.cache
def _sources(**fields: str) -> dict[str, str]:
    return dict(fields)


class AmqpInspector:
    """RabbitMQ over AMQP 0-9-1 (py-amqp through kombu); one lock serialises channel use."""

    transport = "amqp"
    #: AMQP cannot read a message without taking it (see ``peek``): the dashboard's peek
    #: overlay offers the tasks the events show waiting instead
    can_peek = False

    def __init__(self, url: str, transport_options: Mapping[str, Any] | None = None,
                 known_queues: Iterable[str] = (), *, management_url: str | None = None,
                 ssl_options: Any = None, clock: Callable[[], float] = time.time) -> None:
        self._conn, self.where = _connection(url, transport_options, ssl_options)
        self._failover = max(0, len(self._conn.alt) - 1)
        vhost = self._conn.virtual_host or "/"
        self._known = set(known_queues)
        self._clock = clock
        self._lock = threading.Lock()
        self._channel: Any = None
        self._api: ManagementAPI | None = None
        self._api_note: str | None = None
        self._api_retry_at = 0.0
        self._api_configured = bool(management_url)
        self._last_listing: list[ManagementQueue] | None = None
        self._bindings: tuple[list[ManagementBinding], dict[str, str]] = ([], {})
        self._bindings_at = -math.inf
        if management_url != "":
            tls = url.lower().startswith("amqps") or bool(self._conn.ssl)
            api_url = management_url or derive_management_url(self._conn.hostname or "localhost",
                                                              tls=tls)
            try:
                self._api = ManagementAPI(api_url, vhost, self._conn.userid,
                                          self._conn.password, timeout=MANAGEMENT_TIMEOUT)
            except ManagementError as exc:
                raise BrokerError(str(exc)) from None

    # ----------------------------------------------------------------- protocol

    @property
    def source(self) -> str:
        return f"rabbitmq {self.where}"

    def snapshot(self) -> QueueSnapshot:
        started = time.perf_counter()
        with self._lock, self._errors():
            listing = self._listing()
            listed = {q.name: q for q in listing or () if not _is_internal(q.name)}
            probes = {name: self._probe(name)
                      for name in sorted(self._probe_names(listing is not None))}
        taken_at = self._clock()
        names = sorted(set(listed) | set(probes))
        queues = tuple(self._stats(name, name in probes, probes.get(name), listed.get(name),
                                   taken_at) for name in names)
        if listing is not None:
            queues = with_dead_letters(queues, self._dead_letters(list(listed.values())),
                                       Source.MANAGEMENT_BINDINGS)
        methods = "passive queue_declare"
        if listing is not None:
            methods += f" + management API {self._api.base if self._api else ''}"
        notes = [self._api_note] if self._api_note else []
        if listing is None and not self._known:
            notes.append(f"probing only {', '.join(DEFAULT_QUEUES)}: AMQP cannot list queues; "
                         "configure queues (-A or the config file), add --workers, or enable "
                         "the management API")
        return QueueSnapshot(taken_at=taken_at, queues=queues, source=f"{self.source}: {methods}",
                             duration_s=time.perf_counter() - started, notes=tuple(notes))

    def stats(self, queue: str) -> QueueStats:
        with self._lock, self._errors():
            probe = self._probe(queue)
        if probe is None:
            raise UsageError(f"unknown queue {queue!r} on rabbitmq {self.where}")
        return self._stats(queue, True, probe, None, self._clock())

    def peek(self, queue: str, n: int = 10) -> list[PeekedMessage]:
        raise UsageError("peek is not available on RabbitMQ: AMQP cannot read a message without "
                         "taking it, and handing it back marks it redelivered and may reorder it")

    def purge(self, queue: str) -> int:
        with self._lock, self._errors():
            channel = self._probe_channel()
            try:
                # Purges ready messages only: unacked ones stay with their consumers.
                return int(channel.queue_purge(queue=queue) or 0)
            except amqp.exceptions.NotFound:
                self._channel = None  # the broker closed this channel
                raise UsageError(f"unknown queue {queue!r} on rabbitmq {self.where}") from None

    def purge_tasks(self, queue: str) -> tuple[int, list[str] | None]:
        # AMQP cannot read a message without taking it: the purged ids stay unknown
        return self.purge(queue), None

    def move(self, source: str, target: str, selection: Selection) -> BulkOutcome:
        from lazycelery.broker.amqp_bulk import transfer

        with self._lock, self._errors():
            self._probe_channel()  # connected, failover walked
            if self._probe(target) is None:
                raise UsageError(f"unknown queue {target!r} on rabbitmq {self.where}")
            return transfer(self._conn, "move", source, selection, lambda _headers: target)

    def delete(self, source: str, selection: Selection) -> BulkOutcome:
        from lazycelery.broker.amqp_bulk import transfer

        with self._lock, self._errors():
            self._probe_channel()
            return transfer(self._conn, "delete", source, selection, None)

    def requeue_dead(self, source: str, selection: Selection) -> BulkOutcome:
        from lazycelery.broker.amqp_bulk import dead_letter_origin, transfer

        with self._lock, self._errors():
            self._probe_channel()
            return transfer(self._conn, "requeue-dead", source, selection, dead_letter_origin)

    def bindings(self) -> tuple[list[Binding], dict[str, str | None]]:
        if self._api is None:
            return [], {}
        try:
            types: dict[str, str | None] = {e.name: e.type for e in self._api.exchanges()
                                            if e.name and not e.name.startswith("amq.")}
            found = [Binding(b.source, b.routing_key, "", b.destination)
                     for b in self._api.bindings()
                     # the default exchange binds every queue to its own name: implied
                     if b.source and b.destination_type == "queue"]
        except ManagementError as exc:
            raise BrokerError(str(exc)) from None
        bound = [b for b in found if not is_internal(b)]
        return bound, {k: v for k, v in types.items()
                       if not is_internal(Binding(k, "", "", ""))}

    def watch_queues(self, names: Iterable[str]) -> None:
        self._known.update(names)

    def worker_hostnames(self) -> list[str]:
        with self._lock:
            listing = self._listing() if self._last_listing is None else self._last_listing
        suffix = ".celery.pidbox"
        return sorted(q.name[: -len(suffix)] for q in listing or ()
                      if q.name.endswith(suffix) and not q.name.endswith(".reply" + suffix))

    def close(self) -> None:
        with self._lock:
            self._reset()

    # ----------------------------------------------------------------- internals

    def _probe_names(self, listed: bool) -> set[str]:
        # Without a listing, Celery's default queue is the one worth guessing.
        return self._known or (set() if listed else set(DEFAULT_QUEUES))

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """AMQP and socket errors -> one BrokerError line naming host and vhost, not the URL."""
        try:
            yield
        except (UsageError, BrokerError):
            raise
        except Exception as exc:
            self._reset()
            raise BrokerError(self._describe(exc)) from None

    def _describe(self, exc: BaseException) -> str:
        if isinstance(exc, kombu.exceptions.OperationalError) and exc.__cause__ is not None:
            exc = exc.__cause__
        if isinstance(exc, amqp.exceptions.AccessRefused):
            return f"rabbitmq at {self.where} refused the credentials (ACCESS_REFUSED)"
        if isinstance(exc, amqp.exceptions.NotAllowed):
            return f"rabbitmq at {self.where} refused access to the vhost: {exc.reply_text}"
        if isinstance(exc, (socket.timeout, TimeoutError)):
            return f"rabbitmq at {self.where} did not answer in time"
        if isinstance(exc, OSError):
            reason = exc.strerror or str(exc) or type(exc).__name__
            return f"cannot reach rabbitmq at {self.where}: {reason}"
        if isinstance(exc, amqp.exceptions.AMQPError):
            return f"rabbitmq at {self.where} closed the connection: {exc}"
        return f"rabbitmq at {self.where}: {type(exc).__name__}: {exc}"

    def _reset(self) -> None:
        self._channel = None
        with contextlib.suppress(Exception):
            self._conn.release()

    def _probe_channel(self) -> Any:
        if self._channel is None:
            # Fail fast (the CLI must answer within seconds), but walk a failover list once.
            self._conn.ensure_connection(max_retries=self._failover, interval_start=0,
                                         interval_step=0.2, interval_max=0.2)
            self._channel = self._conn.channel()
        return self._channel

    def _probe(self, name: str) -> _Probe | None:
        """(ready, consumers) from a passive declare, None if the queue does not exist."""
        channel = self._probe_channel()
        try:
            ok = channel.queue_declare(queue=name, passive=True)
        except amqp.exceptions.NotFound:
            # A failed passive declare closes the channel: the next probe needs a fresh one.
            self._channel = None
            return None
        return _Probe(int(ok.message_count), int(ok.consumer_count))

    def _listing(self) -> list[ManagementQueue] | None:
        if self._api is None or time.monotonic() < self._api_retry_at:
            return None
        try:
            listing = self._api.queues()
        except ManagementError as exc:
            self._api_retry_at = time.monotonic() + MANAGEMENT_RETRY_S
            self._last_listing = None
            fallback = ("; using passive queue_declare for configured queues "
                        "(no reserved counts or rates)")
            self._api_note = str(exc) + fallback
            if not self._api_configured and "unreachable" in str(exc):
                self._api_note = (f"management API not reachable at {self._api.base}"
                                  + fallback)
            return None
        self._api_note = None
        self._last_listing = listing
        return listing

    def _dead_letters(self, listed: list[ManagementQueue]) -> dict[str, str]:
        """queue -> dead-letter queue; bindings are read only when a queue has a DLX."""
        if not any(q.setting("dead-letter-exchange") is not None for q in listed):
            return {}
        assert self._api is not None
        if time.monotonic() - self._bindings_at >= BINDINGS_EVERY_S:
            try:
                types = {e.name: e.type for e in self._api.exchanges()}
                self._bindings = (self._api.bindings(), types)
            except ManagementError as exc:
                self._api_note = f"dead-letter queues unknown: {exc}"
            self._bindings_at = time.monotonic()
        return amqp_dead_letters(listed, *self._bindings)

    def management(self) -> ManagementAPI | None:
        """The management API client (None when disabled), for routing and dead letters."""
        return self._api

    def _stats(self, name: str, probed: bool, probe: _Probe | None,
               listed: ManagementQueue | None, now: float) -> QueueStats:
        """Merge one queue's figures: a passive declare is exact and current, so it wins for
        ready/consumers; the management API (up to 5 s old) adds unacked, rates and age."""
        fields: dict[str, str] = {}
        ready: int | None = None
        consumers: int | None = None
        if probe is not None:
            ready, consumers = probe.ready, probe.consumers
            fields.update(ready=Source.AMQP_DECLARE, consumers=Source.AMQP_DECLARE)
        elif listed is not None:
            ready, consumers = listed.messages_ready, listed.consumers
            fields.update({k: Source.MANAGEMENT for k, v in
                           (("ready", ready), ("consumers", consumers)) if v is not None})
        reserved = in_rate = out_rate = age = max_priority = None
        if listed is not None:
            value = listed.setting("max-priority")
            max_priority = value if isinstance(value, int) and not isinstance(value, bool) \
                else None
            reserved, in_rate, out_rate = (listed.messages_unacknowledged, listed.publish_rate,
                                           listed.deliver_rate)
            stamp = listed.head_message_timestamp
            # Only set when publishers stamp messages (Celery doesn't by default).
            age = max(0.0, now - stamp) if stamp and math.isfinite(stamp) else None
            fields.update({k: Source.MANAGEMENT for k, v in
                           (("reserved", reserved), ("in_rate", in_rate),
                            ("out_rate", out_rate), ("oldest_age_s", age),
                            ("max_priority", max_priority)) if v is not None})
        return QueueStats(
            name=name, ready=ready, reserved=reserved, consumers=consumers,
            in_rate=in_rate, out_rate=out_rate, oldest_age_s=age, max_priority=max_priority,
            missing=probed and probe is None and listed is None,
            sources=_sources(**fields),
        )
