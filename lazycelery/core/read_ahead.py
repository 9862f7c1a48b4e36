"""A reader thread that keeps the broker's socket drained while the ingest thread is busy.

Redis buffers a subscriber's unread messages and, at ``client-output-buffer-limit pubsub``
(32 MB by default), cuts the connection: every buffered event is lost at once (a gap). The
ingest thread parses, decodes and applies; when the process is busy (serve's event loop writing
50 streams, a slow `tail` consumer), that thread can be held off the GIL and the cores for a
second or two, long enough at 30,000 events/s (~12 MB/s) for Redis to give up on it.

``ReadAhead`` owns the socket once subscribed: one small thread whose only work is ``recv``
(the GIL released while it waits) and an append, so it gets the GIL within a switch interval
even when the ingest thread would have waited behind a busy event loop. The chunks wait in
memory, bounded by ``limit`` bytes; at the bound it stops reading, Redis buffers again and its
own limit applies (a disconnect the session reports as a gap, as before). Nothing is dropped
here: RESP has no record boundary a drop could resume at.

The AMQP fast path reads the same way: RabbitMQ does not cut a slow consumer off, it stops
sending to it (credit flow) and the events wait in the queue, where celery's 5 s message TTL
(``event_queue_ttl``) expires them without a word. Draining the socket keeps them coming.

The thread alone writes to the socket too, since with TLS (OpenSSL) one thread may not write
while another reads: it keeps the connection checked (``Keepalive``: Redis's PING after a quiet
spell, AMQP's heartbeat frames) and writes what the ingest thread hands it (``send``).

A ``limit`` of 0 (``--read-ahead 0``) starts no thread: ``take`` reads the socket in the ingest
thread itself, one recv at a time, as before the reader existed, and the broker's own bound
applies to a stalled ingest (Redis cuts it off, RabbitMQ's queue TTL expires its events).
"""

from __future__ import annotations

import collections
import contextlib
import socket
import threading
import time
from typing import Final

__all__ = ["DEFAULT_READ_AHEAD", "Keepalive", "ReadAhead"]

#: bytes the reader may hold ahead of the ingest thread (~280,000 events of a typical stream;
#: several seconds of the heaviest stream we measure)
DEFAULT_READ_AHEAD: Final = 128 << 20
#: bytes asked of one recv: a large read costs no more than a small one and drains a burst
_RECV_SIZE: Final = 1 << 20


class Keepalive:
    """When the reader writes its keepalive frame, and when it gives the peer up (times in,
    decisions out: no clock or socket of its own).

    ``steady=False`` (Redis): ``frame`` (a PING) after ``after`` seconds with nothing received;
    the peer is dead when nothing answers it within ``timeout`` seconds.
    ``steady=True`` (AMQP heartbeats): ``frame`` whenever we have written nothing for ``after``
    seconds, however much we receive (the broker wants to hear from us); the peer is dead after
    ``timeout`` seconds with nothing received."""

    def __init__(self, frame: bytes, *, after: float, timeout: float, steady: bool = False,
                 now: float = 0.0) -> None:
        self.frame = frame
        self.after = after
        self.timeout = timeout
        self.steady = steady
        self.last_received = self.last_sent = now
        self._ping_sent: float | None = None

    def received(self, now: float) -> None:
        self.last_received = now
        self._ping_sent = None

    def sent(self, now: float) -> None:
        self.last_sent = now

    def due(self, now: float) -> bool:
        """Whether to write ``frame`` now (noted as written); raises ``ConnectionError`` when
        the peer is to be given up."""
        if self.steady:
            if now - self.last_received > self.timeout:
                raise ConnectionError(f"No heartbeat from the broker in {self.timeout:.0f} s.")
            if now - self.last_sent >= self.after:
                self.last_sent = now
                return True
            return False
        if self._ping_sent is not None:
            if now - self._ping_sent > self.timeout:
                raise ConnectionError(f"No reply to PING within {self.timeout:.0f} s.")
            return False
        if now - self.last_received > self.after:
            self._ping_sent = self.last_sent = now
            return True
        return False


