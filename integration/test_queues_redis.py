"""Queue introspection on a real Redis: priorities, key prefixes, 1,000 queues, stale bindings,
peek order against kombu's own consumption, purge, reserved/consumers with a real worker, errors."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from conftest import RedisServer, WorkerProcess, free_port, wait_for
from lazycelery.broker import QueueSnapshot, Source, open_inspector
from lazycelery.broker.monitor import QueueMonitor
from lazycelery.broker.redis import RedisInspector
from lazycelery.broker.workers import ask_active_queues
from lazycelery.errors import BrokerError, UsageError

pytestmark = pytest.mark.integration


@pytest.fixture
def publisher(redis_url: str) -> Iterator[Callable[..., Any]]:
    """``publisher(**conf)`` -> a client Celery app on the test's Redis db (closed afterwards)."""
    from celery import Celery

    apps: list[Any] = []

    def make(**conf: Any) -> Any:
        app = Celery("lc-queues", broker=redis_url, set_as_current=False)
        app.conf.update(broker_connection_retry_on_startup=True, **conf)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()


@pytest.fixture
def inspectors() -> Iterator[Callable[..., RedisInspector]]:
    made: list[RedisInspector] = []

    def make(url: str, options: dict[str, Any] | None = None, known: tuple[str, ...] = (),
             **kwargs: Any) -> RedisInspector:
        inspector = RedisInspector(url, options, known, **kwargs)
        made.append(inspector)
        return inspector

    yield make
    for inspector in made:
        inspector.close()


def _send(app: Any, queue: str, priority: int | None = None, **options: Any) -> str:
    result = app.send_task("workerapp.add", args=(1, 2), queue=queue, priority=priority,
                           **options)
    return str(result.id)


def _kombu_consumption_order(url: str, queue: str, options: dict[str, Any] | None = None,
                             ) -> list[str]:
    """Task ids in the order kombu's own Redis channel hands them out (then they are gone)."""
    from kombu import Connection

    ids = []
    with Connection(url, transport_options=options or {}) as conn:
        channel = conn.default_channel
        while (message := channel.basic_get(queue, no_ack=True)) is not None:
            ids.append(message.headers["id"])
    return ids


