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

The thread also keeps the connection checked (PING after a quiet spell), since it alone may
write to a TLS socket while reading it.
"""

from __future__ import annotations

import collections
import contextlib
import socket
import threading
import time
from typing import Final

__all__ = ["DEFAULT_READ_AHEAD", "ReadAhead"]

#: bytes the reader may hold ahead of the ingest thread (~280,000 events of a typical stream;
#: several seconds of the heaviest stream we measure)
DEFAULT_READ_AHEAD: Final = 128 << 20
#: bytes asked of one recv: a large read costs no more than a small one and drains a burst
_RECV_SIZE: Final = 1 << 20


class ReadAhead:
    """Reads ``sock`` into a bounded list of chunks from a thread of its own.

    ``take(timeout)`` returns every chunk read so far (possibly none after ``timeout``);
    ``error`` is what ended the reading (EOF as ``ConnectionError``, an ``OSError``, a PING
    unanswered), raised by ``take`` once every chunk read before it was taken."""

    def __init__(self, sock: socket.socket, stop: threading.Event, *,
                 limit: int = DEFAULT_READ_AHEAD, poll_interval: float = 0.25,
                 ping_after: float = 15.0, ping_timeout: float = 10.0,
                 ping: bytes = b"*1\r\n$4\r\nPING\r\n") -> None:
        self._sock = sock
        self._stop = stop
        self.limit = limit
        self._poll = poll_interval
        self._ping_after = ping_after
        self._ping_timeout = ping_timeout
        self._ping = ping
        self._chunks: collections.deque[bytes] = collections.deque()
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

    def start(self) -> ReadAhead:
        self._thread.start()
        return self

    def close(self, timeout: float = 2.0) -> None:
        """End the reader (its socket shut down, so a blocked recv returns at once) and wait
        for it; what it had read and nobody took is dropped with it."""
        self._closing = True
        if self._thread.is_alive():
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._thread.join(timeout)

    # ------------------------------------------------------------------ reader thread

    def _run(self) -> None:
        sock, cond, chunks = self._sock, self._cond, self._chunks
        sock.settimeout(self._poll)
        last_data = time.monotonic()
        ping_sent: float | None = None
        error: BaseException | None = None
        try:
            while not (self._stop.is_set() or self._closing):
                if self.buffered >= self.limit:
                    # full: leave the rest in the socket (and Redis) until the ingest takes
                    with cond:
                        cond.wait_for(lambda: self.buffered < self.limit or self._stop.is_set(),
                                      self._poll)
                    continue
                try:
                    data = sock.recv(_RECV_SIZE)
                except TimeoutError:
                    mono = time.monotonic()
                    if ping_sent is not None:
                        if mono - ping_sent > self._ping_timeout:
                            error = ConnectionError(
                                f"No reply to PING within {self._ping_timeout:.0f} s.")
                            return
                    elif mono - last_data > self._ping_after:
                        sock.sendall(self._ping)
                        ping_sent = mono
                    continue
                if not data:
                    error = ConnectionError("Connection closed by server.")
                    return
                last_data = time.monotonic()
                ping_sent = None
                with cond:
                    chunks.append(data)
                    self.buffered += len(data)
                    if self.buffered > self.peak:
                        self.peak = self.buffered
                    cond.notify_all()
        except OSError as exc:
            error = None if self._closing else exc
        finally:
            with cond:
                self.error = error
                self._done = True
                cond.notify_all()

    # ------------------------------------------------------------------ ingest thread

    def take(self, timeout: float) -> list[bytes]:
        """Every chunk read so far, waiting up to ``timeout`` for the first; raises the
        reader's error once nothing read before it is left."""
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
