"""The Redis fast path's plumbing: broker URL parsing, the event channel name, a minimal RESP client,
and the session that subscribes to the events and reads them with hiredis."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl, unquote, urlsplit

from lazycelery.core.backlog import Backlog
from lazycelery.core.read_ahead import DEFAULT_READ_AHEAD, Keepalive, ReadAhead

if TYPE_CHECKING:
    from lazycelery.core.batch import EventSink
    from lazycelery.core.fastpath import EventDecoder

__all__ = [
    "FAST_SCHEMES",
    "BrokerIdentity",
    "RedisEndpoint",
    "RedisFastSession",
    "RedisProtocolError",
    "RespConnection",
    "event_channel_pattern",
    "parse_redis_url",
    "pattern_subscriptions",
    "probe_identity",
]

#: URL schemes the fast path can read (kombu's ``redis+socket`` and redis-py's ``unix``).
FAST_SCHEMES: Final = frozenset({"redis", "rediss", "redis+socket", "unix"})
#: seconds without any data before the subscriber checks the connection with PING
HEALTH_CHECK_AFTER: Final = 15.0
#: seconds to wait for the PING reply before the connection is declared dead
HEALTH_CHECK_TIMEOUT: Final = 10.0
#: the ingest counts as behind when a take from the read-ahead holds half this or more: 2 MB,
#: ~0.2 s of the heaviest stream we measure (30,000 events/s). Smaller takes are the normal
#: rhythm of a thread sharing the GIL (a take per turn, whatever came meanwhile)
BEHIND_BYTES: Final = 4 << 20
#: bytes given to the hiredis parser at once (see ``_pump``)
FEED_BYTES: Final = 1 << 14

_DEFAULT_PORT: Final = 6379
_SSL_KEYS: Final = ("ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile",
                    "ssl_check_hostname")
_CERT_REQS: Final[Mapping[str, ssl.VerifyMode]] = {
    "required": ssl.CERT_REQUIRED, "cert_required": ssl.CERT_REQUIRED,
    "optional": ssl.CERT_OPTIONAL, "cert_optional": ssl.CERT_OPTIONAL,
    "none": ssl.CERT_NONE, "cert_none": ssl.CERT_NONE,
}


class RedisProtocolError(ConnectionError):
    """Connecting failed, the server answered with an error, or it closed the connection.

    ``str()`` is one line without credentials (e.g. ``Error 111 connecting to h:6390.
    Connection refused.``)."""


@dataclass(frozen=True)
class RedisEndpoint:
    """Where and how to connect, parsed the way kombu's Redis transport reads the URL."""

    host: str = "127.0.0.1"
    port: int = _DEFAULT_PORT
    unix_path: str | None = None
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False
    cert_reqs: ssl.VerifyMode = ssl.CERT_NONE
    ca_certs: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    check_hostname: bool | None = None

    @property
    def address(self) -> str:
        """``host:port`` or the socket path, for messages (never contains credentials)."""
        return self.unix_path if self.unix_path else f"{self.host}:{self.port}"


