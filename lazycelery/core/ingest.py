"""The ingest thread: reads celery events (fast Redis path or celery's Receiver), applies them to
the TaskIndex in batches, reconnects with backoff, detects gaps and reports its status."""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final, Protocol

from lazycelery.core.index import TaskIndex
from lazycelery.core.model import TaskRecord, WorkerRecord
from lazycelery.core.sanitize import TIME_MAX
from lazycelery.errors import UsageError

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
    "one_line_error",
    "resolve_path",
    "short_reason",
]

log = logging.getLogger(__name__)

CONNECTING: Final = "connecting"
CONNECTED: Final = "connected"
RECONNECTING: Final = "reconnecting"
STOPPED: Final = "stopped"
FAST: Final = "fast"
KOMBU: Final = "kombu"
MODES: Final = ("auto", FAST, KOMBU)

# Redis PUB/SUB keeps nothing: every second spent waiting after the broker is back is a
# second of lost events, so the cap is short (a refused connect costs the broker nothing).
BACKOFF_MAX: Final = 5.0
FAST_RETRIES: Final = 5
#: how long an event may wait in the buffer while more keep arriving
FLUSH_DELAY: Final = 0.02
#: how often a blocked read looks at the stop flag (bounds stop latency)
POLL_INTERVAL: Final = 0.25
#: time constant of the events-per-second average
RATE_TAU: Final = 2.0

OnBatch = Callable[[Sequence[Mapping[str, Any]], Sequence[TaskRecord | WorkerRecord | None]], None]
OnStatus = Callable[["IngestStatus"], None]
OnNotice = Callable[[str], None]
#: seconds between two status updates that only change the bad-input counters
BAD_STATUS_EVERY: Final = 1.0


# --------------------------------------------------------------------------- status


@dataclass(frozen=True)
class Gap:
    """A stretch of time in which events were lost (disconnect, broker restart, overflow)."""

    start: float
    end: float
    seconds: float
    reason: str

    def describe(self) -> str:
        return f"gap of {self.seconds:.1f} s ({self.reason})"


@dataclass(frozen=True)
class IngestStatus:
    """The ingest thread's state, swapped whole on every change (safe to read from any thread)."""

    state: str
    path: str
    attempt: int = 0
    next_retry_in: float | None = None
    last_error: str | None = None
    since: float = field(default_factory=time.time)
    gap: Gap | None = None
    #: time.time() of the next connection attempt while reconnecting (for a countdown)
    retry_at: float | None = None
    #: bad events (or messages) skipped, and fields of applied events dropped or cut, since
    #: the start (``sanitize.BadInput``; updated at most once a second)
    skipped: int = 0
    repaired: int = 0

    def describe(self) -> str:
        """One human line: ``connected (fast path)``,
        ``reconnecting: attempt 3, next try in 4.0 s (Connection refused)``."""
        if self.state == RECONNECTING:
            text = f"reconnecting: attempt {self.attempt}"
            if self.next_retry_in is not None:
                text += f", next try in {self.next_retry_in:.1f} s"
            if self.last_error:
                text += f" ({short_reason(self.last_error)})"
            return text
        if self.state == STOPPED:
            return STOPPED
        return f"{self.state} ({self.path} path)"


def backoff_delay(attempt: int) -> float:
    """1 s for the first five attempts (a restarting broker is usually back within seconds,
    and every second we wait after that is lost events), then 2, 4, 5, 5 ... s."""
    if attempt <= FAST_RETRIES:
        return 1.0
    return float(min(BACKOFF_MAX, 2 ** (attempt - FAST_RETRIES)))


_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>,]+")
_USERINFO = re.compile(r"(//[^/@:\s]*:)[^@/\s]+@")
_ERRNO_PREFIX = re.compile(r"^\[Errno -?\d+\]\s*")


def _mask(url: str) -> str:
    try:
        from lazycelery.config import mask_url
    except ImportError:  # pragma: no cover - config.py is always there in a release
        return _USERINFO.sub(r"\1********@", url)
    return mask_url(url)


