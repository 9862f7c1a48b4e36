"""celery's own event path: an ``app.events.Receiver`` subclass drained in small batches."""

from __future__ import annotations

import binascii
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final, Protocol

from lazycelery.core.fastpath import DecodeStats, json_failure
from lazycelery.core.sanitize import (
    APPLY_FAILED,
    BAD_BASE64,
    BAD_COMPRESSION,
    BAD_ENVELOPE,
    INVALID_JSON,
    NOT_AN_EVENT,
    UNDECODABLE,
    UNSUPPORTED_CONTENT,
    clean_event,
    field_kind,
)

if TYPE_CHECKING:
    from lazycelery.core.ingest_redis import BrokerIdentity

__all__ = ["KombuSession", "receiver_class"]

log = logging.getLogger(__name__)

#: marks an event the receiver subclass refused (``process`` drops it)
_SKIP: Final = object()
#: seconds the Redis session waits to see its PSUBSCRIBE in ``CLIENT LIST`` before it reports
#: itself subscribed anyway (a proxy that hides clients, say): never stuck "connecting"
READY_WAIT: Final = 10.0


class KombuSink(Protocol):
    """Where the receiver puts events (``lazycelery.core.batch.BatchSink``)."""

    @property
    def pending(self) -> bool: ...

    def add(self, event: Mapping[str, Any]) -> None: ...

    def due(self) -> bool: ...

    def flush(self) -> None: ...

    def tick(self) -> None: ...