def parse_redis_url(url: str, ssl_options: Mapping[str, Any] | None = None) -> RedisEndpoint:
    """Parse ``redis://``, ``rediss://``, ``redis+socket://`` or ``unix://`` into an endpoint.

    ``ssl_options`` is celery's ``broker_use_ssl`` (keys ``ssl_cert_reqs`` ...); query
    parameters of the URL win over it. Raises ``ValueError`` (without the URL) when unusable.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in FAST_SCHEMES:
        raise ValueError(f"not a Redis URL ({scheme}://)")
    if ";" in url:
        raise ValueError("failover URL lists are not supported by the fast path")
    query = dict(parse_qsl(parts.query))
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    if scheme in ("redis+socket", "unix"):
        path = unquote(parts.path)
        if not path:
            raise ValueError("socket URL without a path")
        db_text = query.get("virtual_host") or query.get("db") or "0"
        return RedisEndpoint(unix_path=path, db=_parse_db(db_text), username=username,
                             password=password)
    try:
        port = parts.port or _DEFAULT_PORT
    except ValueError:
        raise ValueError("invalid port in the broker URL") from None
    # kombu reads the db from the path ("/2"); redis-py also accepts "?db=2".
    db_text = parts.path.strip("/") or query.get("db") or "0"
    options = dict(ssl_options or {})
    options.update({key: value for key, value in query.items() if key in _SSL_KEYS})
    tls = scheme == "rediss" or bool(ssl_options)
    return RedisEndpoint(
        host=unquote(parts.hostname) if parts.hostname else "127.0.0.1",
        port=port, db=_parse_db(db_text), username=username, password=password, tls=tls,
        cert_reqs=_cert_reqs(options.get("ssl_cert_reqs")),
        ca_certs=options.get("ssl_ca_certs"), certfile=options.get("ssl_certfile"),
        keyfile=options.get("ssl_keyfile"),
        check_hostname=_as_bool(options.get("ssl_check_hostname")),
    )


def _parse_db(text: str) -> int:
    try:
        db = int(text)
    except ValueError:
        raise ValueError(f"the Redis database must be a number, not {text!r}") from None
    if db < 0:
        raise ValueError("the Redis database must not be negative")
    return db


def _cert_reqs(value: Any) -> ssl.VerifyMode:
    # kombu's rule: rediss:// without ssl_cert_reqs connects without verifying (it warns).
    if value is None:
        return ssl.CERT_NONE
    if isinstance(value, int):
        return ssl.VerifyMode(value)
    try:
        return _CERT_REQS[str(value).lower()]
    except KeyError:
        raise ValueError(f"unknown ssl_cert_reqs {value!r}") from None


def _as_bool(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    return str(value).lower() not in ("false", "0", "no", "off")


def event_channel_pattern(db: int, transport_options: Mapping[str, Any] | None = None,
                          exchange: str = "celeryev") -> str:
    """The PSUBSCRIBE pattern kombu's Redis channel uses for the event exchange.

    kombu (``Channel._get_subscribe_topic``): ``keyprefix_fanout`` (``/{db}.`` unless the
    ``fanout_prefix`` option says otherwise) + exchange + ``/`` + routing key (``#`` -> ``*``)
    when ``fanout_patterns`` is on; ``PrefixedRedisPubSub`` puts ``global_keyprefix`` in front.
    """
    options = transport_options or {}
    fanout_prefix = options.get("fanout_prefix", True)
    if isinstance(fanout_prefix, str):
        prefix = fanout_prefix.format(db=db)
    elif fanout_prefix:
        prefix = f"/{db}."
    else:
        prefix = ""
    suffix = "/*" if options.get("fanout_patterns", True) else ""
    return f"{options.get('global_keyprefix', '')}{prefix}{exchange}{suffix}"


@dataclass(frozen=True)
class BrokerIdentity:
    """What INFO says about the server: a new ``run_id`` means it restarted."""

    run_id: str | None
    #: ``client_output_buffer_limit_disconnections`` (Redis >= 7.2; None when not reported)
    overflow_disconnections: int | None


def parse_info(text: str) -> BrokerIdentity:
    run_id: str | None = None
    overflows: int | None = None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key == "run_id":
            run_id = value.strip()
        elif key == "client_output_buffer_limit_disconnections":
            try:
                overflows = int(value)
            except ValueError:
                overflows = None
    return BrokerIdentity(run_id=run_id, overflow_disconnections=overflows)


def _encode_command(args: tuple[str | bytes, ...]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode() if isinstance(arg, str) else arg
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class RespConnection:
    """A socket to Redis with a ``hiredis.Reader``: connect, AUTH, commands, raw reads.

    redis-py's PubSub costs ~20 us per message in Python (CELERY-INTERNALS §2); reading the
    socket into a C parser ourselves is what makes the fast path fast.
    """

    def __init__(self, sock: socket.socket, endpoint: RedisEndpoint) -> None:
        import hiredis

        self.sock = sock
        self.endpoint = endpoint
        self.reader = hiredis.Reader()
        self._buf = bytearray(1 << 18)

    @classmethod
    def open(cls, endpoint: RedisEndpoint, timeout: float) -> RespConnection:
        """Connect (TCP, TLS or unix socket) and authenticate; raises ``OSError`` subclasses."""
        sock = _connect(endpoint, timeout)
        conn = cls(sock, endpoint)
        try:
            if endpoint.password is not None:
                if endpoint.username:
                    conn.command("AUTH", endpoint.username, endpoint.password)
                else:
                    conn.command("AUTH", endpoint.password)
        except BaseException:
            conn.close()
            raise
        return conn

    def send(self, *args: str | bytes) -> None:
        self.sock.sendall(_encode_command(args))

    def command(self, *args: str | bytes) -> Any:
        """Send one command and return its reply; an error reply raises ``RedisProtocolError``."""
        self.send(*args)
        return self.read_reply()

    def read_reply(self) -> Any:
        """Block (up to the socket timeout) until one complete reply is parsed."""
        import hiredis

        while True:
            reply = self.reader.gets()
            if reply is not False:
                if isinstance(reply, hiredis.ReplyError):
                    raise RedisProtocolError(str(reply))
                return reply
            self.fill()

    def fill(self) -> int:
        """Read what the socket has into the parser; EOF raises ``RedisProtocolError``."""
        n = self.sock.recv_into(self._buf)
        if not n:
            raise RedisProtocolError("Connection closed by server.")
        # hiredis reads any buffer (its stubs say bytes): no copy of what was received
        self.reader.feed(self._buf, 0, n)  # type: ignore[arg-type]
        return n

    def identity(self) -> BrokerIdentity | None:
        """INFO's run_id and overflow counter, or None when INFO is not allowed."""
        try:
            reply = self.command("INFO")
        except RedisProtocolError:
            return None
        text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
        return parse_info(text)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def _connect(endpoint: RedisEndpoint, timeout: float) -> socket.socket:
    if endpoint.unix_path:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(endpoint.unix_path)
        except OSError as exc:
            sock.close()
            raise _connect_error(exc, endpoint) from None
        return sock
    try:
        sock = socket.create_connection((endpoint.host, endpoint.port), timeout=timeout)
    except OSError as exc:
        raise _connect_error(exc, endpoint) from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    if not endpoint.tls:
        return sock
    try:
        return _wrap_tls(sock, endpoint)
    except BaseException:
        sock.close()
        raise


def _wrap_tls(sock: socket.socket, endpoint: RedisEndpoint) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=endpoint.ca_certs)
    check = endpoint.check_hostname
    context.check_hostname = (endpoint.cert_reqs != ssl.CERT_NONE) if check is None else check
    context.verify_mode = endpoint.cert_reqs
    if endpoint.certfile:
        context.load_cert_chain(endpoint.certfile, endpoint.keyfile)
    return context.wrap_socket(sock, server_hostname=endpoint.host)