def one_line_error(exc: BaseException, limit: int = 300) -> str:
    """The exception as one line with every URL masked (broker errors may quote the URL)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    text = _URL.sub(lambda m: _mask(m.group(0)), text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def short_reason(error: str) -> str:
    """The last sentence of an error: ``Error 111 connecting to h:1. Connection refused.``
    -> ``Connection refused``."""
    text = _ERRNO_PREFIX.sub("", error.strip()).rstrip(".")
    parts = [part for part in text.split(". ") if part.strip()]
    return parts[-1].strip() if parts else text


# --------------------------------------------------------------------------- batching


class BatchSink:
    """Buffers events from the reader and applies them to the index in batches.

    Only the ingest thread calls ``add``/``extend``/``flush``: the single writer. A batch is
    applied when it reaches ``batch_max`` or when the reader sees the stream pause (it calls
    ``flush``), so no timer runs per event.
    """

    def __init__(self, index: TaskIndex, on_batch: OnBatch | None = None,
                 batch_max: int = 512, on_bad: Callable[[], None] | None = None) -> None:
        if batch_max < 1:
            raise ValueError("batch_max must be at least 1")
        self.index = index
        self.on_batch = on_batch
        self.batch_max = batch_max
        #: called from ``tick`` while bad input has not been reported (it rate-limits itself)
        self.on_bad = on_bad
        self.bad = index.bad
        self.buffer: list[Mapping[str, Any]] = []
        self.first_at = 0.0
        self.events = 0
        self.batches = 0
        #: wall-clock time the last batch was applied, and the sender time of its last event:
        #: where a gap starts, if one follows (see ``Ingestor._on_failure``)
        self.last_event_at: float | None = None
        self.last_event_ts: float | None = None
        # (rate, monotonic time): a leaky integrator, swapped whole so readers see a pair
        self._rate: tuple[float, float] = (0.0, time.monotonic())

    @property
    def pending(self) -> bool:
        return bool(self.buffer)

    def add(self, event: Mapping[str, Any]) -> None:
        buffer = self.buffer
        if not buffer:
            self.first_at = time.monotonic()
        buffer.append(event)
        if len(buffer) >= self.batch_max:
            self.flush()

    def extend(self, events: Sequence[Mapping[str, Any]]) -> None:
        if not self.buffer:
            self.first_at = time.monotonic()
        self.buffer.extend(events)
        if len(self.buffer) >= self.batch_max:
            self.flush()

    def due(self) -> bool:
        """True when the oldest buffered event has waited ``FLUSH_DELAY``."""
        return bool(self.buffer) and time.monotonic() - self.first_at >= FLUSH_DELAY

    def tick(self) -> None:
        """Readers call this (through ``flush``) at least every poll interval: bad input not
        yet reported goes to ``on_bad``. One attribute test when there is none."""
        if self.bad.pending and self.on_bad is not None:
            self.on_bad()

    def flush(self) -> None:
        if not self.buffer:
            self.tick()
            return
        batch, self.buffer = self.buffer, []
        records = self.index.apply_batch(batch)
        self.last_event_at = time.time()
        sent = batch[-1].get("timestamp")  # O(1): a batch is in arrival order
        if sent.__class__ is float and 0.0 <= sent <= TIME_MAX:
            self.last_event_ts = sent
        self.events += len(batch)
        self.batches += 1
        now = time.monotonic()
        rate, at = self._rate
        self._rate = (rate * math.exp(-(now - at) / RATE_TAU) + len(batch) / RATE_TAU, now)
        if self.on_batch is not None:
            try:
                self.on_batch(batch, records)
            except Exception as exc:
                # one line, never a traceback on the user's terminal
                log.warning("on_batch callback failed: %s", one_line_error(exc))
        self.tick()

    def rate(self) -> float:
        """Events per second, exponentially averaged over about ``RATE_TAU`` seconds."""
        rate, at = self._rate
        return rate * math.exp(-max(0.0, time.monotonic() - at) / RATE_TAU)


# --------------------------------------------------------------------------- path choice


#: URL schemes of the AMQP fast path (``lazycelery.core.ingest_amqp``, imported lazily)
AMQP_SCHEMES: Final = frozenset({"amqp", "amqps", "pyamqp"})


def _scheme(url: str) -> str:
    return url.partition("://")[0].lower() if "://" in url else ""


def _fast_unsupported(url: str, app: Any, transport_options: Mapping[str, Any]) -> str | None:
    """Why the fast path cannot read this broker (one line), or None when it can."""
    from lazycelery.core.ingest_redis import FAST_SCHEMES, parse_redis_url

    scheme = _scheme(url)
    if scheme in AMQP_SCHEMES:
        from lazycelery.core.ingest_amqp import amqp_unsupported

        return amqp_unsupported(url, app, transport_options)
    if scheme not in FAST_SCHEMES:
        return (f"the fast path needs a Redis or AMQP broker (redis://, rediss://, "
                f"redis+socket://, unix://, amqp://, amqps://, pyamqp://), "
                f"not {scheme or 'this'}://")
    if ";" in url:
        return "the fast path reads one Redis server, not a failover list"
    if "credential_provider" in url or "credential_provider" in transport_options:
        return "the fast path does not support credential_provider"
    if app is not None:
        serializer = str(app.conf.event_serializer or "json")
        if serializer != "json":
            return f"events are serialized as {serializer}; the fast path decodes JSON only"
    try:
        parse_redis_url(url)
    except ValueError as exc:
        return str(exc)
    try:
        import hiredis  # noqa: F401
    except ImportError:
        return "the fast path needs hiredis (pip install 'redis[hiredis]')"
    return None


def resolve_path(broker_url: str, mode: str = "auto", app: Any = None,
                 transport_options: Mapping[str, Any] | None = None) -> str:
    """``fast`` or ``kombu`` for ``--ingest auto|fast|kombu``; ``UsageError`` when impossible."""
    if mode not in MODES:
        raise UsageError(f"--ingest must be auto, fast or kombu, not {mode!r}")
    if mode == KOMBU:
        return KOMBU
    reason = _fast_unsupported(broker_url, app, transport_options or {})
    if reason is None:
        return FAST
    if mode == FAST:
        raise UsageError(f"--ingest fast: {reason}")
    return KOMBU


def _kombu_url(url: str) -> str:
    """redis-py's ``unix:///path?db=N`` is kombu's ``redis+socket:///path?virtual_host=N``."""
    if _scheme(url) != "unix":
        return url
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    query = [("virtual_host" if key == "db" else key, value)
             for key, value in parse_qsl(parts.query)]
    return urlunsplit(parts._replace(scheme="redis+socket", query=urlencode(query)))


