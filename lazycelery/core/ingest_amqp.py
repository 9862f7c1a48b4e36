"""The AMQP fast path: py-amqp declares the event queue, a buffered frame reader and msgspec do the rest."""

from __future__ import annotations

import collections
import logging
import struct
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl, unquote, urlsplit

import msgspec

from lazycelery.core.fastpath import (
    JSON_CONTENT_TYPE,
    EventDecoder,
    decode_json_body,
    has_type_marker,
    json_failure,
)
from lazycelery.core.read_ahead import DEFAULT_READ_AHEAD, Keepalive, ReadAhead
from lazycelery.core.sanitize import (
    BAD_COMPRESSION,
    BAD_ENVELOPE,
    NOT_AN_EVENT,
    SCREEN,
    TOO_DEEP,
    UNDECODABLE,
    UNSUPPORTED_CONTENT,
)
from lazycelery.urls import amqp_tls

if TYPE_CHECKING:
    from lazycelery.core.batch import EventSink
    from lazycelery.core.ingest_redis import BrokerIdentity

__all__ = [
    "AMQP_SCHEMES",
    "SHARED_QUEUE_MAX_LENGTH",
    "SHARED_READ_AHEAD",
    "AmqpDecoder",
    "AmqpEndpoint",
    "AmqpFastSession",
    "EventQueue",
    "amqp_unsupported",
    "decode_amqp_message",
    "event_queue",
    "parse_amqp_url",
    "shared_event_queue",
]

log = logging.getLogger(__name__)

#: URL schemes the AMQP fast path reads (kombu's py-amqp transport names)
AMQP_SCHEMES: Final = frozenset({"amqp", "amqps", "pyamqp"})
_PORTS: Final = {"amqp": 5672, "pyamqp": 5672, "amqps": 5671}
#: what one socket read asks for (py-amqp asks for exactly one frame part: ~9 recv a message)
READ_SIZE: Final = 1 << 18
#: a take of fewer reads than this waits ``TRICKLE_WAIT`` seconds for more (see ``_pump``)
TRICKLE_READS: Final = 16
TRICKLE_WAIT: Final = 0.005
#: a heartbeat frame (type 8, channel 0, empty payload)
HEARTBEAT: Final = b"\x08\x00\x00\x00\x00\x00\x00\xce"
_JSON: Final = JSON_CONTENT_TYPE.encode()
#: content types kombu accepts whatever ``accept`` says (decoded as text: never an event)
_TRUSTED: Final = frozenset({"application/data", "application/text"})
_FRAME_HEADER: Final = struct.Struct(">BHI")
_METHOD: Final = struct.Struct(">HH")
_HEADER: Final = struct.Struct(">HHQH")
_LONG: Final = struct.Struct(">I")
_FRAME_END: Final = 0xCE
_METHOD_FRAME, _HEADER_FRAME, _BODY_FRAME, _HEARTBEAT_FRAME = 1, 2, 3, 8
_BASIC_DELIVER: Final = (60, 60)
#: what ``decode_body`` returns for a message it cannot decode (None is a JSON body)
_FAILED: Final = object()
#: the "compression" ``parse_content_header`` gives for headers py-amqp cannot read
UNREADABLE_HEADERS: Final = "\x00unreadable headers"


class AmqpProtocolError(ConnectionError):
    """The broker sent a frame the reader cannot make sense of (the session reconnects)."""


# --------------------------------------------------------------------------- URL and queue