def _connect_error(exc: OSError, endpoint: RedisEndpoint) -> RedisProtocolError:
    # The same wording as redis-py, so both paths report a refused connection alike.
    if isinstance(exc, TimeoutError):
        return RedisProtocolError(f"Timeout connecting to {endpoint.address}.")
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno is None:
        return RedisProtocolError(f"Error connecting to {endpoint.address}. {reason}.")
    return RedisProtocolError(f"Error {exc.errno} connecting to {endpoint.address}. {reason}.")


def pattern_subscriptions(endpoint: RedisEndpoint, client_name: str,
                          timeout: float = 1.0) -> int | None:
    """How many patterns the clients named ``client_name`` are subscribed to, as Redis sees
    them (``CLIENT LIST``'s ``psub``): the kombu path's proof that its PSUBSCRIBE was
    processed, which kombu does not tell. None: ``CLIENT LIST`` is refused (an ACL, a renamed
    command); ``OSError`` when Redis cannot be reached."""
    conn = RespConnection.open(endpoint, timeout)
    try:
        reply = conn.command("CLIENT", "LIST")
    except RedisProtocolError:
        return None
    finally:
        conn.close()
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    total = 0
    for line in text.splitlines():
        fields = dict(part.partition("=")[::2] for part in line.split(" "))
        if fields.get("name") == client_name:
            total += int(fields.get("psub", "0") or 0)
    return total


def probe_identity(endpoint: RedisEndpoint, timeout: float = 1.0) -> BrokerIdentity | None:
    """Open a short connection and read INFO (for the kombu path's gap detection)."""
    try:
        conn = RespConnection.open(endpoint, timeout)
    except OSError:
        return None
    try:
        return conn.identity()
    except OSError:
        return None
    finally:
        conn.close()


