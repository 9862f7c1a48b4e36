"""The AMQP fast path's decoder and frame reader against the recorded RabbitMQ stream and kombu."""

from __future__ import annotations

import gzip
import json
import socket
import struct
import threading
import zlib
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from lazycelery.core.fastpath import DecodeStats, LocalClock
from lazycelery.core.index import TaskIndex
from lazycelery.core.ingest import resolve_path
from lazycelery.core.ingest_amqp import (
    HEARTBEAT,
    AmqpDecoder,
    AmqpFastSession,
    AmqpProtocolError,
    coalesce,
    connection_class,
    decode_amqp_message,
    event_queue,
    parse_amqp_url,
    parse_content_header,
)
from lazycelery.core.ingest_kombu import receiver_class
from lazycelery.errors import UsageError
from tests.replay import record_dict, without

RECORDED = Path(__file__).resolve().parent / "data" / "recorded" / "amqp"


@pytest.fixture(scope="module")
def raw() -> list[dict[str, Any]]:
    with gzip.open(RECORDED / "raw.jsonl.gz", "rt") as fh:
        return [json.loads(line) for line in fh]


def _recorded_events() -> list[dict[str, Any]]:
    with gzip.open(RECORDED / "events.jsonl.gz", "rt") as fh:
        return [json.loads(line) for line in fh]


class KombuAmqpReference:
    """kombu's and celery's real AMQP decode path without a socket: a py-amqp ``Message``, made
    into kombu's ``pyamqp.Message`` by the channel, the Receiver's consumer (accept, decode,
    ``on_decode_error``), then lazycelery's Receiver subclass (the kombu path)."""

    def __init__(self) -> None:
        from celery import Celery
        from kombu import Connection, Consumer
        from kombu.transport.pyamqp import Message

        self.app = Celery("lc-amqp-decode-test", set_as_current=False)
        self.connection = Connection("memory://")
        channel = self.connection.channel()
        # what the pyamqp channel does in message_to_python (this channel is a memory one)
        channel.message_to_python = lambda raw: Message(raw, channel=channel)
        self.events: list[dict[str, Any]] = []
        self.stats = DecodeStats()
        self.receiver = receiver_class(self.app)(channel, handlers={"*": self.events.append},
                                                 app=self.app, stats=self.stats)
        make = partial(Consumer, channel, on_decode_error=self.receiver.on_decode_error)
        self.consumer = self.receiver.get_consumers(make, channel)[0]
        self.tag = 0

    def feed(self, body: bytes, properties: dict[str, Any],
             routing_key: str = "task.multi") -> list[dict[str, Any]]:
        import amqp

        self.tag += 1
        message = amqp.Message(body, **properties)
        message.delivery_info = {"delivery_tag": self.tag, "routing_key": routing_key,
                                 "exchange": "celeryev", "redelivered": False,
                                 "consumer_tag": "ctag"}
        start = len(self.events)
        self.consumer._receive_callback(message)
        return self.events[start:]

    def close(self) -> None:
        self.connection.release()


@pytest.fixture
def kombu_ref() -> Iterator[KombuAmqpReference]:
    ref = KombuAmqpReference()
    yield ref
    ref.close()


def test_decode_matches_the_recorded_receiver_events(raw: list[dict[str, Any]]) -> None:
    decoder = AmqpDecoder(LocalClock())
    decoded: list[dict[str, Any]] = []
    for message in raw:
        decoded.extend(decode_amqp_message(message["body"].encode(), message["properties"],
                                           message["t"], decoder))
    recorded = _recorded_events()
    assert len(decoded) == len(recorded) == 12379
    assert decoder.stats.malformed == decoder.stats.unsupported == 0
    assert decoder.stats.messages == len(raw)
    for ours, theirs in zip(decoded, recorded, strict=True):
        assert list(ours) == list(theirs)  # same fields in the same order
        # task-sent clocks depend on the recorder's own app clock (see test_fastpath_decode)
        ignore = ("local_received", "clock") if ours["type"] == "task-sent" else ("local_received",)
        assert without(ours, *ignore) == without(theirs, *ignore)