@dataclass(frozen=True)
class AmqpEndpoint:
    """Where and how to connect, read from the URL the way kombu's py-amqp transport does."""

    host: str = "127.0.0.1"
    port: int = 5672
    virtual_host: str = "/"
    userid: str = "guest"
    password: str = "guest"
    #: py-amqp's ``ssl`` argument: False, True, or an ``ssl`` options dict (broker_use_ssl)
    ssl: bool | Mapping[str, Any] = False
    heartbeat: float = 120.0

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def parse_amqp_url(url: str, ssl_options: Any = None, heartbeat: float | None = None
                   ) -> AmqpEndpoint:
    """``amqp://user:pass@host:port/vhost`` (``//`` is the vhost ``/``). ``ssl_options`` is
    celery's ``broker_use_ssl``; the URL's ``ssl_*`` options (``urls.amqp_tls``) are added to
    it. Raises ``ValueError`` (without the URL) when unsupported."""
    if ";" in url:
        raise ValueError("the AMQP fast path reads one broker, not a failover list")
    url, url_tls = amqp_tls(url)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in AMQP_SCHEMES:
        raise ValueError(f"not an AMQP URL ({scheme}://)")
    if parts.query and parse_qsl(parts.query, keep_blank_values=True):
        raise ValueError("the AMQP fast path reads no URL options (?...) but ssl_*")
    if ssl_options and not isinstance(ssl_options, (bool, Mapping)):
        raise ValueError("broker_use_ssl must be a bool or a dict for the AMQP fast path")
    tls: bool | Mapping[str, Any] = False
    if scheme == "amqps" or ssl_options or url_tls:
        if isinstance(ssl_options, Mapping) or url_tls:
            tls = {**(ssl_options if isinstance(ssl_options, Mapping) else {}),
                   **(url_tls or {})}
        else:
            tls = True
    try:
        # kombu's rule: the TLS port when TLS is on and the URL names none
        port = parts.port or (_PORTS["amqps"] if tls else _PORTS[scheme])
    except ValueError as exc:
        raise ValueError(f"bad port in the broker URL: {exc}") from None
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    return AmqpEndpoint(
        host=parts.hostname or "127.0.0.1", port=port,
        virtual_host=unquote(path) if path else "/",
        userid=unquote(parts.username) if parts.username else "guest",
        password=unquote(parts.password) if parts.password else "guest",
        ssl=tls, heartbeat=120.0 if heartbeat is None else float(heartbeat))


@dataclass(frozen=True)
class EventQueue:
    """The Receiver's queue (CELERY-INTERNALS §2): exclusive, auto-delete, TTL 5 s, expires 60 s."""

    name: str
    exchange: str = "celeryev"
    routing_key: str = "#"
    durable: bool = False
    exclusive: bool = True
    message_ttl: float | None = 5.0
    expires: float | None = 60.0
    #: messages kept at most (the oldest are dropped past it); None: no limit
    max_length: int | None = None

    @property
    def arguments(self) -> dict[str, int]:
        # kombu.Queue: x-message-ttl and x-expires in integer milliseconds
        args: dict[str, int] = {}
        if self.message_ttl is not None:
            args["x-message-ttl"] = int(self.message_ttl * 1000)
        if self.expires is not None:
            args["x-expires"] = int(self.expires * 1000)
        if self.max_length is not None:
            args["x-max-length"] = int(self.max_length)
        return args


#: a shared event queue keeps at most this many event messages while no recorder reads it
SHARED_QUEUE_MAX_LENGTH: Final = 1_000_000
#: the read-ahead on a shared queue (bytes): it has no TTL, so events wait safely in it, while
#: what a recorder read and had not applied when it stops is lost (no_ack): read little ahead
SHARED_READ_AHEAD: Final = 1 << 20


def shared_event_queue(name: str, app: Any = None) -> EventQueue:
    """The durable queue several recorders share (``lazycelery record --shared-queue``): bound
    to the event exchange like a Receiver's, but named, durable, not exclusive, with no TTL and
    no expiry, so events wait there while every recorder is down (up to
    ``SHARED_QUEUE_MAX_LENGTH`` messages; the oldest are dropped past it). Each event reaches
    one of the consumers (RabbitMQ's competing consumers)."""
    exchange = str(app.conf.event_exchange) if app is not None else "celeryev"
    return EventQueue(name=name, exchange=exchange, durable=True, exclusive=False,
                      message_ttl=None, expires=None, max_length=SHARED_QUEUE_MAX_LENGTH)


def event_queue(app: Any = None) -> EventQueue:
    """A fresh queue description with the app's ``event_*`` settings (celery's defaults
    without an app): ``<event_queue_prefix>.<uuid4>``."""
    from uuid import uuid4

    if app is None:
        return EventQueue(name=f"celeryev.{uuid4()}")
    conf = app.conf
    durable = bool(conf.event_queue_durable)
    return EventQueue(name=f"{conf.event_queue_prefix}.{uuid4()}",
                      exchange=str(conf.event_exchange), durable=durable,
                      exclusive=bool(conf.event_queue_exclusive),
                      message_ttl=conf.event_queue_ttl, expires=conf.event_queue_expires)


