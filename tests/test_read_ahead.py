"""ReadAhead on a real socket pair: order, the byte bound, EOF after the data, PING on a quiet
connection (and the error when unanswered), close and stop."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from conftest import wait_for
from lazycelery.core.read_ahead import ReadAhead

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, peer = socket.socketpair()
    try:
        yield ours, peer
    finally:
        ours.close()
        peer.close()


def _take_all(ahead: ReadAhead, size: int) -> bytes:
    got = bytearray()
    while len(got) < size:
        got += b"".join(ahead.take(5.0))
    return bytes(got)


def test_chunks_arrive_in_order(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, peer = pair
    stop = threading.Event()
    ahead = ReadAhead(ours, stop, poll_interval=0.05).start()
    data = b"".join(b"%08d" % i for i in range(100_000))
    peer.sendall(data)
    assert _take_all(ahead, len(data)) == data
    assert ahead.buffered == 0 and ahead.peak > 0
    assert ahead.take(0.05) == []
    stop.set()
    ahead.close()


def test_reading_stops_at_the_limit_and_resumes_when_taken(
        pair: tuple[socket.socket, socket.socket]) -> None:
    ours, peer = pair
    peer.setblocking(True)
    stop = threading.Event()
    limit = 64 << 10
    ahead = ReadAhead(ours, stop, limit=limit, poll_interval=0.05).start()
    data = bytes(range(256)) * (16 << 10)  # 4 MB: more than the limit and the socket buffers
    writer = threading.Thread(target=peer.sendall, args=(data,), daemon=True)
    writer.start()
    wait_for(lambda: ahead.buffered >= limit, 10, what="the read-ahead to fill")
    # full: the writer is held by the socket buffers, not by us reading on and on
    assert writer.is_alive()
    assert ahead.buffered < limit + (1 << 20)
    assert _take_all(ahead, len(data)) == data
    writer.join(10)
    assert ahead.peak < limit + (1 << 20)
    stop.set()
    ahead.close()


def test_eof_is_raised_after_the_data_before_it(
        pair: tuple[socket.socket, socket.socket]) -> None:
    ours, peer = pair
    ahead = ReadAhead(ours, threading.Event(), poll_interval=0.05).start()
    peer.sendall(b"last words")
    peer.shutdown(socket.SHUT_WR)
    wait_for(lambda: ahead.error is not None, 10, what="the reader to see EOF")
    assert b"".join(ahead.take(1.0)) == b"last words"
    with pytest.raises(ConnectionError, match="closed by server"):
        ahead.take(1.0)


def test_a_quiet_connection_is_pinged_and_dropped_when_unanswered(
        pair: tuple[socket.socket, socket.socket]) -> None:
    ours, peer = pair
    ahead = ReadAhead(ours, threading.Event(), poll_interval=0.02, ping_after=0.1,
                      ping_timeout=0.3, ping=b"PING\r\n").start()
    peer.settimeout(10)
    assert peer.recv(16) == b"PING\r\n"
    wait_for(lambda: ahead.error is not None, 10, what="the unanswered PING to end the reader")
    with pytest.raises(ConnectionError, match="No reply to PING"):
        ahead.take(1.0)


def test_an_answered_ping_keeps_the_connection(
        pair: tuple[socket.socket, socket.socket]) -> None:
    ours, peer = pair
    stop = threading.Event()
    ahead = ReadAhead(ours, stop, poll_interval=0.02, ping_after=0.1, ping_timeout=0.3,
                      ping=b"PING\r\n").start()
    peer.settimeout(10)
    for _ in range(3):
        assert peer.recv(16) == b"PING\r\n"
        peer.sendall(b"+PONG\r\n")
    assert ahead.error is None
    assert _take_all(ahead, 21) == b"+PONG\r\n" * 3
    stop.set()
    ahead.close()


def test_stop_and_close_end_the_thread(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, _ = pair
    stop = threading.Event()
    ahead = ReadAhead(ours, stop, poll_interval=10.0).start()
    # close shuts the socket down: the recv blocked for up to 10 s returns at once
    ahead.close(timeout=5.0)
    assert not ahead._thread.is_alive()
    assert ahead.error is None