def test_decode_matches_kombus_amqp_path(raw: list[dict[str, Any]],
                                         kombu_ref: KombuAmqpReference) -> None:
    decoder = AmqpDecoder(LocalClock())
    batches = 0
    for message in raw:
        body = message["body"].encode()
        ours = decode_amqp_message(body, message["properties"], message["t"], decoder)
        theirs = kombu_ref.feed(body, message["properties"], message["routing_key"])
        assert [list(e) for e in ours] == [list(e) for e in theirs]
        assert [without(e, "local_received") for e in ours] == \
            [without(e, "local_received") for e in theirs]
        batches += len(ours) > 1
    assert batches > 1000  # task.multi lists were unrolled
    assert kombu_ref.stats.malformed == kombu_ref.stats.unsupported == 0
    assert decoder.clock.value == kombu_ref.app.clock.value


def test_both_paths_build_the_same_index(raw: list[dict[str, Any]],
                                         kombu_ref: KombuAmqpReference) -> None:
    fast_index, kombu_index = TaskIndex(), TaskIndex()
    decoder = AmqpDecoder(LocalClock())
    for message in raw:
        body = message["body"].encode()
        fast_index.apply_batch(decode_amqp_message(body, message["properties"], message["t"],
                                                   decoder))
        kombu_index.apply_batch(kombu_ref.feed(body, message["properties"]))
    fast_tasks = {r.uuid: r for r in fast_index.snapshot()}
    kombu_tasks = {r.uuid: r for r in kombu_index.snapshot()}
    assert len(fast_tasks) > 1000 and fast_tasks.keys() == kombu_tasks.keys()
    for uuid, rec in fast_tasks.items():
        assert record_dict(rec, "last_seen") == record_dict(kombu_tasks[uuid], "last_seen")
    assert fast_index.workers.keys() == kombu_index.workers.keys()
    for host, worker in fast_index.workers.items():
        assert record_dict(worker, "last_heartbeat") == \
            record_dict(kombu_index.workers[host], "last_heartbeat")
    fast_counts, kombu_counts = fast_index.counts(), kombu_index.counts()
    for key in ("by_state", "by_name", "by_worker", "events", "malformed"):
        assert fast_counts[key] == kombu_counts[key]
    expected = json.loads((RECORDED / "expected.json").read_text())
    assert fast_counts["by_state"] == expected["by_state"]


# --------------------------------------------------------------------------- odd input

JSON_PROPS: dict[str, Any] = {"content_type": "application/json", "content_encoding": "utf-8",
                              "application_headers": {"hostname": "w@h"}}


def _event(kind: str = "task-started", **extra: Any) -> dict[str, Any]:
    return {"hostname": "w@h", "utcoffset": -5.5, "pid": 1, "clock": 7, "uuid": "u-1",
            "timestamp": 1700000000.25, "type": kind, **extra}


ODD: list[tuple[bytes, dict[str, Any]]] = [
    (b"not json", JSON_PROPS),
    (b"", JSON_PROPS),
    (b"[1, 2]", JSON_PROPS),
    (b'"a string"', JSON_PROPS),
    (b"null", JSON_PROPS),
    (json.dumps({"uuid": "u"}).encode(), JSON_PROPS),
    (json.dumps([_event(), 3, _event("task-succeeded", clock="x")]).encode(), JSON_PROPS),
    (b'{"type": "task-started", "x": "\xff"}', JSON_PROPS),
    (b'{"type": "task-started", "runtime": NaN, "clock": 3}', JSON_PROPS),
    (json.dumps(_event(eta={"__type__": "datetime", "__value__": "2024-01-01T00:00:00"})).encode(),
     JSON_PROPS),
    (json.dumps(_event()).encode(), {**JSON_PROPS, "content_type": "application/x-python-serialize"}),
    (json.dumps(_event()).encode(), {**JSON_PROPS, "content_type": "application/x-yaml"}),
    (json.dumps(_event()).encode(), {"content_encoding": "utf-8"}),  # no content type
    (zlib.compress(json.dumps(_event()).encode()),
     {**JSON_PROPS, "application_headers": {"compression": "application/x-gzip"}}),
    (b"garbage", {**JSON_PROPS, "application_headers": {"compression": "application/x-gzip"}}),
    (b"x", {**JSON_PROPS, "application_headers": {"compression": "no/such-codec"}}),
    (json.dumps(_event()).encode("utf-16"), JSON_PROPS),
]


