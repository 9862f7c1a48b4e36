"""celery's own event path: an ``app.events.Receiver`` subclass drained in small batches."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, Protocol

from lazycelery.core.fastpath import DecodeStats

if TYPE_CHECKING:
    from lazycelery.core.ingest_redis import BrokerIdentity

__all__ = ["KombuSession", "receiver_class"]

log = logging.getLogger(__name__)

#: marks an event the receiver subclass refused (``process`` drops it)
_SKIP: Final = object()


class KombuSink(Protocol):
    """Where the receiver puts events (``lazycelery.core.batch.BatchSink``)."""

    @property
    def pending(self) -> bool: ...

    def add(self, event: Mapping[str, Any]) -> None: ...

    def due(self) -> bool: ...

    def flush(self) -> None: ...


def receiver_class(app: Any) -> type:
    """A subclass of ``app.events.Receiver`` (make one per app and keep it) that:

    * keeps epoch timestamps: ``event_from_message(localize=False)`` (the default shifts them
      by the sender's UTC offset, CELERY-INTERNALS §1);
    * counts and skips a body that is not an event (kombu would raise out of ``drain_events``
      and tear the connection down) and a message it cannot decode (``on_decode_error``);
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
            if not isinstance(body, dict) or "type" not in body:
                self.stats.malformed += 1
                return _SKIP, body
            try:
                result: tuple[Any, Any] = super().event_from_message(
                    body, False, now, *args, **kwargs)
            except TypeError:  # a clock that is not a number
                self.stats.malformed += 1
                return _SKIP, body
            self.stats.events += 1
            return result

        def process(self, type: Any, event: Any) -> None:
            if type is not _SKIP:
                super().process(type, event)

        def on_decode_error(self, message: Any, exc: Exception) -> None:
            # Not JSON (pickle is never accepted), corrupt, or compressed with an unknown codec.
            # The consumer is no_ack, so there is nothing to acknowledge.
            self.stats.unsupported += 1
            log.debug("skipped an undecodable event message: %s", exc)

    EpochReceiver.__name__ = EpochReceiver.__qualname__ = f"Epoch{base.__name__}"
    return EpochReceiver


class KombuSession:
    """One connection's life on celery's path: connect, consume, drain until stop or error."""

    def __init__(self, app: Any, url: str, sink: KombuSink, stop: threading.Event, *,
                 stats: DecodeStats, transport_options: Mapping[str, Any] | None = None,
                 wakeup: bool = True, flush_delay: float = 0.02, poll_interval: float = 0.25,
                 probe: Callable[[], BrokerIdentity | None] | None = None) -> None:
        self.app = app
        self.url = url
        self.sink = sink
        self.stop = stop
        self.stats = stats
        self.transport_options = dict(transport_options or {})
        self.wakeup = wakeup
        self.flush_delay = flush_delay
        self.poll_interval = poll_interval
        self.probe = probe
        self.receiver_cls = receiver_class(app)

    def run(self, on_connected: Callable[[BrokerIdentity | None], None]) -> None:
        """Returns when ``stop`` is set; raises whatever the broker client raises."""
        options = {"transport_options": self.transport_options} if self.transport_options else {}
        with self.app.connection_for_read(self.url, **options) as conn:
            # Fail at once when the broker is down: the Ingestor does the (interruptible)
            # backoff. kombu's own retry loop sleeps and ignores stop requests.
            conn.ensure_connection(max_retries=0)
            recv = self.receiver_cls(conn, handlers={"*": self.sink.add}, app=self.app,
                                     stats=self.stats)
            recv.connect_max_retries = 0
            with recv.consumer_context(wakeup=False) as (consumer_conn, channel, _consumers):
                on_connected(self.probe() if self.probe is not None else None)

                def wake() -> None:
                    recv.wakeup_workers(channel=channel)

                self._drain(consumer_conn, wake if self.wakeup else None)

    def _drain(self, conn: Any, wake: Callable[[], None] | None) -> None:
        """``ConsumerMixin.consume`` with batching: events wait in the sink at most
        ``flush_delay`` while more arrive, and are applied as soon as the stream pauses.

        ``wake`` (the Receiver's wakeup broadcast) runs after the first drain: kombu's Redis
        channel only sends its PSUBSCRIBE from there, and the workers answer within
        milliseconds, so the Receiver's own wakeup (before that) loses the answers on Redis.
        """
        sink, stop = self.sink, self.stop
        next_heartbeat = time.monotonic() + 1.0
        first_timeout = self.flush_delay if wake is not None else self.poll_interval
        while not stop.is_set():
            try:
                conn.drain_events(timeout=self.flush_delay if sink.pending else first_timeout)
            except TimeoutError:  # socket.timeout: nothing arrived, the stream is idle
                sink.flush()
            except OSError:
                if stop.is_set():
                    break
                raise
            else:
                if sink.due():
                    sink.flush()
            if wake is not None:
                wake()
                wake = None
                first_timeout = self.poll_interval
            now = time.monotonic()
            if now >= next_heartbeat:  # AMQP heartbeats (a no-op on Redis)
                conn.heartbeat_check()
                next_heartbeat = now + 1.0
        sink.flush()