# --------------------------------------------------------------------------- the thread


class _Session(Protocol):
    def run(self, on_connected: Callable[[BrokerIdentity | None], None]) -> None: ...


class Ingestor:
    """Owns the ingest thread: one reader, one writer of ``index``, reconnecting forever."""

    def __init__(self, broker_url: str, index: TaskIndex, *, mode: str = "auto",
                 app: celery.Celery | None = None,
                 transport_options: Mapping[str, Any] | None = None,
                 on_batch: OnBatch | None = None, on_status: OnStatus | None = None,
                 on_notice: OnNotice | None = None, wakeup: bool = True,
                 batch_max: int = 512) -> None:
        self.broker_url = broker_url
        self.index = index
        self.mode = mode
        self.app = app
        self.transport_options: dict[str, Any] = dict(transport_options or {})
        self.on_status = on_status
        #: one-line reports of bad input (``sanitize.BadInput.report``), for a stderr
        self.on_notice = on_notice
        self.wakeup = wakeup
        self.path: str = resolve_path(broker_url, mode, app, self._fast_options())
        self.status = IngestStatus(state=CONNECTING, path=self.path)
        self._sink = BatchSink(index, on_batch, batch_max, on_bad=self._report_bad)
        self._bad_next = 0.0
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

        if _scheme(self.broker_url) not in FAST_SCHEMES:
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

                app = Celery("lazycelery", broker=_kombu_url(self.broker_url),
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
            if _scheme(self.broker_url) in AMQP_SCHEMES:
                return self._amqp_session()
            return self._fast_session()
        from lazycelery.core.ingest_kombu import KombuSession

        endpoint = self._endpoint
        probe: Callable[[], BrokerIdentity | None] | None = None
        if endpoint is not None:
            from lazycelery.core.ingest_redis import probe_identity

            def probe() -> BrokerIdentity | None:
                return probe_identity(endpoint)

        # A built app has the transport options in its conf; a given one gets them on top.
        given_options = self.transport_options if self.app is not None else None
        return KombuSession(self._celery_app(), _kombu_url(self.broker_url), self._sink,
                            self._stop, stats=self._stats, transport_options=given_options,
                            wakeup=self.wakeup, flush_delay=FLUSH_DELAY,
                            poll_interval=POLL_INTERVAL, probe=probe)

    def _fast_session(self) -> _Session:
        from lazycelery.core.fastpath import EventDecoder, FastSession, LocalClock
        from lazycelery.core.ingest_redis import event_channel_pattern

        assert self._endpoint is not None  # resolve_path checked that the URL parses
        if self._decoder is None:
            # With the user's app, share its clock as the Receiver does (app.clock).
            clock = self.app.clock if self.app is not None else LocalClock()
            self._decoder = EventDecoder(clock, self._stats)
        exchange = str(self.app.conf.event_exchange) if self.app is not None else "celeryev"
        pattern = event_channel_pattern(self._endpoint.db, self._fast_options(), exchange)
        return FastSession(self._endpoint, pattern, self._decoder, self._sink, self._stop,
                           connect_timeout=self._connect_timeout(), poll_interval=POLL_INTERVAL,
                           on_subscribed=self._wake_workers if self.wakeup else None)

    def _amqp_session(self) -> _Session:
        from lazycelery.core.fastpath import LocalClock
        from lazycelery.core.ingest_amqp import (
            AmqpDecoder,
            AmqpFastSession,
            event_queue,
            parse_amqp_url,
        )

        app = self.app
        if not isinstance(self._decoder, AmqpDecoder):
            clock = app.clock if app is not None else LocalClock()
            self._decoder = AmqpDecoder(clock, self._stats)
        heartbeat = app.conf.broker_heartbeat if app is not None else None
        endpoint = parse_amqp_url(self.broker_url,
                                  app.conf.broker_use_ssl if app is not None else None,
                                  heartbeat if isinstance(heartbeat, (int, float)) else None)
        return AmqpFastSession(endpoint, lambda: event_queue(app), self._decoder, self._sink,
                               self._stop, connect_timeout=self._connect_timeout(),
                               poll_interval=POLL_INTERVAL,
                               on_subscribed=self._wake_workers if self.wakeup else None)

    def _wake_workers(self) -> None:
        """What ``Receiver.wakeup_workers`` does on connect: a ``heartbeat`` broadcast, so
        workers announce themselves now rather than at their next heartbeat. Sent from a
        helper thread: building the celery app costs ~0.3 s of imports the first time."""
        def send() -> None:
            try:
                app = self._celery_app()
                # to the broker we read, which may not be the given app's own broker_url
                with app.connection_for_write(_kombu_url(self.broker_url),
                                              transport_options=self.transport_options) as conn:
                    app.control.broadcast("heartbeat", connection=conn)
            except Exception as exc:
                log.debug("wakeup broadcast failed: %s", one_line_error(exc))

        threading.Thread(target=send, name="lazycelery-wakeup", daemon=True).start()

    # ------------------------------------------------------------------ the loop

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    self._make_session().run(self._on_connected)
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
        finally:
            self._sink.flush()
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
        error = one_line_error(exc)
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
                    log.warning("on_notice callback failed: %s", one_line_error(exc))
        old = self.status
        if (old.skipped, old.repaired) != (bad.skipped, bad.repaired):
            self._publish(replace(old, skipped=bad.skipped, repaired=bad.repaired))

    def _publish(self, new: IngestStatus) -> None:
        self.status = new
        if self.on_status is not None:
            try:
                self.on_status(new)
            except Exception as exc:
                log.warning("on_status callback failed: %s", one_line_error(exc))

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