def receiver_class(app: Any) -> type:
    """A subclass of ``app.events.Receiver`` (make one per app and keep it) that:

    * keeps epoch timestamps: ``event_from_message(localize=False)`` (the default shifts them
      by the sender's UTC offset, CELERY-INTERNALS §1);
    * checks each event on its own (``sanitize.clean_event``: nesting, integer size, finite
      numbers, string sizes) and counts and skips a bad one, where celery would raise out of
      ``drain_events`` and tear the connection down; the other events of a ``task.multi``
      message are kept;
    * counts and skips a message it cannot decode (``on_decode_error``), by kind;
    * counts into ``stats`` (a :class:`DecodeStats`, an extra keyword argument).
    """
    base: type = app.events.Receiver

    class EpochReceiver(base):  # type: ignore[misc]
        def __init__(self, *args: Any, stats: DecodeStats | None = None, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.stats = stats if stats is not None else DecodeStats()

        def event_from_message(self, body: Any, localize: bool = False,
                               now: Callable[[], float] = time.time,
                               *args: Any, **kwargs: Any) -> tuple[Any, Any]:
            stats = self.stats
            if not isinstance(body, dict) or "type" not in body:
                stats.skip(NOT_AN_EVENT)
                return _SKIP, body
            event = clean_event(body, stats.bad)
            if event is None:
                stats.malformed += 1
                return _SKIP, body
            if not isinstance(event["type"], str):
                stats.skip(field_kind("type"))
                return _SKIP, body
            try:
                result: tuple[Any, Any] = super().event_from_message(
                    event, False, now, *args, **kwargs)
            except TypeError:  # a clock that is not a number
                stats.skip(field_kind("clock"), "not a number")
                return _SKIP, body
            except Exception as exc:  # not foreseen: one event, never the connection
                stats.skip(UNDECODABLE, exc.__class__.__name__)
                return _SKIP, body
            stats.events += 1
            return result

        def process(self, type: Any, event: Any) -> None:
            if type is _SKIP:
                return
            try:
                super().process(type, event)
            except Exception as exc:  # the sink never raises; this is the last line of defence
                self.stats.skip(APPLY_FAILED, exc.__class__.__name__)

        def on_decode_error(self, message: Any, exc: Exception) -> None:
            # Not JSON (pickle is never accepted), corrupt, or compressed with an unknown codec.
            # The consumer is no_ack, so there is nothing to acknowledge.
            kind, unsupported = decode_failure(exc)
            self.stats.skip(kind, unsupported=unsupported)
            log.debug("skipped an undecodable event message: %s", exc.__class__.__name__)

    EpochReceiver.__name__ = EpochReceiver.__qualname__ = f"Epoch{base.__name__}"
    return EpochReceiver


def decode_failure(exc: BaseException) -> tuple[str, bool]:
    """(kind, unsupported) for what kombu could not decode: ``ContentDisallowed`` (pickle,
    yaml ...), a ``DecodeError`` wrapping the JSON error, or a broken envelope."""
    from kombu.exceptions import ContentDisallowed, DecodeError

    if isinstance(exc, ContentDisallowed):
        return UNSUPPORTED_CONTENT, True
    if isinstance(exc, DecodeError):
        cause = exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else None
        return json_failure(cause if cause is not None else exc), False
    return envelope_failure(exc)


def envelope_failure(exc: BaseException) -> tuple[str, bool]:
    """(kind, unsupported) for an error raised while kombu built a message from its envelope
    (no ``properties``, bad base64, a body that is not a string) or decompressed its body."""
    if isinstance(exc, RecursionError):
        return json_failure(exc), False
    if isinstance(exc, binascii.Error):
        return BAD_BASE64, False
    if isinstance(exc, (KeyError, AttributeError, TypeError, UnicodeError)):
        return BAD_ENVELOPE, False
    if isinstance(exc, ValueError):
        return INVALID_JSON, False
    return BAD_COMPRESSION, True


#: what building a message from a broken envelope raises (kombu's virtual transports build
#: it before the consumer's ``on_decode_error`` can see it, so it leaves ``drain_events``)
_ENVELOPE_ERRORS: Final = (LookupError, ValueError, TypeError, AttributeError, RecursionError)


#: the keys kombu's virtual ``Message`` looks up in an envelope
_ENVELOPE_KEYS: Final = ("properties", "delivery_tag")


def _broken_message(exc: BaseException, broker_errors: tuple[type[BaseException], ...]) -> bool:
    """True when ``exc`` (out of ``drain_events``) is one message's broken envelope. kombu's
    Redis transport counts KeyError among its connection errors (its poller's lookups of
    sockets and queues), so a KeyError is a message's only when it names an envelope key."""
    if isinstance(exc, KeyError):
        return bool(exc.args) and exc.args[0] in _ENVELOPE_KEYS
    return not isinstance(exc, broker_errors)


class _DroppedByKombu(logging.Handler):
    """Counts the envelopes kombu's Redis channel drops by itself (not JSON: it logs a warning
    and goes on), so they are counted as on the fast path. Only records of one thread."""

    def __init__(self, stats: DecodeStats) -> None:
        super().__init__(logging.WARNING)
        self.stats = stats
        self.thread_id = threading.get_ident()

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread_id and str(record.msg).startswith("Cannot process event"):
            self.stats.skip(INVALID_JSON)


@contextmanager
def _counting_kombu_drops(stats: DecodeStats) -> Iterator[None]:
    logger = logging.getLogger("kombu.transport.redis")
    handler = _DroppedByKombu(stats)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


class KombuSession:
    """One connection's life on celery's path: connect, consume, drain until stop or error."""

    def __init__(self, app: Any, url: str, sink: KombuSink, stop: threading.Event, *,
                 stats: DecodeStats, transport_options: Mapping[str, Any] | None = None,
                 wakeup: bool = True, flush_delay: float = 0.02, poll_interval: float = 0.25,
                 probe: Callable[[], BrokerIdentity | None] | None = None,
                 connect_options: Mapping[str, Any] | None = None,
                 shared_queue: str | None = None,
                 subscriptions: Callable[[str], int | None] | None = None) -> None:
        self.app = app
        #: Redis: how many patterns the clients of a name are subscribed to, as Redis sees
        #: them (``ingest_redis.pattern_subscriptions``): the session reports itself connected
        #: only once its own PSUBSCRIBE shows there; None: connected once consuming
        self.subscriptions = subscriptions
        self.shared_queue = shared_queue
        self.url = url
        self.sink = sink
        self.stop = stop
        self.stats = stats
        self.transport_options = dict(transport_options or {})
        self.wakeup = wakeup
        self.flush_delay = flush_delay
        self.poll_interval = poll_interval
        self.probe = probe
        #: more ``connection_for_read`` arguments (``ssl``: ``ingest_path.kombu_tls``)
        self.connect_options = dict(connect_options or {})
        self.receiver_cls = receiver_class(app)

    def run(self, on_connected: Callable[[BrokerIdentity | None], None]) -> None:
        """Returns when ``stop`` is set; raises whatever the broker client raises."""
        options = dict(self.transport_options)
        client_name = self._client_name(options) if self.subscriptions is not None else None
        kwargs: dict[str, Any] = {"transport_options": options} if options else {}
        kwargs.update(self.connect_options)
        with _counting_kombu_drops(self.stats), \
                self.app.connection_for_read(self.url, **kwargs) as conn:
            # Fail at once when the broker is down: the Ingestor does the (interruptible)
            # backoff. kombu's own retry loop sleeps and ignores stop requests.
            conn.ensure_connection(max_retries=0)
            recv = self.receiver_cls(conn, handlers={"*": self.sink.add}, app=self.app,
                                     stats=self.stats)
            recv.connect_max_retries = 0
            if self.shared_queue is not None:
                recv.queue = self._shared_queue(recv)
            with recv.consumer_context(wakeup=False) as (consumer_conn, channel, _consumers):
                def connected() -> None:
                    on_connected(self.probe() if self.probe is not None else None)

                def wake() -> None:
                    recv.wakeup_workers(channel=channel)

                self._drain(consumer_conn, connected, self._subscribed(client_name),
                            wake if self.wakeup else None)

    def _client_name(self, options: dict[str, Any]) -> str:
        """The name kombu's Redis connections give themselves (``CLIENT SETNAME``), by which
        ``subscriptions`` finds ours: the user's ``client_name`` transport option, else one
        of our own, unique to this session, put in ``options``."""
        configured = options.get("client_name") or (
            self.app.conf.broker_transport_options or {}).get("client_name")
        if configured:
            return str(configured)
        options["client_name"] = name = f"lazycelery-{os.getpid()}-{secrets.token_hex(4)}"
        return name

    def _subscribed(self, client_name: str | None) -> Callable[[], bool]:
        """Whether the event stream is subscribed on the broker now. AMQP: as soon as kombu
        consumes (queue.declare, queue.bind and basic.consume were answered). Redis: kombu
        sends PSUBSCRIBE at its first drain and never says when Redis took it, so until
        ``CLIENT LIST`` shows our pattern (or cannot tell: refused, or ``READY_WAIT`` gone)."""
        check = self.subscriptions
        if check is None or client_name is None:
            return lambda: True
        give_up = time.monotonic() + READY_WAIT

        def subscribed() -> bool:
            try:
                found = check(client_name)
            except OSError as exc:  # our own check failing must not fail kombu's session
                log.debug("CLIENT LIST unreadable (%s): subscribed assumed", exc)
                return True
            if found is None:
                log.debug("CLIENT LIST refused: subscribed assumed after the first read")
                return True
            if found == 0 and time.monotonic() > give_up:
                log.warning("Redis shows no pattern subscription of client %s after %.0f s: "
                            "reported subscribed anyway", client_name, READY_WAIT)
                return True
            return found > 0

        return subscribed

    def _shared_queue(self, recv: Any) -> Any:
        """The durable queue several recorders share, instead of the Receiver's own (the same
        declaration as on the AMQP fast path: ``ingest_amqp.shared_event_queue``)."""
        from kombu.entity import Queue

        from lazycelery.core.ingest_amqp import shared_event_queue

        assert self.shared_queue is not None
        spec = shared_event_queue(self.shared_queue, self.app)
        return Queue(spec.name, exchange=recv.exchange,  # type: ignore[no-untyped-call]
                     routing_key=spec.routing_key,
                     durable=True, auto_delete=False, exclusive=False,
                     queue_arguments=spec.arguments)

    def _drain(self, conn: Any, connected: Callable[[], None], subscribed: Callable[[], bool],
               wake: Callable[[], None] | None) -> None:
        """``ConsumerMixin.consume`` with batching: events wait in the sink at most
        ``flush_delay`` while more arrive, and are applied as soon as the stream pauses.

        ``connected`` is called once ``subscribed()`` says so, checked after each drain until
        then (kombu's Redis channel sends its PSUBSCRIBE at the first drain): readiness is
        never reported before an event published next would reach us.
        ``wake`` (the Receiver's wakeup broadcast) runs then too: the workers answer within
        milliseconds, so the Receiver's own wakeup (before that) loses the answers on Redis.
        """
        sink, stop = self.sink, self.stop
        broker_errors = tuple(conn.connection_errors) + tuple(conn.channel_errors)
        next_heartbeat = time.monotonic() + 1.0
        waiting: Callable[[], None] | None = connected
        while not stop.is_set():
            try:
                conn.drain_events(timeout=self.flush_delay if sink.pending or waiting
                                  else self.poll_interval)
            except TimeoutError:  # socket.timeout: nothing arrived, the stream is idle
                sink.flush()
            except OSError:
                if stop.is_set():
                    break
                raise
            except _ENVELOPE_ERRORS as exc:
                if not _broken_message(exc, broker_errors):
                    raise
                # One broken message (kombu's virtual channel could not build it), not a
                # broken connection: count it and read on.
                kind, unsupported = envelope_failure(exc)
                self.stats.skip(kind, unsupported=unsupported)
                sink.tick()
            else:
                if sink.due():
                    sink.flush()
                else:
                    sink.tick()
            if waiting is not None and subscribed():
                waiting()
                waiting = None
                if wake is not None:
                    wake()
            now = time.monotonic()
            if now >= next_heartbeat:  # AMQP heartbeats (a no-op on Redis)
                conn.heartbeat_check()
                next_heartbeat = now + 1.0
        sink.flush()