@pytest.mark.parametrize(("body", "properties"), ODD)
def test_odd_messages_match_kombu(body: bytes, properties: dict[str, Any],
                                  kombu_ref: KombuAmqpReference) -> None:
    decoder = AmqpDecoder(LocalClock())
    ours = decode_amqp_message(body, properties, 1.0, decoder)
    theirs = kombu_ref.feed(body, properties)
    assert [without(e, "local_received") for e in ours] == \
        [without(e, "local_received") for e in theirs]
    # skipped, never raised; counted (as skipped messages: the split may differ from kombu's)
    skipped = kombu_ref.stats.malformed + kombu_ref.stats.unsupported
    assert (decoder.stats.malformed + decoder.stats.unsupported > 0) == (skipped > 0)


def test_timestamps_are_not_localized() -> None:
    [event] = decode_amqp_message(json.dumps(_event()).encode(), JSON_PROPS, 5.0)
    assert event["timestamp"] == 1700000000.25 and event["local_received"] == 5.0


# --------------------------------------------------------------------------- URL, queue, path


def test_parse_amqp_url() -> None:
    ep = parse_amqp_url("amqp://us%40r:p%2Fw@rabbit:5673/my%2Fvhost")
    assert (ep.host, ep.port, ep.userid, ep.password, ep.virtual_host, ep.ssl) == \
        ("rabbit", 5673, "us@r", "p/w", "my/vhost", False)
    assert parse_amqp_url("amqp://guest:guest@localhost:5672//").virtual_host == "/"
    assert parse_amqp_url("pyamqp://h").virtual_host == "/"
    assert parse_amqp_url("amqp://h/").virtual_host == "/"
    tls = parse_amqp_url("amqps://h//", {"cert_reqs": 2})
    assert tls.port == 5671 and tls.ssl == {"cert_reqs": 2}
    assert parse_amqp_url("amqps://h//").ssl is True
    with pytest.raises(ValueError, match="failover"):
        parse_amqp_url("amqp://h1//;amqp://h2//")
    with pytest.raises(ValueError, match="options"):
        parse_amqp_url("amqp://h//?heartbeat=5")


def test_parse_amqp_url_reads_the_tls_options_of_the_url() -> None:
    ep = parse_amqp_url("amqps://u:p%26w@h:5676//?ssl_ca_certs=/c/ca.pem&ssl_cert_reqs=required"
                        "&ssl_certfile=/c/me.pem&ssl_keyfile=/c/me.key&ssl_check_hostname=true",
                        {"ciphers": "HIGH", "ca_certs": "/app/ca.pem"})
    assert (ep.host, ep.port, ep.password) == ("h", 5676, "p&w")
    # the URL's options beat the app's broker_use_ssl, which is kept for the rest
    assert ep.ssl == {"ciphers": "HIGH", "ca_certs": "/c/ca.pem", "cert_reqs": 2,
                      "certfile": "/c/me.pem", "keyfile": "/c/me.key", "server_hostname": "h"}
    # ssl_* on amqp:// turns TLS on, on the TLS port (kombu's rule)
    plain = parse_amqp_url("amqp://h//?ssl_cert_reqs=none&ssl_check_hostname=false")
    assert (plain.port, plain.ssl) == (5671, {"cert_reqs": 0})
    with pytest.raises(ValueError, match="ssl_cert_reqs") as bad:
        parse_amqp_url("amqps://u:s3cret@h//?ssl_cert_reqs=always")
    assert "s3cret" not in str(bad.value)
    with pytest.raises(ValueError, match="options"):
        parse_amqp_url("amqps://h//?ssl_ca_certs=/c&heartbeat=5")


def test_amqp_tls_leaves_a_url_kombu_and_celery_read() -> None:
    from kombu import Connection

    from lazycelery.urls import amqp_tls

    url, tls = amqp_tls("amqps://u:p%2Fw@h:5671/v?ssl_ca_certs=/c/ca.pem&heartbeat=10")
    assert (url, tls) == ("amqps://u:p%2Fw@h:5671/v?heartbeat=10", {"ca_certs": "/c/ca.pem"})
    conn = Connection(url, ssl=tls)
    assert (conn.password, conn.ssl, conn.heartbeat) == ("p/w", {"ca_certs": "/c/ca.pem"}, 10.0)
    assert amqp_tls("amqps://h//") == ("amqps://h//", None)
    assert amqp_tls("rediss://h/0?ssl_ca_certs=/c") == ("rediss://h/0?ssl_ca_certs=/c", None)


