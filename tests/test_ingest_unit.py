"""Ingest without a broker: path choice, URL parsing, channel names, status, batching, stop."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from lazycelery.core.index import TaskIndex
from lazycelery.core.ingest import (
    CONNECTED,
    RECONNECTING,
    STOPPED,
    BatchSink,
    Gap,
    Ingestor,
    IngestStatus,
    backoff_delay,
    resolve_path,
    short_reason,
)
from lazycelery.core.ingest_redis import event_channel_pattern, parse_info, parse_redis_url
from lazycelery.errors import UsageError
from lazycelery.urls import error_line


@pytest.mark.parametrize(("url", "mode", "path"), [
    ("redis://localhost:6379/0", "auto", "fast"),
    ("rediss://:pw@host:6380/2?ssl_cert_reqs=required", "auto", "fast"),
    ("redis+socket:///tmp/redis.sock?virtual_host=3", "auto", "fast"),
    ("unix:///tmp/redis.sock?db=1", "fast", "fast"),
    ("redis://localhost:6379/0", "kombu", "kombu"),
    ("amqp://guest:guest@localhost:5672//", "auto", "fast"),
    ("amqps://guest:guest@localhost:5671//", "fast", "fast"),
    ("amqp://u:p@h1//;amqp://u:p@h2//", "auto", "kombu"),
    ("amqp://guest:guest@localhost:5672//", "kombu", "kombu"),
    ("sentinel://h1:26379;sentinel://h2:26379", "auto", "kombu"),
    ("redis://h1:6379/0;redis://h2:6379/0", "auto", "kombu"),
    ("redis://localhost:6379/notanumber", "auto", "kombu"),
])
def test_resolve_path(url: str, mode: str, path: str) -> None:
    assert resolve_path(url, mode) == path


@pytest.mark.parametrize("url", ["amqp://u:secret@h1//;amqp://u:secret@h2//", "sqs://",
                                 "sentinel://h:1"])
def test_fast_mode_refuses_other_brokers_in_one_line(url: str) -> None:
    with pytest.raises(UsageError) as info:
        resolve_path(url, "fast")
    message = str(info.value)
    assert "\n" not in message and "fast" in message and "secret" not in message


def test_unknown_mode_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        resolve_path("redis://localhost", "quick")


def test_auto_uses_kombu_for_a_non_json_event_serializer() -> None:
    class Conf:
        event_serializer = "pickle"

    class App:
        conf = Conf()

    assert resolve_path("redis://localhost/0", "auto", App()) == "kombu"
    with pytest.raises(UsageError, match="JSON"):
        resolve_path("redis://localhost/0", "fast", App())


def test_parse_redis_urls() -> None:
    ep = parse_redis_url("redis://:p%40ss@h:6390/4")
    assert (ep.host, ep.port, ep.db, ep.username, ep.password, ep.tls) == \
        ("h", 6390, 4, None, "p@ss", False)
    ep = parse_redis_url("redis://user:pw@h")
    assert (ep.port, ep.db, ep.username, ep.password) == (6379, 0, "user", "pw")
    ep = parse_redis_url("rediss://h:6380/1?ssl_cert_reqs=required&ssl_ca_certs=/ca.pem")
    assert ep.tls and ep.cert_reqs == ssl.CERT_REQUIRED and ep.ca_certs == "/ca.pem"
    # kombu's default for rediss:// without options: no certificate check
    assert parse_redis_url("rediss://h").cert_reqs == ssl.CERT_NONE
    ep = parse_redis_url("redis://h/0", {"ssl_cert_reqs": ssl.CERT_OPTIONAL})
    assert ep.tls and ep.cert_reqs == ssl.CERT_OPTIONAL
    ep = parse_redis_url("redis+socket:///var/run/redis.sock?virtual_host=5")
    assert (ep.unix_path, ep.db, ep.address) == ("/var/run/redis.sock", 5, "/var/run/redis.sock")
    assert parse_redis_url("unix:///r.sock?db=2").db == 2
    with pytest.raises(ValueError, match="number"):
        parse_redis_url("redis://h/x")


def test_event_channel_pattern_follows_kombu() -> None:
    assert event_channel_pattern(0) == "/0.celeryev/*"
    assert event_channel_pattern(7, {"global_keyprefix": "app1:"}) == "app1:/7.celeryev/*"
    assert event_channel_pattern(2, {"fanout_prefix": False}) == "celeryev/*"
    assert event_channel_pattern(2, {"fanout_prefix": "pfx{db}."}) == "pfx2.celeryev/*"
    assert event_channel_pattern(3, {"fanout_patterns": False}) == "/3.celeryev"
    assert event_channel_pattern(1, exchange="myev") == "/1.myev/*"


def test_parse_info() -> None:
    info = parse_info("# Server\r\nrun_id:abc\r\n# Stats\r\n"
                      "client_output_buffer_limit_disconnections:4\r\n")
    assert (info.run_id, info.overflow_disconnections) == ("abc", 4)
    assert parse_info("run_id:x\r\n").overflow_disconnections is None


def test_errors_are_one_masked_line() -> None:
    exc = ConnectionError("cannot reach amqp://guest:s3cret@rabbit:5672//\nretrying")
    text = error_line(exc, limit=300)
    assert "s3cret" not in text and "\n" not in text and "rabbit" in text
    assert short_reason("Error 111 connecting to 127.0.0.1:6390. Connection refused.") == \
        "Connection refused"
    assert short_reason("[Errno 111] Connection refused") == "Connection refused"


def test_status_lines() -> None:
    status = IngestStatus(state=RECONNECTING, path="fast", attempt=3, next_retry_in=4.0,
                          last_error="Error 111 connecting to 127.0.0.1:6390. Connection refused.")
    assert status.describe() == "reconnecting: attempt 3, next try in 4.0 s (Connection refused)"
    assert IngestStatus(state=CONNECTED, path="fast").describe() == "connected (fast path)"
    assert IngestStatus(state=CONNECTED, path="kombu").describe() == "connected (kombu path)"
    assert IngestStatus(state=STOPPED, path="fast").describe() == "stopped"
    assert Gap(1.0, 4.5, 3.5, "broker restarted").describe() == "gap of 3.5 s (broker restarted)"


def test_backoff_is_capped_exponential() -> None:
    assert [backoff_delay(n) for n in range(1, 10)] == [1, 1, 1, 1, 1, 2, 4, 5, 5]


def _task_event(uuid: str, kind: str = "task-received") -> dict[str, Any]:
    return {"type": kind, "uuid": uuid, "hostname": "w@h", "timestamp": 1.0, "clock": 1,
            "name": "t", "local_received": 1.0}


def test_batch_sink_applies_in_batches_and_reports() -> None:
    index = TaskIndex()
    seen: list[tuple[int, int]] = []
    sink = BatchSink(index, lambda events, records: seen.append((len(events), len(records))),
                     batch_max=4)
    for i in range(10):
        sink.add(_task_event(f"u{i}"))
    assert seen == [(4, 4), (4, 4)] and sink.pending
    sink.flush()
    assert seen[-1] == (2, 2) and not sink.pending
    assert len(index) == 10 and index.version == 3
    sink.extend([_task_event("u0", "task-succeeded")])
    sink.flush()
    done = index.get("u0")
    assert done is not None and done.state == "SUCCESS"
    assert sink.rate() > 0


def test_a_failing_on_batch_does_not_stop_ingest() -> None:
    def boom(events: Any, records: Any) -> None:
        raise RuntimeError("sink bug")

    index = TaskIndex()
    sink = BatchSink(index, boom)
    sink.add(_task_event("u1"))
    sink.flush()
    assert len(index) == 1


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("mode", ["fast", "kombu"])
def test_unreachable_broker_reports_reconnecting_and_stops_fast(mode: str) -> None:
    port = _closed_port()
    statuses: list[IngestStatus] = []
    changed = threading.Event()

    def on_status(status: IngestStatus) -> None:
        statuses.append(status)
        changed.set()

    ingestor = Ingestor(f"redis://:hunter2@127.0.0.1:{port}/0", TaskIndex(), mode=mode,
                        on_status=on_status, wakeup=False)
    assert ingestor.path == mode
    ingestor.start()
    deadline = time.monotonic() + 15
    while not any(s.attempt >= 2 for s in statuses) and time.monotonic() < deadline:
        changed.wait(0.5)
        changed.clear()
    reconnecting = [s for s in statuses if s.state == RECONNECTING]
    assert [s.attempt for s in reconnecting][:2] == [1, 2]
    assert [s.next_retry_in for s in reconnecting][:2] == [1.0, 1.0]
    error = reconnecting[0].last_error or ""
    assert "Connection refused" in error and "hunter2" not in error
    assert reconnecting[0].describe().startswith("reconnecting: attempt 1, next try in 1.0 s")
    assert reconnecting[0].gap is None  # never connected: nothing was lost
    started = time.monotonic()
    ingestor.stop()
    assert time.monotonic() - started < 2.5
    assert ingestor.status.state == STOPPED


def test_stop_before_start() -> None:
    ingestor = Ingestor("redis://127.0.0.1:1/0", TaskIndex())
    ingestor.stop()
    assert ingestor.status.state == STOPPED


def test_importing_ingest_is_light() -> None:
    code = ("import sys, lazycelery.core.ingest, lazycelery.core.fastpath;"
            "heavy = [m for m in ('celery', 'kombu', 'redis', 'hiredis', 'prompt_toolkit', 'ssl')"
            " if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unix_urls_are_translated_for_kombu() -> None:
    from lazycelery.core.ingest_path import kombu_url

    assert kombu_url("unix://:pw@/tmp/r.sock?db=2") == \
        "redis+socket://:pw@/tmp/r.sock?virtual_host=2"
    assert kombu_url("redis://h/0") == "redis://h/0"


def test_a_given_app_supplies_options_clock_and_exchange() -> None:
    from celery import Celery

    app = Celery("lc-unit", broker="redis://127.0.0.1:1/3", set_as_current=False)
    app.conf.broker_transport_options = {"global_keyprefix": "tenant:"}
    app.conf.event_exchange = "myev"
    ingestor = Ingestor("redis://127.0.0.1:1/3", TaskIndex(), app=app, wakeup=False)
    session: Any = ingestor._make_session()
    assert session.pattern == "tenant:/3.myev/*"
    assert session.decoder.clock is app.clock  # as the Receiver does
    assert ingestor.path == "fast"


def test_a_gap_starts_at_the_sender_time_of_the_last_event_applied() -> None:
    """A consumer that fell behind (as before a Redis overflow) applies old events up to the
    drop: the gap starts at their sender time, not when the broken connection was noticed."""
    from lazycelery.core.index import TaskIndex
    from lazycelery.core.ingest import Ingestor

    ingestor = Ingestor("redis://127.0.0.1:1/0", TaskIndex(), mode="fast")
    ingestor._connected_at = 1000.0
    sink = ingestor._sink
    sink.extend([{"type": "task-started", "uuid": "u1", "timestamp": 1010.0}])
    sink.flush()
    assert sink.last_event_ts == 1010.0 and sink.last_event_at is not None
    assert ingestor._gap_start(now=sink.last_event_at + 5.0) == 1010.0
    # a sender clock ahead of ours, or a time from before this connection, is not trusted
    sink.last_event_ts = sink.last_event_at + 60.0
    assert ingestor._gap_start(now=sink.last_event_at + 5.0) == sink.last_event_at
    ingestor._connected_at = sink.last_event_at + 1.0
    assert ingestor._gap_start(now=sink.last_event_at + 5.0) == sink.last_event_at + 5.0


def test_amqp_read_ahead_is_small_on_a_shared_queue_unless_asked() -> None:
    from lazycelery.core.ingest_amqp import SHARED_READ_AHEAD
    from lazycelery.core.read_ahead import DEFAULT_READ_AHEAD

    url = "amqp://guest:guest@127.0.0.1:1//"

    def limit(**kwargs: Any) -> int:
        session: Any = Ingestor(url, TaskIndex(), mode="fast", wakeup=False,
                                **kwargs)._make_session()
        return int(session.read_ahead_limit)

    # the Receiver's own queue expires events after 5 s: read far ahead
    assert limit() == DEFAULT_READ_AHEAD
    # a shared queue keeps them (no TTL); what a stopped recorder read ahead is lost (no_ack)
    assert limit(shared_queue="lc-recorders") == SHARED_READ_AHEAD < DEFAULT_READ_AHEAD
    assert limit(shared_queue="lc-recorders", read_ahead=5 << 20) == 5 << 20
    assert limit(read_ahead=1 << 16) == 1 << 16
