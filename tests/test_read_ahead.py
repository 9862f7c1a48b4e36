"""ReadAhead on a real socket pair: order, the byte bound, EOF after the data, PING on a quiet
connection (and the error when unanswered), close and stop."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from conftest import wait_for
from lazycelery.core.read_ahead import Keepalive, ReadAhead

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
    ahead = ReadAhead(ours, threading.Event(), poll_interval=0.02,
                      keepalive=Keepalive(b"PING\r\n", after=0.1, timeout=0.3)).start()
    peer.settimeout(10)
    assert peer.recv(16) == b"PING\r\n"
    wait_for(lambda: ahead.error is not None, 10, what="the unanswered PING to end the reader")
    with pytest.raises(ConnectionError, match="No reply to PING"):
        ahead.take(1.0)


def test_an_answered_ping_keeps_the_connection(
        pair: tuple[socket.socket, socket.socket]) -> None:
    ours, peer = pair
    stop = threading.Event()
    ahead = ReadAhead(ours, stop, poll_interval=0.02,
                      keepalive=Keepalive(b"PING\r\n", after=0.1, timeout=0.3)).start()
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


# --------------------------------------------------------------------------- Keepalive (pure)


def test_keepalive_pings_a_quiet_peer_once_and_gives_it_up_unanswered() -> None:
    k = Keepalive(b"PING", after=15.0, timeout=10.0, now=100.0)
    assert not k.due(110.0)
    k.received(110.0)
    assert not k.due(125.0)
    assert k.due(125.5)  # 15 s quiet
    assert not k.due(130.0)  # one PING outstanding: not another
    assert not k.due(135.5)
    with pytest.raises(ConnectionError, match="No reply to PING within 10 s"):
        k.due(135.6)


def test_keepalive_answered_ping_starts_the_quiet_spell_again() -> None:
    k = Keepalive(b"PING", after=15.0, timeout=10.0, now=0.0)
    assert k.due(15.1)
    k.received(16.0)  # the PONG
    assert not k.due(30.0)
    assert k.due(31.1)


def test_steady_keepalive_beats_whatever_arrives_and_our_writes_count() -> None:
    # AMQP: heartbeat 60 s -> a frame every 30 s of our silence, dead after 120 s of theirs
    k = Keepalive(b"HB", after=30.0, timeout=120.0, steady=True, now=0.0)
    for t in range(1, 30):
        k.received(float(t))  # a busy stream does not stand in for our heartbeats
        assert not k.due(float(t))
    assert k.due(30.0)
    assert not k.due(45.0)
    k.sent(50.0)  # something else we wrote (a close-ok) counts as a beat
    assert not k.due(79.0)
    assert k.due(80.0)
    with pytest.raises(ConnectionError, match="No heartbeat from the broker in 120 s"):
        k.due(29.0 + 120.1)


def test_send_is_written_by_the_reader_thread_and_copied(
        pair: tuple[socket.socket, socket.socket]) -> None:
    ours, peer = pair
    stop = threading.Event()
    ahead = ReadAhead(ours, stop, poll_interval=0.02).start()
    frame = bytearray(b"close-ok")
    ahead.send(memoryview(frame))
    frame[:] = b"XXXXXXXX"  # the caller reuses its buffer at once (py-amqp's frame writer)
    ahead.send(b"|second")
    peer.settimeout(10)
    got = b""
    while len(got) < 15:
        got += peer.recv(64)
    assert got == b"close-ok|second"
    stop.set()
    ahead.close()


def test_a_steady_keepalive_writes_heartbeats_while_data_flows(
        pair: tuple[socket.socket, socket.socket]) -> None:
    ours, peer = pair
    stop = threading.Event()
    ahead = ReadAhead(ours, stop, poll_interval=0.01,
                      keepalive=Keepalive(b"HB", after=0.05, timeout=30.0, steady=True)).start()
    peer.settimeout(10)
    beats = b""
    while len(beats) < 6:
        peer.sendall(b"data")  # a stream that never pauses
        beats += peer.recv(64)
    assert beats.startswith(b"HBHBHB")
    assert ahead.error is None
    stop.set()
    ahead.close()


def test_close_without_shutdown_leaves_the_socket_usable(
        pair: tuple[socket.socket, socket.socket]) -> None:
    ours, peer = pair
    ahead = ReadAhead(ours, threading.Event(), poll_interval=0.02).start()
    ahead.close(timeout=5.0, shutdown=False)
    assert not ahead._thread.is_alive()
    peer.sendall(b"after")
    ours.settimeout(5)
    assert ours.recv(16) == b"after"


def test_limit_zero_reads_in_the_taking_thread(pair: tuple[socket.socket, socket.socket]
                                               ) -> None:
    """``--read-ahead 0``: no reader thread; nothing is read until taken, so the bytes wait in
    the socket (and the broker), the old behaviour."""
    ours, peer = pair
    stop = threading.Event()
    ahead = ReadAhead(ours, stop, limit=0, poll_interval=0.05).start()
    assert ahead.inline
    assert ahead.take(0.05) == []
    data = b"".join(b"%08d" % i for i in range(10_000))
    peer.sendall(data)
    ahead.send(b"written by take")
    assert _take_all(ahead, len(data)) == data
    assert peer.recv(100) == b"written by take"
    assert ahead.buffered == 0 and ahead.peak == 0
    peer.close()
    with pytest.raises(ConnectionError):
        while True:
            ahead.take(1.0)
    ahead.close()