def test_event_queue_matches_celerys_receiver() -> None:
    from celery import Celery

    app = Celery("lc-q", broker="amqp://", set_as_current=False)
    queue = event_queue(app)
    receiver_queue = app.events.Receiver(app.connection_for_read(), handlers={}).queue
    assert queue.name.startswith("celeryev.") and queue.name != event_queue(app).name
    from kombu.transport.pyamqp import Channel

    # what kombu's py-amqp channel turns the Queue's message_ttl / expires into
    kombu_arguments = Channel.prepare_queue_arguments(
        None, {}, expires=receiver_queue.expires, message_ttl=receiver_queue.message_ttl)  # type: ignore[arg-type]
    assert queue.arguments == kombu_arguments == {"x-message-ttl": 5000, "x-expires": 60000}
    assert (queue.exclusive, queue.durable) == (receiver_queue.exclusive, receiver_queue.durable)
    assert receiver_queue.auto_delete is (not queue.durable)
    assert (queue.exchange, queue.routing_key) == (receiver_queue.exchange.name, "#")
    assert receiver_queue.exchange.type == "topic" and receiver_queue.exchange.durable
    assert event_queue().arguments == queue.arguments


@pytest.mark.parametrize(("url", "mode", "path"), [
    ("amqp://guest:guest@localhost:5672//", "auto", "fast"),
    ("amqps://guest:guest@localhost//", "auto", "fast"),
    ("pyamqp://localhost//", "fast", "fast"),
    ("amqp://guest:guest@localhost:5672//", "kombu", "kombu"),
    ("amqp://h1//;amqp://h2//", "auto", "kombu"),
    ("amqp://h//?heartbeat=10", "auto", "kombu"),
])
def test_resolve_path_for_amqp(url: str, mode: str, path: str) -> None:
    assert resolve_path(url, mode) == path


def test_fast_mode_refuses_what_it_cannot_read_in_one_line() -> None:
    from celery import Celery

    app = Celery("lc-q", broker="amqp://", set_as_current=False)
    app.conf.event_serializer = "pickle"
    for url, app_ in (("amqp://u:secret@h1//;amqp://u:secret@h2//", None),
                      ("amqp://u:secret@h//", app)):
        with pytest.raises(UsageError) as info:
            resolve_path(url, "fast", app_)
        assert "\n" not in str(info.value) and "secret" not in str(info.value)
    assert resolve_path("amqp://h//", "auto", app) == "kombu"
    assert resolve_path("amqp://h//", "auto", None, {"ssl_version": 1}) == "kombu"


# --------------------------------------------------------------------------- frame reader


def _short(text: str) -> bytes:
    data = text.encode()
    return bytes([len(data)]) + data


def _frame(ftype: int, channel: int, payload: bytes) -> bytes:
    return struct.pack(">BHI", ftype, channel, len(payload)) + payload + b"\xce"


def _delivery(body: bytes, properties: dict[str, Any], channel: int = 1,
              frame_max: int = 4096) -> bytes:
    import amqp

    deliver = struct.pack(">HH", 60, 60) + _short("ctag") + struct.pack(">Q", 1) + b"\x00" + \
        _short("celeryev") + _short("task.multi")
    header = struct.pack(">HHQ", 60, 0, len(body)) + \
        amqp.Message(body, **properties)._serialize_properties()
    out = [_frame(1, channel, deliver), _frame(2, channel, header)]
    out += [_frame(3, channel, body[i:i + frame_max]) for i in range(0, len(body), frame_max)]
    return b"".join(out)


def test_parse_content_header() -> None:
    import amqp

    props = amqp.Message(b"", content_type="application/json", content_encoding="utf-8",
                         application_headers={"hostname": "w@h", "compression": "application/x-gzip"},
                         delivery_mode=2, priority=0)._serialize_properties()
    size, ctype, compression = parse_content_header(struct.pack(">HHQ", 60, 0, 77) + props)
    assert (size, ctype, compression) == (77, "application/json", "application/x-gzip")
    bare = amqp.Message(b"")._serialize_properties()
    assert parse_content_header(struct.pack(">HHQ", 60, 0, 0) + bare) == (0, None, None)


class _Sink:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.flushes = 0

    def extend(self, events: list[dict[str, Any]]) -> None:
        self.events.extend(events)

    def flush(self) -> None:
        self.flushes += 1


