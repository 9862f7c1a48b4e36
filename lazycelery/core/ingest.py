"""The ingest thread: reads celery events (fast Redis or AMQP path, or celery's Receiver),
applies them to the TaskIndex in batches, reconnects with backoff, detects gaps and reports its
status. The status vocabulary (``ingest_status``), the batching (``batch``) and the choice of
reader (``ingest_path``) have modules of their own; their public names are importable here."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Final, Protocol

from lazycelery.core.backlog import Backlog
from lazycelery.core.batch import FLUSH_DELAY, BatchSink, OnBatch
from lazycelery.core.index import TaskIndex
from lazycelery.core.ingest_path import (
    AMQP_SCHEMES,
    FAST,
    KOMBU,
    MODES,
    kombu_tls,
    kombu_url,
    resolve_path,
    url_scheme,
)
from lazycelery.core.ingest_status import (
    CONNECTED,
    CONNECTING,
    RECONNECTING,
    STOPPED,
    Gap,
    IngestStatus,
    backoff_delay,
    short_reason,
)
from lazycelery.mask import Masker
from lazycelery.urls import error_line

if TYPE_CHECKING:
    import celery

    from lazycelery.core.fastpath import DecodeStats, EventDecoder
    from lazycelery.core.ingest_redis import BrokerIdentity, RedisEndpoint

__all__ = [
    "CONNECTED",
    "CONNECTING",
    "FAST",
    "KOMBU",
    "MODES",
    "RECONNECTING",
    "STOPPED",
    "BatchSink",
    "Gap",
    "IngestStatus",
    "Ingestor",
    "backoff_delay",
    "resolve_path",
    "short_reason",
]

log = logging.getLogger(__name__)

#: how often a blocked read looks at the stop flag (bounds stop latency)
POLL_INTERVAL: Final = 0.25

OnStatus = Callable[[IngestStatus], None]
OnNotice = Callable[[str], None]
#: seconds between two status updates that only change the bad-input counters
BAD_STATUS_EVERY: Final = 1.0


class _Session(Protocol):
    def run(self, on_connected: Callable[[BrokerIdentity | None], None]) -> None: ...


class Ingestor:
    """Owns the ingest thread: one reader, one writer of ``index``, reconnecting forever."""

    def __init__(self, broker_url: str, index: TaskIndex, *, mode: str = "auto",
                 app: celery.Celery | None = None,
                 transport_options: Mapping[str, Any] | None = None,
                 on_batch: OnBatch | None = None, on_status: OnStatus | None = None,
                 on_notice: OnNotice | None = None, wakeup: bool = True,
                 batch_max: int = 512,
                 keep: Callable[[Mapping[str, Any]], bool] | None = None,
                 shared_queue: str | None = None, masker: Masker | None = None,
                 read_ahead: int | None = None) -> None:
        self.broker_url = broker_url
        self.index = index
        self.mode = mode
        self.app = app
        self.transport_options: dict[str, Any] = dict(transport_options or {})
        self.on_status = on_status
        #: one-line reports of bad input (``sanitize.BadInput.report``), for a stderr
        self.on_notice = on_notice
        self.wakeup = wakeup
        #: AMQP only: consume from this durable queue, shared with other consumers (competing
        #: consumers: each event reaches one of them), instead of an exclusive one of our own
        self.shared_queue = shared_queue
        self.path: str = resolve_path(broker_url, mode, app, self._fast_options())
        self.status = IngestStatus(state=CONNECTING, path=self.path)
        #: masking applied to every event before the index sees it: the default rules unless
        #: the caller passes its configured masker (``lazycelery.mask.settings.masker_for``)
        self.masker = masker if masker is not None else Masker()
        self._sink = BatchSink(index, on_batch, batch_max, on_bad=self._report_bad, keep=keep,
                               masker=self.masker)
        self._bad_next = 0.0
        #: whether the reader is behind its broker (the fast Redis path tells; others: never)
        self.backlog = Backlog()
        #: fast paths: bytes read ahead of the ingest thread at most (None: the default,
        #: ``read_ahead.DEFAULT_READ_AHEAD``), so a busy process is not cut off by Redis nor
        #: left to RabbitMQ's queue TTL
        self.read_ahead = read_ahead
        self._session: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._app_lock = threading.Lock()
        self._built_app: Any = None  # made on first use when no app was given
        self._endpoint: RedisEndpoint | None = self._redis_endpoint()
        self._stats: DecodeStats | None = None
        self._decoder: EventDecoder | None = None
        self._attempt = 0
        self._identity: BrokerIdentity | None = None
        self._lost_at: float | None = None
        self._connected_at = 0.0
        self._lost_error: str | None = None

    # ------------------------------------------------------------------ public

    def read_ahead_bytes(self) -> int:
        """Bytes the fast path's reader (Redis, AMQP) holds ahead of the ingest thread now (0
        on the kombu path, or between sessions)."""
        ahead = getattr(self._session, "read_ahead", None)
        return int(ahead.buffered) if ahead is not None else 0

    def start(self) -> None:
        """Start the daemon thread (once)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="lazycelery-ingest", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Ask the thread to stop and wait for it, never longer than ``timeout`` seconds."""
        self._stop.set()
        thread = self._thread
        if thread is None:
            self._set_status(STOPPED)
            return
        if thread is not threading.current_thread():
            thread.join(max(0.0, timeout))

    def events_per_second(self) -> float:
        return self._sink.rate()

    def counters(self) -> dict[str, int]:
        """Events applied, batches, what the reader skipped (malformed / unsupported), and
        the bad input skipped or repaired anywhere (reader or index)."""
        out = {"applied": self._sink.events, "batches": self._sink.batches}
        if self._stats is not None:
            out.update(self._stats.as_dict())
        bad = self.index.bad
        out.update({"skipped": bad.skipped, "repaired": bad.repaired})
        return out

    def bad_input(self) -> dict[str, int]:
        """Bad input skipped or repaired so far, by kind (``invalid JSON``, ``bad field
        timestamp`` ...); read from the ingest thread's counters (a copy)."""
        return dict(self.index.bad.counts)

    # ------------------------------------------------------------------ configuration

    def _fast_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if self.app is not None:
            options.update(self.app.conf.broker_transport_options or {})
        options.update(self.transport_options)
        return options

    def _redis_endpoint(self) -> RedisEndpoint | None:
        from lazycelery.core.ingest_redis import FAST_SCHEMES, parse_redis_url

        if url_scheme(self.broker_url) not in FAST_SCHEMES:
            return None
        use_ssl = self.app.conf.broker_use_ssl if self.app is not None else None
        try:
            return parse_redis_url(self.broker_url, use_ssl if isinstance(use_ssl, dict) else None)
        except ValueError:
            return None

    def _connect_timeout(self) -> float:
        if self.app is not None:
            value = self.app.conf.broker_connection_timeout
            if isinstance(value, (int, float)) and value > 0:
                return float(value)
        return 4.0

    def _celery_app(self) -> Any:
        """The given app, or one built for the broker URL (celery imported on first use)."""
        if self.app is not None:
            return self.app
        with self._app_lock:
            if self._built_app is None:
                from celery import Celery

                app = Celery("lazycelery", broker=kombu_url(self.broker_url),
                             set_as_current=False)
                app.conf.broker_transport_options = dict(self.transport_options)
                self._built_app = app
            return self._built_app

    def _make_session(self) -> _Session:
        from lazycelery.core.fastpath import DecodeStats

        if self._stats is None:
            # the readers count bad input where the index does: one BadInput for the stream
            self._stats = DecodeStats(bad=self.index.bad)
        if self.path == FAST:
            if url_scheme(self.broker_url) in AMQP_SCHEMES:
                return self._amqp_session()
            return self._fast_session()
        from lazycelery.core.ingest_kombu import KombuSession

        endpoint = self._endpoint
        probe: Callable[[], BrokerIdentity | None] | None = None
        subscriptions: Callable[[str], int | None] | None = None
        if endpoint is not None:
            from lazycelery.core.ingest_redis import pattern_subscriptions, probe_identity

            def probe() -> BrokerIdentity | None:
                return probe_identity(endpoint)

            def subscriptions(client_name: str) -> int | None:
                return pattern_subscriptions(endpoint, client_name, self._connect_timeout())

        # A built app has the transport options in its conf; a given one gets them on top.
        given_options = self.transport_options if self.app is not None else None
        return KombuSession(self._celery_app(), kombu_url(self.broker_url), self._sink,
                            self._stop, stats=self._stats, transport_options=given_options,
                            wakeup=self.wakeup, flush_delay=FLUSH_DELAY,
                            poll_interval=POLL_INTERVAL, probe=probe,
                            shared_queue=self.shared_queue, subscriptions=subscriptions,
                            connect_options=kombu_tls(self.broker_url, self.app))

    def _fast_session(self) -> _Session:
        from lazycelery.core.fastpath import EventDecoder, LocalClock
        from lazycelery.core.ingest_redis import RedisFastSession, event_channel_pattern

        assert self._endpoint is not None  # resolve_path checked that the URL parses
        if self._decoder is None:
            # With the user's app, share its clock as the Receiver does (app.clock).
            clock = self.app.clock if self.app is not None else LocalClock()
            self._decoder = EventDecoder(clock, self._stats)
        exchange = str(self.app.conf.event_exchange) if self.app is not None else "celeryev"
        pattern = event_channel_pattern(self._endpoint.db, self._fast_options(), exchange)
        return RedisFastSession(self._endpoint, pattern, self._decoder, self._sink, self._stop,
                           connect_timeout=self._connect_timeout(), poll_interval=POLL_INTERVAL,
                           on_subscribed=self._wake_workers if self.wakeup else None,
                           backlog=self.backlog, read_ahead_limit=self.read_ahead)

    def _amqp_session(self) -> _Session:
        from lazycelery.core.fastpath import LocalClock
        from lazycelery.core.ingest_amqp import (
            SHARED_READ_AHEAD,
            AmqpDecoder,
            AmqpFastSession,
            EventQueue,
            event_queue,
            parse_amqp_url,
            shared_event_queue,
        )

        app = self.app
        if not isinstance(self._decoder, AmqpDecoder):
            clock = app.clock if app is not None else LocalClock()
            self._decoder = AmqpDecoder(clock, self._stats)
        heartbeat = app.conf.broker_heartbeat if app is not None else None
        endpoint = parse_amqp_url(self.broker_url,
                                  app.conf.broker_use_ssl if app is not None else None,
                                  heartbeat if isinstance(heartbeat, (int, float)) else None)
        name = self.shared_queue

        def queue() -> EventQueue:
            return event_queue(app) if name is None else shared_event_queue(name, app)

        return AmqpFastSession(endpoint, queue, self._decoder, self._sink,
                               self._stop, connect_timeout=self._connect_timeout(),
                               poll_interval=POLL_INTERVAL,
                               on_subscribed=self._wake_workers if self.wakeup else None,
                               read_ahead_limit=self.read_ahead if self.read_ahead is not None
                               or name is None else SHARED_READ_AHEAD)

    def _wake_workers(self) -> None:
        """What ``Receiver.wakeup_workers`` does on connect: a ``heartbeat`` broadcast, so
        workers announce themselves now rather than at their next heartbeat. Sent from a
        helper thread: building the celery app costs ~0.3 s of imports the first time."""
        def send() -> None:
            try:
                app = self._celery_app()
                # to the broker we read, which may not be the given app's own broker_url
                with app.connection_for_write(kombu_url(self.broker_url),
                                              transport_options=self.transport_options,
                                              **kombu_tls(self.broker_url, self.app)) as conn:
                    app.control.broadcast("heartbeat", connection=conn)
            except Exception as exc:
                log.debug("wakeup broadcast failed: %s", error_line(exc, limit=300))

        threading.Thread(target=send, name="lazycelery-wakeup", daemon=True).start()

    # ------------------------------------------------------------------ the loop

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    self._session = self._make_session()
                    self._session.run(self._on_connected)
                    if not self._stop.is_set():
                        raise ConnectionError("the event stream ended")
                except Exception as exc:
                    if self._stop.is_set():
                        break
                    log.debug("ingest connection failed", exc_info=True)
                    self._on_failure(exc)
                    self._stop.wait(self.status.next_retry_in or 1.0)
                finally:
                    self._sink.flush()
                    self.backlog.stopped()
        finally:
            self._sink.flush()
            self.masker.save()
            self._report_bad(final=True)
            self._set_status(STOPPED)
            if self._built_app is not None:
                try:
                    self._built_app.close()
                except Exception:
                    log.debug("closing the celery app failed", exc_info=True)

    def _on_connected(self, identity: BrokerIdentity | None) -> None:
        gap = self.status.gap
        now = time.time()
        if self._lost_at is not None:
            gap = Gap(start=self._lost_at, end=now, seconds=max(0.0, now - self._lost_at),
                      reason=self._gap_reason(identity))
            self._lost_at = None
            log.info("event stream resumed after a %s", gap.describe())
        if identity is not None:
            self._identity = identity
        self._connected_at = now
        self._attempt = 0
        self._set_status(CONNECTED, gap=gap)

    def _on_failure(self, exc: BaseException) -> None:
        error = error_line(exc, limit=300)
        if self.status.state == CONNECTED:
            # Events may be lost from the last one we applied, not from when the dead
            # connection was noticed (Redis drops an overflowing subscriber silently).
            now = time.time()
            self._lost_at = self._gap_start(now)
            self._lost_error = error
        self._attempt += 1
        delay = backoff_delay(self._attempt)
        self._set_status(RECONNECTING, attempt=self._attempt, next_retry_in=delay,
                         last_error=error, retry_at=time.time() + delay)

    def _gap_start(self, now: float) -> float:
        """When events stopped arriving: the sender time of the last event applied (a consumer
        that fell behind, as before a Redis overflow, applies old events up to the drop), else
        when it was applied, else now. Times outside this connection (or a sender clock that
        is ahead of ours) are not trusted."""
        start = now
        for candidate in (self._sink.last_event_at, self._sink.last_event_ts):
            if candidate is not None and self._connected_at <= candidate < start:
                start = candidate
        return start

    def _gap_reason(self, identity: BrokerIdentity | None) -> str:
        before, error = self._identity, self._lost_error or "connection lost"
        if before is not None and identity is not None:
            if before.run_id and identity.run_id and before.run_id != identity.run_id:
                return "broker restarted"
            old, new = before.overflow_disconnections, identity.overflow_disconnections
            if old is not None and new is not None:
                if new > old:
                    return "overflow: Redis dropped the subscriber (client-output-buffer-limit)"
            elif "closed by server" in error:
                # Redis < 7.2 does not count overflow disconnections; a server that stayed up
                # and closed a subscriber almost always did so because its buffer overflowed.
                return ("dropped by Redis while it stayed up (likely an output-buffer overflow: "
                        "client-output-buffer-limit pubsub)")
        return f"disconnected: {short_reason(error)}"

    def _report_bad(self, final: bool = False) -> None:
        """Bad input not yet reported: the counters into the status (at most once a second)
        and due lines (one a kind every ``sanitize.REPORT_EVERY`` s) to ``on_notice``.
        Never a reconnect, a gap or a reconciliation: the connection is fine."""
        now = time.monotonic()
        if not final and now < self._bad_next:
            return
        self._bad_next = now + BAD_STATUS_EVERY
        bad = self.index.bad
        lines = bad.report(force=final)
        if lines and self.on_notice is not None:
            for line in lines:
                try:
                    self.on_notice(line)
                except Exception as exc:
                    log.warning("on_notice callback failed: %s", error_line(exc, limit=300))
        old = self.status
        if (old.skipped, old.repaired) != (bad.skipped, bad.repaired):
            self._publish(replace(old, skipped=bad.skipped, repaired=bad.repaired))

    def _publish(self, new: IngestStatus) -> None:
        self.status = new
        if self.on_status is not None:
            try:
                self.on_status(new)
            except Exception as exc:
                log.warning("on_status callback failed: %s", error_line(exc, limit=300))

    def _set_status(self, state: str, **changes: Any) -> None:
        old = self.status
        since = old.since if state == old.state else time.time()
        defaults: dict[str, Any] = {"attempt": 0, "next_retry_in": None, "last_error": None,
                                    "retry_at": None}
        if state in (RECONNECTING, STOPPED):
            defaults["last_error"] = old.last_error
        defaults.update(changes)
        new = replace(old, state=state, since=since, **defaults)
        if new != old:
            self._publish(new)