class RedisFastSession:
    """One connection's life: connect, AUTH, INFO, PSUBSCRIBE, then read until stop or error."""

    def __init__(self, endpoint: RedisEndpoint, pattern: str, decoder: EventDecoder,
                 sink: EventSink, stop: threading.Event, *, connect_timeout: float = 4.0,
                 poll_interval: float = 0.25,
                 on_subscribed: Callable[[], None] | None = None,
                 backlog: Backlog | None = None,
                 read_ahead_limit: int | None = None) -> None:
        self.endpoint = endpoint
        self.pattern = pattern
        self.decoder = decoder
        self.sink = sink
        self.stop = stop
        self.connect_timeout = connect_timeout
        self.poll_interval = poll_interval
        self.on_subscribed = on_subscribed
        self.backlog = backlog if backlog is not None else Backlog()
        self.read_ahead_limit = (DEFAULT_READ_AHEAD if read_ahead_limit is None
                                 else read_ahead_limit)
        #: the running session's reader thread (None before the subscription)
        self.read_ahead: ReadAhead | None = None

    def run(self, on_connected: Callable[[BrokerIdentity | None], None]) -> None:
        """Returns when ``stop`` is set; raises ``OSError`` subclasses on broker trouble."""
        conn = RespConnection.open(self.endpoint, self.connect_timeout)
        try:
            identity = conn.identity()
            reply = conn.command("PSUBSCRIBE", self.pattern)
            if not (isinstance(reply, list) and reply and reply[0] == b"psubscribe"):
                raise RedisProtocolError(f"unexpected reply to PSUBSCRIBE: {reply!r}"[:200])
            on_connected(identity)
            if self.on_subscribed is not None:
                self.on_subscribed()
            self._pump(conn)
        finally:
            conn.close()

    def _pump(self, conn: RespConnection) -> None:
        import hiredis

        reader, stop = conn.reader, self.stop
        decode, extend, flush = self.decoder.decode, self.sink.extend, self.sink.flush
        backlog, poll = self.backlog, self.poll_interval
        backlog.idle()
        # what PSUBSCRIBE's reply arrived with is already in the parser; the rest is read by
        # the read-ahead thread, which owns the socket from here on (it sends the PINGs too)
        ahead = self.read_ahead = ReadAhead(
            conn.sock, stop, limit=self.read_ahead_limit, poll_interval=poll,
            keepalive=Keepalive(b"*1\r\n$4\r\nPING\r\n", after=HEALTH_CHECK_AFTER,
                                timeout=HEALTH_CHECK_TIMEOUT)).start()
        def parse(now: float) -> None:
            while True:
                reply = reader.gets()
                if reply is False:
                    return
                if type(reply) is list and len(reply) == 4 and reply[0] == b"pmessage":
                    events = decode(reply[3], now)
                    if events:
                        extend(events)
                elif isinstance(reply, hiredis.ReplyError):
                    raise RedisProtocolError(str(reply))
                # anything else is the pong of a PING: nothing to do

        try:
            parse(time.time())
            while True:
                # Everything taken is decoded and applied before the next take (and before
                # returning on stop): batches of up to ``batch_max`` events under load.
                flush()
                if stop.is_set():
                    return
                try:
                    chunks = ahead.take(poll)
                except OSError as exc:
                    if stop.is_set():
                        return
                    if isinstance(exc, RedisProtocolError) or not isinstance(
                            exc, ConnectionError):
                        raise
                    raise RedisProtocolError(str(exc)) from None
                if not chunks:
                    backlog.idle()
                    continue
                # behind: what waited for us is more than half the old read buffer
                backlog.read(sum(map(len, chunks)), BEHIND_BYTES)
                now = time.time()
                for chunk in chunks:
                    if stop.is_set():  # a stop is not held up by a long backlog
                        return
                    # hiredis moves its unparsed bytes to the front of its buffer every 1 kB
                    # parsed: fed a megabyte at once it copies ~0.5 MB per message (3.5x
                    # slower at 1 MB, quadratic beyond), so it is fed a slice at a time
                    for offset in range(0, len(chunk), FEED_BYTES):
                        reader.feed(chunk, offset, min(FEED_BYTES, len(chunk) - offset))
                        parse(now)
        finally:
            ahead.close()