def amqp_unsupported(url: str, app: Any, transport_options: Mapping[str, Any]) -> str | None:
    """Why the AMQP fast path cannot read this broker (one line), or None when it can."""
    try:
        ssl_options = app.conf.broker_use_ssl if app is not None else None
        parse_amqp_url(url, ssl_options)
    except ValueError as exc:
        return str(exc)
    if app is not None:
        serializer = str(app.conf.event_serializer or "json")
        if serializer != "json":
            return f"events are serialized as {serializer}; the fast path decodes JSON only"
        if app.conf.event_queue_durable and app.conf.event_queue_exclusive:
            return "event_queue_durable and event_queue_exclusive are both set"
    unknown = sorted(set(transport_options) - {"confirm_publish", "max_retries",
                                               "interval_start", "interval_step",
                                               "interval_max"})
    if unknown:
        return f"the AMQP fast path does not support transport options {', '.join(unknown)}"
    try:
        import amqp  # noqa: F401
    except ImportError:
        return "the AMQP fast path needs py-amqp (pip install amqp)"
    return None


# --------------------------------------------------------------------------- decoding


class AmqpDecoder(EventDecoder):
    """:class:`EventDecoder` for AMQP message bodies (no kombu envelope: the properties are in
    the frame header). Same events as the Receiver: unrolled lists, clock rules,
    ``local_received``, epoch timestamps."""

    def decode_body(self, body: bytes, content_type: str | None, received_at: float,
                    compression: str | None = None) -> list[dict[str, Any]]:
        """The events in one message body (possibly none); never raises for bad input."""
        stats = self.stats
        stats.messages += 1
        try:  # free in CPython 3.11 until something raises
            if (content_type == JSON_CONTENT_TYPE and not compression and body
                    and has_type_marker(body) is None):
                try:  # within bounds (see sanitize.SCREEN): no per-event check needed
                    return self.events_from(SCREEN.decode(body), received_at)
                except (msgspec.DecodeError, ValueError):
                    pass
            value = self._general(body, content_type, compression)
            if value is _FAILED:
                return []
            return self.events_from(value, received_at, clean=True)
        except RecursionError:
            stats.skip(TOO_DEEP)
        except Exception as exc:  # a case not foreseen: still one message, not the connection
            stats.skip(UNDECODABLE, exc.__class__.__name__)
        return []

    def _general(self, body: bytes, content_type: str | None, compression: str | None) -> Any:
        """kombu's ``Message.decode`` with the Receiver's ``accept={'application/json'}``."""
        stats = self.stats
        if compression == UNREADABLE_HEADERS:
            stats.skip(BAD_ENVELOPE, "unreadable headers")
            return _FAILED
        if compression:
            try:
                from kombu.compression import decompress as kombu_decompress

                decompress: Callable[[bytes, str], bytes] = kombu_decompress
                body = decompress(body, compression)
            except Exception:  # an unknown codec or corrupt data: kombu's decode error
                stats.skip(BAD_COMPRESSION, unsupported=True)
                return _FAILED
        content_type = content_type or "application/data"
        if content_type != JSON_CONTENT_TYPE:
            # pickle, yaml, msgpack ...: refused by accept (the Receiver's on_decode_error);
            # trusted raw types decode to text, which is not an event
            if content_type in _TRUSTED and body:
                stats.skip(NOT_AN_EVENT)
            else:
                stats.skip(UNSUPPORTED_CONTENT, unsupported=True)
            return _FAILED
        if not body:  # kombu hands the empty body on as is: not an event
            stats.skip(NOT_AN_EVENT, "empty body")
            return _FAILED
        try:
            return decode_json_body(body)
        except (ValueError, TypeError, RecursionError) as exc:
            stats.skip(json_failure(exc))  # kombu: DecodeError -> on_decode_error
            return _FAILED


def decode_amqp_message(body: bytes, properties: Mapping[str, Any], received_at: float,
                        decoder: AmqpDecoder | None = None) -> list[dict[str, Any]]:
    """Decode one AMQP message (body bytes and its basic properties, as py-amqp names them:
    ``content_type``, ``application_headers``) into Receiver-identical events."""
    headers = properties.get("application_headers") or {}
    compression = headers.get("compression") if isinstance(headers, Mapping) else None
    return (decoder if decoder is not None else AmqpDecoder()).decode_body(
        body, properties.get("content_type"), received_at,
        str(compression) if compression else None)