class _Transport:
    def __init__(self, sock: socket.socket, buf: bytes) -> None:
        self.sock, self.buf, self.pos = sock, buf, 0


class _Conn:
    """What ``_pump`` uses of a py-amqp connection."""

    def __init__(self, sock: socket.socket, buf: bytes = b"") -> None:
        self.transport = _Transport(sock, buf)
        self.heartbeat = 0
        self.bytes_recv = 0
        self.frames: list[tuple[int, int, bytes]] = []

    def on_inbound_frame(self, frame: tuple[int, int, bytes]) -> None:
        self.frames.append(frame)
        if frame[2][:4] == struct.pack(">HH", 10, 50):  # connection.close
            raise ConnectionError("CONNECTION_FORCED - broker forced connection closure")


def _pump_stream(stream: bytes, chunk: int, prebuffered: int = 0,
                 expect: int = 1) -> tuple[_Sink, _Conn, Any]:
    """Run ``AmqpFastSession._pump`` on a socketpair fed ``stream`` in ``chunk``-byte writes."""
    left, right = socket.socketpair()
    sink, stop = _Sink(), threading.Event()
    conn = _Conn(left, stream[:prebuffered])
    session = AmqpFastSession(parse_amqp_url("amqp://h//"), event_queue,
                              AmqpDecoder(LocalClock()), sink, stop, poll_interval=0.05)
    error: list[BaseException] = []

    def pump() -> None:
        try:
            session._pump(conn, 1)
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=pump)
    thread.start()
    rest = stream[prebuffered:]
    for i in range(0, len(rest), chunk):
        right.sendall(rest[i:i + chunk])
    # wait until the expected events are in (or the pump died), then stop it
    waiter = threading.Event()
    for _ in range(100):
        if not thread.is_alive() or len(sink.events) >= expect:
            break
        waiter.wait(0.02)
    waiter.wait(0.1)
    stop.set()
    thread.join(2)
    assert not thread.is_alive()
    left.close()
    right.close()
    return sink, conn, error[0] if error else None


def test_pump_reassembles_messages_across_reads() -> None:
    big = [_event("task-succeeded", uuid=f"u-{i}", result="x" * 3000) for i in range(4)]
    messages = [(json.dumps(_event(uuid="u-a")).encode(), JSON_PROPS),
                (json.dumps(big).encode(), JSON_PROPS),  # several body frames
                (b"\x80\x04pickle", {**JSON_PROPS, "content_type": "application/x-python-serialize"}),
                (b"", JSON_PROPS)]  # a header with body size 0 and no body frame
    stream = _frame(8, 0, b"")  # a heartbeat
    stream += b"".join(_delivery(body, props) for body, props in messages)
    stream += _frame(1, 1, struct.pack(">HH", 20, 40) + b"\x00")  # channel.flow: to py-amqp
    stream += _delivery(json.dumps(_event(uuid="u-z")).encode(), JSON_PROPS)
    for chunk, pre in ((1, 0), (7, 30), (1000, 0), (1 << 20, 0)):
        sink, conn, error = _pump_stream(stream, chunk, pre, expect=6)
        assert error is None
        assert [e["uuid"] for e in sink.events] == ["u-a", "u-0", "u-1", "u-2", "u-3", "u-z"]
        assert [f[:2] for f in conn.frames] == [(1, 1)]
        assert sink.flushes > 0


def test_channel_zero_frames_may_come_inside_a_message() -> None:
    message = _delivery(json.dumps(_event(uuid="u-b")).encode(), JSON_PROPS)
    body_at = message.rindex(b"\x03\x00\x01")  # the body frame on channel 1
    blocked = _frame(1, 0, struct.pack(">HH", 10, 60) + _short("low on memory"))
    stream = message[:body_at] + blocked + _frame(8, 0, b"") + message[body_at:]
    sink, conn, error = _pump_stream(stream, 5, expect=1)
    assert error is None and [e["uuid"] for e in sink.events] == ["u-b"]
    assert [f[:2] for f in conn.frames] == [(1, 0)]  # connection.blocked went to py-amqp