def test_one_shot_oldest_age_from_a_publish_timestamp(redis_url: str, publisher: Callable[..., Any],
                                                       inspectors: Callable[..., RedisInspector],
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from lazycelery.cli import main

    app = publisher()
    stamped = f"stamped-{uuid.uuid4().hex[:6]}"
    plain = f"plain-{uuid.uuid4().hex[:6]}"
    # what a `before_task_publish` handler setting properties["timestamp"] does, too
    _send(app, stamped, timestamp=time.time() - 90.0)
    _send(app, stamped, timestamp=time.time())  # newer: the next message is the older one
    _send(app, plain)
    code = main(["-b", redis_url, "queues", "--json"])
    document = json.loads(capsys.readouterr().out)
    assert code == 0, document
    ages = {q["name"]: q for q in document["queues"]}
    assert 90.0 <= ages[stamped]["oldest_age_s"] < 150.0
    assert ages[stamped]["sources"]["oldest_age_s"] == Source.REDIS_TAIL
    assert ages[plain]["oldest_age_s"] is None  # Celery's own messages carry no time
    code = main(["-b", redis_url, "queues"])
    [row] = [line for line in capsys.readouterr().out.splitlines() if line.startswith(stamped)]
    assert row.split()[7] in ("1m30s", "1m31s", "1m32s")


def test_priorities_0_to_9_and_none(redis_url: str, publisher: Callable[..., Any],
                                    inspectors: Callable[..., RedisInspector]) -> None:
    app = publisher()
    for priority in [*range(10), None]:
        _send(app, "prio", priority)
    stats = inspectors(redis_url).snapshot().get("prio")
    assert stats is not None
    # kombu: steps[bisect(steps, p) - 1] with steps 0,3,6,9; None counts as 0.
    assert stats.by_priority == {0: 4, 3: 3, 6: 3, 9: 1}
    assert stats.ready == 11
    assert stats.sources["ready"] == Source.REDIS_LLEN


def test_peek_order_is_kombus_consumption_order(redis_url: str, publisher: Callable[..., Any],
                                                inspectors: Callable[..., RedisInspector]
                                                ) -> None:
    app = publisher()
    for priority in (9, None, 4, 0, 7, 1, 9, 3):
        _send(app, "order", priority)
    inspector = inspectors(redis_url)
    peeked = inspector.peek("order", 100)
    assert [m.position for m in peeked] == list(range(8))
    assert [m.id for m in inspector.peek("order", 3)] == [m.id for m in peeked[:3]]
    assert all(m.task == "workerapp.add" and m.argsrepr == "(1, 2)" for m in peeked)
    assert [m.id for m in peeked] == _kombu_consumption_order(redis_url, "order")
    assert inspector.peek("order", 5) == []  # consumed above; the queue is still known


def test_global_keyprefix_sep_and_priority_steps(redis_url: str, publisher: Callable[..., Any],
                                                 inspectors: Callable[..., RedisInspector]
                                                 ) -> None:
    options = {"global_keyprefix": "tenant-a:", "priority_steps": list(range(10)), "sep": ":"}
    tenant = publisher(broker_transport_options=options)
    for priority in (0, 5, 5, 9):
        _send(tenant, "shared", priority)
    _send(tenant, "tenant-only")
    other = publisher()  # same db, no prefix: must not be counted for the tenant
    for _ in range(3):
        _send(other, "shared")
    keys = redis.Redis.from_url(redis_url).keys("tenant-a:*")
    assert b"tenant-a:shared:5" in keys  # the layout we expect is the one kombu wrote

    snapshot = inspectors(redis_url, options).snapshot()
    assert [q.name for q in snapshot.queues] == ["shared", "tenant-only"]
    shared = snapshot.get("shared")
    assert shared is not None and shared.ready == 4
    assert shared.by_priority == {0: 1, 5: 2, 9: 1} | {s: 0 for s in (1, 2, 3, 4, 6, 7, 8)}
    peeked = inspectors(redis_url, options).peek("shared", 10)
    assert [m.id for m in peeked] == _kombu_consumption_order(redis_url, "shared", options)

    plain = inspectors(redis_url).snapshot()
    assert plain.get("shared") is not None and plain.get("shared").ready == 3  # type: ignore[union-attr]
    assert plain.get("tenant-only") is None


def test_thousand_queues(redis_url: str, publisher: Callable[..., Any],
                         inspectors: Callable[..., RedisInspector]) -> None:
    from kombu import Exchange, Queue

    app = publisher()
    with app.producer_or_acquire() as producer:
        for i in range(1000):
            if i % 3 == 0:  # declared but empty, as a worker's -Q would leave it
                name = f"bulk-{i:04d}"
                Queue(name, Exchange(name), name)(producer.channel).declare()
            for _ in range(i % 3):
                app.send_task("workerapp.add", args=(i, 0), queue=f"bulk-{i:04d}",
                              priority=i % 10, producer=producer)
    snapshot = inspectors(redis_url).snapshot()
    bulk = [q for q in snapshot.queues if q.name.startswith("bulk-")]
    assert len(bulk) == 1000
    assert sum(q.ready or 0 for q in bulk) == sum(i % 3 for i in range(1000))
    assert all(q.ready == int(q.name[5:]) % 3 for q in bulk)
    assert snapshot.duration_s < 2.0  # ~10 ms here; generous for a loaded CI box


def test_empty_declared_and_configured_queues(redis_url: str, publisher: Callable[..., Any],
                                              inspectors: Callable[..., RedisInspector]) -> None:
    app = publisher()
    _send(app, "drained")
    _kombu_consumption_order(redis_url, "drained")  # empties it: the list key disappears
    client = redis.Redis.from_url(redis_url)
    assert not client.exists("drained") and client.exists("_kombu.binding.drained")
    snapshot = inspectors(redis_url, known=("configured",)).snapshot()
    assert [(q.name, q.ready, q.missing) for q in snapshot.queues] == [
        ("configured", 0, False), ("drained", 0, False)]


def test_stale_and_malformed_bindings(redis_url: str, inspectors: Callable[..., RedisInspector]
                                      ) -> None:
    client = redis.Redis.from_url(redis_url)
    sep = b"\x06\x16"
    # What a cancelled consumer leaves behind: a binding, no list (see CELERY-INTERNALS §3).
    client.sadd("_kombu.binding.extraq", b"extraq" + sep + sep + b"extraq")
    client.sadd("_kombu.binding.broken", b"no separators here", sep + sep)
    client.sadd("_kombu.binding.celeryev", b"#" + sep + sep + b"celeryev.1234")
    client.sadd("_kombu.binding.celery.pidbox", sep + sep + b"w9@host.celery.pidbox")
    client.sadd("_kombu.binding.reply.celery.pidbox", b"x" + sep + sep + b"ab.reply.celery.pidbox")
    inspector = inspectors(redis_url)
    snapshot = inspector.snapshot()
    assert [(q.name, q.ready) for q in snapshot.queues] == [("extraq", 0)]
    assert snapshot.error is None
    assert inspector.worker_hostnames() == ["w9@host"]


def test_wrong_key_type_is_reported_not_fatal(redis_url: str, publisher: Callable[..., Any],
                                              inspectors: Callable[..., RedisInspector]) -> None:
    _send(publisher(), "fine")
    client = redis.Redis.from_url(redis_url)
    client.set("weird", "a string where a list should be")
    snapshot = inspectors(redis_url, known=("weird",)).snapshot()
    weird, fine = snapshot.get("weird"), snapshot.get("fine")
    assert weird is not None and weird.ready is None and weird.by_priority is None
    assert weird.sources == {"reserved": Source.REDIS_UNACKED}
    assert fine is not None and fine.ready == 1
    assert any("weird" in note for note in snapshot.notes)


def test_oldest_age_from_eta_and_from_observation(redis_url: str,
                                                  publisher: Callable[..., Any],
                                                  inspectors: Callable[..., RedisInspector]
                                                  ) -> None:
    app = publisher()
    eta = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    _send(app, "overdue", eta=eta)
    _send(app, "plain")
    now = [eta.timestamp() + 42.0]
    inspector = inspectors(redis_url, clock=lambda: now[0])
    first = inspector.snapshot()
    overdue, plain = first.get("overdue"), first.get("plain")
    assert overdue is not None and overdue.oldest_age_s == pytest.approx(42.0)
    assert overdue.sources["oldest_age_s"] == Source.REDIS_TAIL
    assert plain is not None and plain.oldest_age_s is None  # seen once: no evidence yet
    now[0] += 10.0
    second = inspector.snapshot()
    assert second.get("plain").oldest_age_s == pytest.approx(10.0)  # type: ignore[union-attr]
    assert second.get("overdue").oldest_age_s == pytest.approx(52.0)  # type: ignore[union-attr]
    _kombu_consumption_order(redis_url, "plain")
    _send(app, "plain")
    now[0] += 10.0
    assert inspector.snapshot().get("plain").oldest_age_s is None  # type: ignore[union-attr]


def test_unknown_queue_for_peek_purge_and_stats(redis_url: str, publisher: Callable[..., Any],
                                                inspectors: Callable[..., RedisInspector]) -> None:
    _send(publisher(), "known")
    inspector = inspectors(redis_url)
    for call in (lambda: inspector.peek("nope"), lambda: inspector.purge("nope"),
                 lambda: inspector.stats("nope")):
        with pytest.raises(UsageError, match=r"unknown queue 'nope' on redis .* \(known: known\)"):
            call()


def test_monitor_rates_and_stale_while_redis_is_down(
        redis_server_factory: Callable[[], RedisServer], inspectors: Callable[..., RedisInspector]
) -> None:
    from celery import Celery

    server = redis_server_factory()
    url = f"{server.url}/0"
    app = Celery("lc-queues", broker=url, set_as_current=False)
    clock = [1000.0]
    monitor = QueueMonitor(inspectors(url, clock=lambda: clock[0]), half_life_s=5.0)
    try:
        for _ in range(2):
            _send(app, "flow")
        assert monitor.refresh().get("flow").net_rate is None  # type: ignore[union-attr]
        for _ in range(4):
            _send(app, "flow")
        clock[0] += 2.0
        good = monitor.refresh()
        flow = good.get("flow")
        assert flow is not None and flow.ready == 6 and flow.net_rate == pytest.approx(2.0)
        assert flow.in_rate is None and flow.out_rate is None  # Redis can't tell them apart
        assert flow.sources["net_rate"] == Source.DEPTH_DELTA

        server.stop()
        stale = monitor.refresh()
        assert stale.stale and stale.error is not None
        assert stale.error.startswith(f"cannot reach redis at 127.0.0.1:{server.port}/0")
        assert stale.queues == good.queues and stale.taken_at == good.taken_at

        server.start()  # same port, empty (no persistence)
        clock[0] += 2.0
        fresh = monitor.refresh()
        assert not fresh.stale and fresh.error is None
    finally:
        app.close()


def test_unreachable_redis_is_one_line_broker_error() -> None:
    port = free_port()
    inspector = open_inspector(f"redis://:secret@127.0.0.1:{port}/0")
    try:
        with pytest.raises(BrokerError) as info:
            inspector.snapshot()
    finally:
        inspector.close()
    assert str(info.value).startswith(f"cannot reach redis at 127.0.0.1:{port}/0:")
    assert "secret" not in str(info.value) and "\n" not in str(info.value)


@pytest.fixture
def password_redis(tmp_path: Path) -> Iterator[int]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not on PATH")
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--requirepass", "s3cret", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: _answers(port), timeout=60, what="redis-server with a password")
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def _answers(port: int) -> bool:
    try:
        redis.Redis(port=port, password="s3cret", socket_timeout=1).ping()
    except redis.RedisError:
        return False
    return True


@pytest.mark.parametrize(("auth", "expected"), [
    (":wrong@", "refused the credentials: invalid username-password pair"),
    ("", "requires a password and the broker URL has none"),
])
def test_wrong_or_missing_password(password_redis: int, auth: str, expected: str) -> None:
    inspector = open_inspector(f"redis://{auth}127.0.0.1:{password_redis}/0")
    try:
        with pytest.raises(BrokerError) as info:
            inspector.snapshot()
    finally:
        inspector.close()
    assert str(info.value).startswith(f"redis at 127.0.0.1:{password_redis}/0 {expected}")
    assert "wrong" not in str(info.value)
    right = open_inspector(f"redis://:s3cret@127.0.0.1:{password_redis}/0")
    try:
        assert right.snapshot().queues == ()
    finally:
        right.close()


def test_worker_reserved_consumers_and_purge(
        redis_url: str, celery_worker_factory: Callable[..., WorkerProcess],
        inspectors: Callable[..., RedisInspector]) -> None:
    worker = celery_worker_factory(redis_url, concurrency=1)
    app = worker.app()
    try:
        eta = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=10)
        for _ in range(3):  # the worker takes these at once and holds them until the ETA
            app.send_task("workerapp.add", args=(1, 1), queue=worker.queue, eta=eta)
        inspector = inspectors(redis_url, rediscover_s=0)  # new queues appear below

        def reserved() -> QueueSnapshot | None:
            snap = inspector.snapshot()
            stats = snap.get(worker.queue)
            # HLEN and the HSCAN are two reads: wait until both have seen all 3
            return snap if stats is not None and stats.reserved == 3 and \
                snap.unacked_total == 3 else None

        snapshot = wait_for(reserved, timeout=60, what="3 reserved ETA tasks")
        stats = snapshot.get(worker.queue)
        assert stats is not None and stats.ready == 0
        assert stats.sources["reserved"] == Source.REDIS_UNACKED
        assert snapshot.unacked_total == 3
        assert stats.consumers is None  # Redis itself can't say
        assert not any(q.name.endswith(".pidbox") or q.name.startswith("celeryev")
                       for q in snapshot.queues)

        assert worker.hostname in inspector.worker_hostnames()
        monitor = QueueMonitor(inspector, workers=lambda: ask_active_queues(
            app, inspector.worker_hostnames()))
        with_workers = monitor.refresh().get(worker.queue)
        assert with_workers is not None and with_workers.consumers == 1
        assert with_workers.sources["consumers"] == Source.WORKERS

        # Ready messages in every priority sub-list, plus another queue: only ours go.
        other = f"other-{uuid.uuid4().hex[:6]}"
        for priority in (0, 4, 7, 9):
            app.send_task("workerapp.add", args=(2, 2), queue=f"{worker.queue}-pending",
                          priority=priority)
        app.send_task("workerapp.add", args=(3, 3), queue=other)
        target = f"{worker.queue}-pending"
        assert inspector.stats(target).ready == 4
        assert inspector.purge(target) == 4
        after = inspector.snapshot()
        assert after.get(target).ready == 0  # type: ignore[union-attr]
        assert after.get(other).ready == 1  # type: ignore[union-attr]
        assert after.unacked_total == 3  # reserved messages stay with the worker
        assert after.get(worker.queue).reserved == 3  # type: ignore[union-attr]
        assert inspector.purge(worker.queue) == 0  # nothing ready; the ETA tasks are kept
        assert inspector.snapshot().get(worker.queue).reserved == 3  # type: ignore[union-attr]
    finally:
        app.close()


def test_consumers_show_soon_when_the_monitor_started_before_the_worker(
        redis_url: str, celery_worker_factory: Callable[..., WorkerProcess],
        inspectors: Callable[..., RedisInspector], publisher: Callable[..., Any]) -> None:
    # The dashboard and its workers start together (the demo): the first probe finds nobody.
    # Workers are asked again soon, not only every workers_every_s (60 s here).
    queue = f"lcq-{uuid.uuid4().hex[:8]}"
    app = publisher()
    inspector = inspectors(redis_url, known=(queue,))
    monitor = QueueMonitor(inspector, interval=0.2, workers_every_s=60.0,
                           workers=lambda: ask_active_queues(app, inspector.worker_hostnames()))
    first = monitor.refresh().get(queue)
    assert first is not None and first.consumers == 0
    worker = celery_worker_factory(redis_url, queue=queue)
    ready_at = time.monotonic()

    def consumed() -> bool:
        stats = monitor.refresh().get(queue)
        return stats is not None and stats.consumers == 1

    wait_for(consumed, timeout=60, interval=0.1, what=f"{worker.hostname} counted as consumer")
    assert time.monotonic() - ready_at < 30