def _short_str(data: bytes, offset: int) -> tuple[str, int]:
    length = data[offset]
    end = offset + 1 + length
    return data[offset + 1:end].decode("utf-8", "replace"), end


def parse_content_header(payload: bytes) -> tuple[int, str | None, str | None]:
    """(body size, content type, compression) from a content header frame's payload."""
    _cls, _weight, size, flags = _HEADER.unpack_from(payload, 0)
    offset = _HEADER.size
    word = flags
    while word & 1:  # continuation flag words name later properties, which are not read
        word = payload[offset] << 8 | payload[offset + 1]
        offset += 2
    content_type: str | None = None
    compression: str | None = None
    if flags & 0x8000:
        content_type, offset = _short_str(payload, offset)
    if flags & 0x4000:
        _encoding, offset = _short_str(payload, offset)
    if flags & 0x2000:
        (length,) = _LONG.unpack_from(payload, offset)
        table = payload[offset:offset + 4 + length]
        if b"compression" in table:  # rare: decode the table properly
            from amqp.serialization import loads as amqp_loads

            try:
                (headers,), _ = amqp_loads("F", table, 0)
            except Exception:  # the publisher's table (nesting, odd types): that message only
                return size, content_type, UNREADABLE_HEADERS
            value = headers.get("compression") if isinstance(headers, dict) else None
            compression = str(value) if value else None
    return size, content_type, compression


# --------------------------------------------------------------------------- the connection


def _connection_class() -> type:
    """``amqp.Connection`` whose ``Transport`` reads the socket in large chunks (a subclass
    of py-amqp's transports, passed in through the documented ``Transport`` factory method)."""
    import amqp
    from amqp.transport import SSLTransport, TCPTransport

    class _Buffered:
        """py-amqp's ``_read`` asks the socket for exactly one frame part (header, payload,
        end octet). This one reads up to ``READ_SIZE`` and keeps the rest in ``buf``, which
        the session's frame reader then takes over."""

        sock: Any
        _read_buffer: bytes
        raise_on_initial_eintr: bool
        #: while the session reads ahead: the reader thread, which writes for py-amqp too
        outbox: Any = None

        def write(self, s: bytes) -> None:
            outbox = self.outbox
            if outbox is None:
                super().write(s)  # type: ignore[misc]
            else:
                outbox.send(s)

        def _setup_transport(self) -> None:
            super()._setup_transport()  # type: ignore[misc]
            self.buf = b""
            self.pos = 0

        def _read(self, n: int, initial: bool = False) -> bytes:
            if self._read_buffer:  # put back by read_frame after a timeout
                self.buf = self._read_buffer + self.buf[self.pos:]
                self.pos = 0
                self._read_buffer = b""
            buf, pos = self.buf, self.pos
            while len(buf) - pos < n:
                try:
                    chunk = self.sock.recv(READ_SIZE)
                except (InterruptedError, BlockingIOError):  # EINTR, EAGAIN
                    if initial and self.raise_on_initial_eintr:
                        self.buf, self.pos = buf, pos
                        raise TimeoutError() from None
                    continue
                except OSError:
                    self.buf, self.pos = buf, pos
                    raise
                if not chunk:
                    self.buf, self.pos = buf, pos
                    raise OSError("Server unexpectedly closed connection")
                buf = buf[pos:] + chunk
                pos = 0
            self.buf, self.pos = buf, pos + n
            return buf[pos:pos + n]

    class BufferedTCPTransport(_Buffered, TCPTransport):  # type: ignore[misc]
        pass

    class BufferedSSLTransport(_Buffered, SSLTransport):  # type: ignore[misc]
        pass

    class FastConnection(amqp.Connection):  # type: ignore[misc]
        def Transport(self, host: str, connect_timeout: float | None,
                      ssl: Any = False, read_timeout: float | None = None,
                      write_timeout: float | None = None, socket_settings: Any = None,
                      **kwargs: Any) -> Any:
            cls = BufferedSSLTransport if ssl else BufferedTCPTransport
            extra = {"ssl": ssl} if ssl else {}
            return cls(host, connect_timeout=connect_timeout, read_timeout=read_timeout,
                       write_timeout=write_timeout, socket_settings=socket_settings,
                       **extra, **kwargs)

    return FastConnection