class ReadAhead:
    """Reads ``sock`` into a bounded list of chunks from a thread of its own.

    ``take(timeout)`` returns every chunk read so far (possibly none after ``timeout``);
    ``error`` is what ended the reading (EOF as ``ConnectionError``, an ``OSError``, the peer
    given up by ``keepalive``), raised by ``take`` once every chunk read before it was taken.
    ``send(data)`` has the reader write ``data`` at its next turn (within ``poll_interval``).
    ``limit=0``: no thread; ``take`` reads and writes in the caller's thread (``inline``)."""

    def __init__(self, sock: socket.socket, stop: threading.Event, *,
                 limit: int = DEFAULT_READ_AHEAD, poll_interval: float = 0.25,
                 keepalive: Keepalive | None = None) -> None:
        self._sock = sock
        self._stop = stop
        self.limit = limit
        self._poll = poll_interval
        self.keepalive = keepalive
        self._chunks: collections.deque[bytes] = collections.deque()
        #: bytes the reader is to write (``send``), in order
        self._outbox: collections.deque[bytes] = collections.deque()
        self._cond = threading.Condition(threading.Lock())
        #: bytes read and not yet taken (read by metrics and tests without the lock: an int)
        self.buffered = 0
        #: the most bytes held at once since the start
        self.peak = 0
        self.error: BaseException | None = None
        self._done = False
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="lazycelery-read-ahead",
                                        daemon=True)

    @property
    def inline(self) -> bool:
        """Whether the socket is read by ``take`` itself (``limit`` 0: no read-ahead)."""
        return self.limit <= 0

    def start(self) -> ReadAhead:
        if self.inline:
            self._sock.settimeout(self._poll)
            if self.keepalive is not None:
                self.keepalive.received(time.monotonic())
        else:
            self._thread.start()
        return self

    def close(self, timeout: float = 2.0, *, shutdown: bool = True) -> None:
        """End the reader and wait for it; what it had read and nobody took is dropped with it.
        ``shutdown``: shut the socket down, so a blocked recv returns at once (else the reader
        ends within ``poll_interval`` and the socket stays usable)."""
        self._closing = True
        if self._thread.is_alive():
            if shutdown:
                with contextlib.suppress(OSError):
                    self._sock.shutdown(socket.SHUT_RDWR)
            self._thread.join(timeout)

    def send(self, data: bytes) -> None:
        """Have the reader thread write ``data`` (copied: callers may reuse their buffer)."""
        self._outbox.append(bytes(data))

    # ------------------------------------------------------------------ reader thread

    def _run(self) -> None:
        sock, cond, chunks, outbox = self._sock, self._cond, self._chunks, self._outbox
        keepalive = self.keepalive
        sock.settimeout(self._poll)
        if keepalive is not None:
            keepalive.received(time.monotonic())
        error: BaseException | None = None
        try:
            while not (self._stop.is_set() or self._closing):
                if outbox:
                    self._write(sock, outbox, keepalive)
                if keepalive is not None and keepalive.due(time.monotonic()):
                    sock.sendall(keepalive.frame)
                if self.buffered >= self.limit:
                    # full: leave the rest in the socket (and the broker) until the ingest takes
                    with cond:
                        cond.wait_for(lambda: self.buffered < self.limit or self._stop.is_set(),
                                      self._poll)
                    continue
                try:
                    data = sock.recv(_RECV_SIZE)
                except TimeoutError:
                    continue
                if not data:  # EOF: the peer closed, or our own close shut the socket down
                    if not self._closing:
                        error = ConnectionError("Connection closed by server.")
                    return
                if keepalive is not None:
                    keepalive.received(time.monotonic())
                with cond:
                    chunks.append(data)
                    self.buffered += len(data)
                    if self.buffered > self.peak:
                        self.peak = self.buffered
                    cond.notify_all()
        except OSError as exc:  # the socket failed, or the keepalive gave the peer up
            error = None if self._closing else exc
        finally:
            with cond:
                self.error = error
                self._done = True
                cond.notify_all()

    @staticmethod
    def _write(sock: socket.socket, outbox: collections.deque[bytes],
               keepalive: Keepalive | None) -> None:
        while outbox:
            sock.sendall(outbox.popleft())
        if keepalive is not None:
            keepalive.sent(time.monotonic())

    # ------------------------------------------------------------------ ingest thread

    def take(self, timeout: float) -> list[bytes]:
        """Every chunk read so far, waiting up to ``timeout`` for the first; raises the
        reader's error once nothing read before it is left."""
        if self.inline:
            return self._take_inline(timeout)
        cond, chunks = self._cond, self._chunks
        with cond:
            if not chunks and not self._done:
                cond.wait(timeout)
            if not chunks:
                if self._done and self.error is not None:
                    raise self.error
                return []
            taken = list(chunks)
            chunks.clear()
            self.buffered = 0
            cond.notify_all()
        return taken

    def _take_inline(self, timeout: float) -> list[bytes]:
        """``take`` without a reader thread: one recv of what the socket holds (up to
        ``timeout``), the keepalive and the outbox written first."""
        if self._closing or self._stop.is_set():
            return []
        sock, keepalive = self._sock, self.keepalive
        if self._outbox:
            self._write(sock, self._outbox, keepalive)
        if keepalive is not None and keepalive.due(time.monotonic()):
            sock.sendall(keepalive.frame)
        sock.settimeout(max(timeout, 0.0) or 0.001)
        try:
            data = sock.recv(_RECV_SIZE)
        except TimeoutError:
            return []
        if not data:
            raise ConnectionError("Connection closed by server.")
        if keepalive is not None:
            keepalive.received(time.monotonic())
        return [data]