def test_pump_raises_on_connection_close_and_bad_frames() -> None:
    close = _frame(1, 0, struct.pack(">HH", 10, 50) + struct.pack(">H", 320) + _short("bye") +
                   struct.pack(">HH", 0, 0))
    _sink, _conn, error = _pump_stream(close, 1 << 16)
    assert isinstance(error, ConnectionError)
    bad = _frame(8, 0, b"")[:-1] + b"\x00"
    _sink, _conn, error = _pump_stream(bad, 1 << 16)
    assert isinstance(error, AmqpProtocolError)
    # a method frame where a body frame should be
    broken = _delivery(b"{}", JSON_PROPS)
    broken = broken[:broken.rindex(b"\x03\x00\x01")] + _frame(1, 1, struct.pack(">HH", 60, 60))
    _sink, _conn, error = _pump_stream(broken, 1 << 16)
    assert isinstance(error, AmqpProtocolError)


def test_pump_heartbeats_come_from_the_reader_thread() -> None:
    """With a heartbeat negotiated, frames of type 8 go out every heartbeat/2 while the ingest
    thread is held (here: by the test, which never lets a batch end) and py-amqp's own writes
    (``transport.write``) go out through the same thread."""
    left, right = socket.socketpair()
    sink, stop = _Sink(), threading.Event()
    conn = _Conn(left)
    # 0.5 s: a heartbeat every 0.25 s; the broker is given up after 1 s without a frame from
    # it, so "the broker" answers each heartbeat (a machine at load 10+ may hold this thread
    # longer than a 0.1 s heartbeat's 0.2 s)
    conn.heartbeat = 0.5  # type: ignore[assignment]
    session = AmqpFastSession(parse_amqp_url("amqp://h//"), event_queue,
                              AmqpDecoder(LocalClock()), sink, stop, poll_interval=0.01)
    thread = threading.Thread(target=session._pump, args=(conn, 1), daemon=True)
    thread.start()
    try:
        right.settimeout(10)
        got = b""
        while got.count(HEARTBEAT) < 3:
            got += right.recv(64)
            right.sendall(HEARTBEAT)
        assert got == HEARTBEAT * (len(got) // len(HEARTBEAT))
        conn.transport.outbox.send(b"close-ok")  # what py-amqp's frame writer would call
        while not got.endswith(b"close-ok"):
            got += right.recv(64)
            assert len(got) < 4096
        assert session.read_ahead is not None and session.read_ahead.error is None
    finally:
        stop.set()
        thread.join(5)
        left.close()
        right.close()
    assert not thread.is_alive()
    assert conn.transport.outbox is None  # py-amqp writes to the socket again (closing)


def test_the_transport_hands_its_writes_to_the_outbox_while_reading_ahead() -> None:
    class Outbox:
        def __init__(self) -> None:
            self.sent: list[bytes] = []

        def send(self, data: bytes) -> None:
            self.sent.append(bytes(data))

    conn = connection_class()(host="127.0.0.1:1")
    for ssl in (False, {"cert_reqs": 0}):
        transport = conn.Transport("127.0.0.1:1", connect_timeout=1, ssl=ssl)
        outbox = transport.outbox = Outbox()
        transport.write(b"\x08\x00\x00")
        assert outbox.sent == [b"\x08\x00\x00"]


def test_coalesce_joins_small_reads_in_order_without_splitting_any() -> None:
    assert coalesce([], 10) == []
    assert coalesce([b"abc"], 2) == [b"abc"]
    assert coalesce([b"ab", b"cd", b"ef", b"g"], 4) == [b"abcd", b"efg"]
    assert coalesce([b"a", b"bigger-than-size", b"c", b"d"], 4) == [b"a", b"bigger-than-size",
                                                                     b"cd"]
    chunks = [bytes([i]) * (i % 7 + 1) for i in range(200)]
    pieces = coalesce(chunks, 64)
    assert b"".join(pieces) == b"".join(chunks)
    assert all(len(p) <= 64 for p in pieces) and len(pieces) < len(chunks) // 5


def test_a_bad_tls_option_is_refused_with_the_url_masked() -> None:
    from lazycelery.errors import ConfigError
    from lazycelery.urls import check_url

    with pytest.raises(ConfigError) as refused:
        check_url("amqps://u:s3cret@h//?ssl_check_hostname=maybe", "--broker")
    assert str(refused.value) == (
        "--broker: bad URL amqps://u:********@h//?ssl_check_hostname=maybe: "
        "ssl_check_hostname must be true or false, not 'maybe'")
    assert check_url("amqps://u:p@h//?ssl_ca_certs=/c/ca.pem", "--broker").endswith("ca.pem")