_CONNECTION_CLASS: type | None = None


def connection_class() -> type:
    global _CONNECTION_CLASS
    if _CONNECTION_CLASS is None:
        _CONNECTION_CLASS = _connection_class()
    return _CONNECTION_CLASS


def coalesce(chunks: list[bytes], size: int) -> list[bytes]:
    """``chunks`` joined into pieces of about ``size`` bytes (none split; a larger chunk stays
    whole): at a low rate the reader gets a message a recv, and each piece costs the frame
    loop a turn."""
    if len(chunks) < 2:
        return chunks
    out: list[bytes] = []
    run: list[bytes] = []
    have = 0
    for chunk in chunks:
        if have and have + len(chunk) > size:
            out.append(run[0] if len(run) == 1 else b"".join(run))
            run, have = [], 0
        run.append(chunk)
        have += len(chunk)
    if run:
        out.append(run[0] if len(run) == 1 else b"".join(run))
    return out


class AmqpFastSession:
    """One connection's life: connect, declare and bind the event queue, consume (no_ack),
    then read frames until stop or error. Raises on broker trouble; the Ingestor reconnects."""

    def __init__(self, endpoint: AmqpEndpoint, queue: Callable[[], EventQueue],
                 decoder: AmqpDecoder, sink: EventSink, stop: threading.Event, *,
                 connect_timeout: float = 4.0, poll_interval: float = 0.25,
                 on_subscribed: Callable[[], None] | None = None,
                 read_ahead_limit: int | None = None) -> None:
        self.endpoint = endpoint
        self.queue = queue
        self.decoder = decoder
        self.sink = sink
        self.stop = stop
        self.connect_timeout = connect_timeout
        self.poll_interval = poll_interval
        self.on_subscribed = on_subscribed
        self.read_ahead_limit = (DEFAULT_READ_AHEAD if read_ahead_limit is None
                                 else read_ahead_limit)
        #: the running session's reader thread (None before the consumer is set up)
        self.read_ahead: ReadAhead | None = None

    def run(self, on_connected: Callable[[BrokerIdentity | None], None]) -> None:
        """Returns when ``stop`` is set; raises ``OSError`` / ``amqp`` errors on trouble."""
        ep = self.endpoint
        conn = connection_class()(
            host=ep.address, userid=ep.userid, password=ep.password,
            virtual_host=ep.virtual_host, connect_timeout=self.connect_timeout,
            heartbeat=ep.heartbeat, ssl=ep.ssl if ep.ssl else False)
        closed_cleanly = False
        try:
            conn.connect()
            channel = conn.channel()
            queue = self.queue()
            channel.exchange_declare(queue.exchange, "topic", durable=True, auto_delete=False)
            channel.queue_declare(queue.name, durable=queue.durable, exclusive=queue.exclusive,
                                  auto_delete=not queue.durable, arguments=queue.arguments)
            channel.queue_bind(queue.name, queue.exchange, queue.routing_key)
            # no_ack, as the Receiver: prefetch limits do not apply to it
            channel.basic_consume(queue.name, no_ack=True, callback=self._late_delivery)
            on_connected(None)
            if self.on_subscribed is not None:
                self.on_subscribed()
            self._pump(conn, channel.channel_id)
            closed_cleanly = True
        finally:
            self._close(conn, graceful=closed_cleanly)

    @staticmethod
    def _late_delivery(message: Any) -> None:
        """py-amqp's own callback: only reached while closing (events are no longer wanted)."""

    def _close(self, conn: Any, graceful: bool) -> None:
        transport = conn.transport if conn.connected else None
        if graceful and transport is not None and transport.sock is not None:
            try:
                transport.sock.settimeout(1.0)
                transport.buf, transport.pos = b"", 0  # never hand a half message to py-amqp
                conn.close()
            except Exception as exc:
                log.debug("closing the AMQP connection: %s", exc)
        try:
            conn.collect()
        except Exception as exc:  # pragma: no cover - closing a dead socket
            log.debug("collecting the AMQP connection: %s", exc)

    def _pump(self, conn: Any, channel_id: int) -> None:
        transport = conn.transport
        on_frame = conn.on_inbound_frame  # py-amqp handles everything but deliveries
        stop, poll = self.stop, self.poll_interval
        decode, extend, flush = self.decoder.decode_body, self.sink.extend, self.sink.flush
        unpack_frame = _FRAME_HEADER.unpack_from
        unpack_method = _METHOD.unpack_from
        buf: bytes = transport.buf[transport.pos:]
        transport.buf, transport.pos = b"", 0
        # The read-ahead thread owns the socket from here on: it reads (so a held ingest
        # thread leaves no events to expire in the queue), sends the heartbeats, and writes
        # what py-amqp writes (a close-ok): one thread on the socket, as TLS needs.
        keepalive = None
        if conn.heartbeat:
            keepalive = Keepalive(HEARTBEAT, after=conn.heartbeat / 2.0,
                                  timeout=2.0 * conn.heartbeat, steady=True,
                                  now=time.monotonic())
        ahead = self.read_ahead = ReadAhead(transport.sock, stop, limit=self.read_ahead_limit,
                                            poll_interval=poll, keepalive=keepalive)
        transport.outbox = ahead
        ahead.start()
        pending: collections.deque[bytes] = collections.deque()
        # the message being assembled: body size, content type, compression, body parts
        expect: int = -1  # -1: no message; -2: got Deliver, waiting for the header
        ctype: str | None = None
        compression: str | None = None
        parts: list[bytes] = []
        have = 0
        try:
            while True:
                now = time.time()
                pos, end = 0, len(buf)
                while end - pos >= 8:
                    ftype, chan, size = unpack_frame(buf, pos)
                    stop_at = pos + 7 + size
                    if stop_at >= end:
                        break
                    if buf[stop_at] != _FRAME_END:
                        raise AmqpProtocolError(f"bad frame end {buf[stop_at]:#04x}")
                    start, pos = pos + 7, stop_at + 1
                    if ftype == _BODY_FRAME and expect > 0:
                        parts.append(buf[start:stop_at])
                        have += size
                        if have >= expect:
                            body = parts[0] if len(parts) == 1 else b"".join(parts)
                            events = decode(body, ctype, now, compression)
                            if events:
                                extend(events)
                            expect, parts, have = -1, [], 0
                    elif ftype == _HEADER_FRAME and expect == -2:
                        expect, ctype, compression = parse_content_header(buf[start:stop_at])
                        if expect == 0:
                            events = decode(b"", ctype, now, compression)
                            if events:
                                extend(events)
                            expect = -1
                    elif ftype == _METHOD_FRAME and expect == -1 and chan == channel_id and \
                            unpack_method(buf, start) == _BASIC_DELIVER:
                        expect = -2
                    elif ftype == _HEARTBEAT_FRAME:
                        pass
                    elif expect == -1 or chan != channel_id:
                        # connection.close, channel.close, basic.cancel, blocked ...: py-amqp
                        # handles it (and raises for the closing ones). Channel 0's frames may
                        # come between the frames of a message on ours.
                        on_frame((ftype, chan, buf[start:stop_at]))
                    else:
                        raise AmqpProtocolError(
                            f"unexpected frame type {ftype} inside a message")
                buf = buf[pos:] if pos else buf
                if pending:  # the next chunk of this take (a stop is not held up by a backlog)
                    if stop.is_set():
                        return
                    chunk = pending.popleft()
                    buf = buf + chunk if buf else chunk
                    continue
                # Everything taken is decoded and applied before the next take (and before
                # returning on stop)
                flush()
                if stop.is_set():
                    return
                try:
                    chunks = ahead.take(poll)
                    if chunks and len(chunks) < TRICKLE_READS:
                        # a trickle (a message a read): a few ms for more costs the events
                        # that latency and saves a thread switch for each of them
                        stop.wait(TRICKLE_WAIT)
                        chunks += ahead.take(0.0)
                    pending.extend(coalesce(chunks, READ_SIZE))
                except OSError:
                    if stop.is_set():
                        return
                    raise
        finally:
            transport.outbox = None
            ahead.close(shutdown=False)  # the socket stays usable for a graceful close

