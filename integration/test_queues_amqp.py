"""Queue introspection on a real RabbitMQ: ready vs unacked with a real worker holding ETA tasks,
a missing queue, purge, the management API path and the AMQP-only path, errors."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from conftest import WorkerProcess, free_port, wait_for
from lazycelery.broker import QueueStats, Source, open_inspector
from lazycelery.broker.amqp import AmqpInspector
from lazycelery.broker.management import ManagementAPI, ManagementError
from lazycelery.errors import BrokerError, UsageError

pytestmark = pytest.mark.integration


def _management_url(amqp_url: str) -> str | None:
    """The management API for this broker, or None when the plugin is not enabled."""
    parts = urlsplit(amqp_url)
    api = ManagementAPI(f"http://{parts.hostname}:15672/api/", "/", parts.username,
                        parts.password, timeout=2.0)
    try:
        api.queues()
    except ManagementError:
        return None
    return api.base


@pytest.fixture
def inspectors() -> Iterator[Callable[..., AmqpInspector]]:
    made: list[AmqpInspector] = []

    def make(url: str, known: tuple[str, ...] = (), **kwargs: Any) -> AmqpInspector:
        inspector = AmqpInspector(url, {}, known, **kwargs)
        made.append(inspector)
        return inspector

    yield make
    for inspector in made:
        inspector.close()


@pytest.fixture
def declare(amqp_url: str) -> Iterator[Callable[..., str]]:
    """``declare(n_messages)`` -> the name of a fresh durable queue holding that many messages."""
    from kombu import Connection

    conn = Connection(amqp_url)
    channel = conn.channel()
    names: list[str] = []

    def make(messages: int = 0) -> str:
        name = f"lcq-{uuid.uuid4().hex[:8]}"
        channel.queue_declare(queue=name, durable=True, auto_delete=False)
        for i in range(messages):
            channel.basic_publish(channel.prepare_message(f"m{i}".encode()), exchange="",
                                  routing_key=name)
        names.append(name)
        return name

    yield make
    for name in names:
        channel.queue_delete(queue=name)
    conn.release()


def test_missing_queue_does_not_break_the_next_probe(amqp_url: str,
                                                     inspectors: Callable[..., AmqpInspector],
                                                     declare: Callable[..., str]) -> None:
    real = declare(3)
    missing = "a-missing-" + real  # sorts first: its failed probe closes the channel
    inspector = inspectors(amqp_url, (missing, real), management_url="")
    snapshot = inspector.snapshot()
    assert [q.name for q in snapshot.queues] == [missing, real]
    gone, present = snapshot.queues
    assert gone.missing and gone.ready is None and gone.sources == {}
    assert (present.missing, present.ready, present.consumers) == (False, 3, 0)
    assert present.sources == {"ready": Source.AMQP_DECLARE, "consumers": Source.AMQP_DECLARE}
    assert present.reserved is None  # AMQP alone can't count unacked messages
    assert inspector.snapshot().get(real) == present  # and the next round works too


def test_purge_counts_and_unknown_queues(amqp_url: str, inspectors: Callable[..., AmqpInspector],
                                         declare: Callable[..., str]) -> None:
    target, other = declare(5), declare(2)
    inspector = inspectors(amqp_url, (target, other), management_url="")
    assert inspector.stats(target).ready == 5
    assert inspector.purge(target) == 5
    assert inspector.stats(target).ready == 0
    assert inspector.stats(other).ready == 2
    for call in (lambda: inspector.purge("nope"), lambda: inspector.stats("nope")):
        with pytest.raises(UsageError, match=r"^unknown queue 'nope' on rabbitmq "):
            call()
    assert inspector.purge(other) == 2  # the channel closed by the 404s was replaced


def test_peek_is_refused_with_the_reason(amqp_url: str, inspectors: Callable[..., AmqpInspector],
                                         declare: Callable[..., str]) -> None:
    name = declare(1)
    with pytest.raises(UsageError, match="peek is not available on RabbitMQ"):
        inspectors(amqp_url, (name,), management_url="").peek(name)
    assert inspectors(amqp_url, (name,), management_url="").stats(name).ready == 1  # untouched


@pytest.mark.parametrize(("change", "expected"), [
    ("password", "refused the credentials (ACCESS_REFUSED)"),
    ("vhost", "refused access to the vhost"),
    ("port", "cannot reach rabbitmq at 127.0.0.1:"),
])
def test_connection_errors_are_one_line(amqp_url: str, change: str, expected: str) -> None:
    parts = urlsplit(amqp_url)
    if change == "password":
        url = parts._replace(netloc=f"guest:not-the-password@{parts.hostname}:{parts.port}")
    elif change == "vhost":
        url = parts._replace(path="/no-such-vhost-lc")
    else:
        url = parts._replace(netloc=f"guest:guest@127.0.0.1:{free_port()}")
    inspector = open_inspector(url.geturl(), management_url="")
    try:
        with pytest.raises(BrokerError) as info:
            inspector.snapshot()
    finally:
        inspector.close()
    assert expected in str(info.value)
    assert "not-the-password" not in str(info.value) and "\n" not in str(info.value)


def test_unreachable_management_api_falls_back_to_amqp(amqp_url: str,
                                                       inspectors: Callable[..., AmqpInspector],
                                                       declare: Callable[..., str]) -> None:
    name = declare(2)
    api = f"http://user:hunter2@127.0.0.1:{free_port()}/api/"
    snapshot = inspectors(amqp_url, (name,), management_url=api).snapshot()
    assert snapshot.get(name) is not None and snapshot.get(name).ready == 2  # type: ignore[union-attr]
    assert len(snapshot.notes) == 1
    note = snapshot.notes[0]
    assert "management API at http://127.0.0.1:" in note and "unreachable" in note
    assert "passive queue_declare" in note and "hunter2" not in note


def test_default_probe_is_celery_queue_with_a_note(amqp_url: str,
                                                   inspectors: Callable[..., AmqpInspector]
                                                   ) -> None:
    snapshot = inspectors(amqp_url, management_url="").snapshot()
    assert [q.name for q in snapshot.queues] == ["celery"]
    assert any("AMQP cannot list queues" in note for note in snapshot.notes)


def _with_management(amqp_url: str) -> str:
    api = _management_url(amqp_url)
    if api is None:
        pytest.skip("the RabbitMQ management plugin is not enabled "
                    "(rabbitmq-plugins enable rabbitmq_management)")
    return api


def test_worker_ready_vs_unacked(amqp_url: str, inspectors: Callable[..., AmqpInspector],
                                 celery_worker_factory: Callable[..., WorkerProcess]) -> None:
    worker = celery_worker_factory(amqp_url, concurrency=1)
    app = worker.app()
    try:
        eta = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=10)
        for _ in range(3):  # prefetched and held until the ETA: unacked, not ready
            app.send_task("workerapp.add", args=(1, 1), queue=worker.queue, eta=eta)
        amqp_only = inspectors(amqp_url, (worker.queue,), management_url="")

        def probed() -> QueueStats | None:
            stats = amqp_only.stats(worker.queue)
            return stats if (stats.consumers, stats.ready) == (1, 0) else None

        # Celery raises its prefetch by one per ETA task, so all 3 leave the ready count;
        # queue_declare's message_count is ready messages only.
        stats = wait_for(probed, timeout=60, what="the worker to prefetch the 3 ETA tasks")
        assert stats.reserved is None

        api = _with_management(amqp_url)
        both = inspectors(amqp_url, (worker.queue,), management_url=api)

        def counted() -> QueueStats | None:
            found = both.snapshot().get(worker.queue)
            return found if found is not None and found.reserved == 3 else None

        # The management API's figures lag by its stats interval (5 s by default).
        full = wait_for(counted, timeout=60, interval=0.5, what="3 unacked via the API")
        assert (full.ready, full.consumers) == (0, 1)
        assert full.sources["ready"] == Source.AMQP_DECLARE
        assert full.sources["reserved"] == Source.MANAGEMENT
        listed = both.snapshot()
        assert not any(q.name.endswith(".pidbox") or q.name.startswith("celeryev.")
                       for q in listed.queues)
        assert worker.hostname in both.worker_hostnames()

        # Ready messages now: stop consuming (the 3 stay unacked), publish 2, purge them.
        app.control.cancel_consumer(worker.queue, destination=[worker.hostname], reply=True)
        for _ in range(2):
            app.send_task("workerapp.add", args=(2, 2), queue=worker.queue)
        assert wait_for(lambda: amqp_only.stats(worker.queue).ready == 2, timeout=60,
                        what="2 ready messages")
        assert amqp_only.purge(worker.queue) == 2
        after = wait_for(lambda: (s := both.snapshot().get(worker.queue)) is not None
                         and s.reserved == 3 and s.ready == 0 and s, timeout=60, interval=0.5,
                         what="purge to leave the unacked messages alone")
        assert after.consumers == 0
    finally:
        app.close()


def test_management_listing_finds_unconfigured_queues(amqp_url: str,
                                                      inspectors: Callable[..., AmqpInspector],
                                                      declare: Callable[..., str]) -> None:
    api = _with_management(amqp_url)
    hidden = declare(4)
    inspector = inspectors(amqp_url, (), management_url=api)
    # The API lists a new queue at once but its figures only after a stats interval.
    full = wait_for(lambda: (s := inspector.snapshot().get(hidden)) is not None
                    and s.ready == 4 and s.consumers is not None and s, timeout=60, interval=0.5,
                    what="API stats")
    assert full.reserved == 0 and full.consumers == 0
    # Listed by the API only (not configured, so not probed): every figure says so.
    assert set(full.sources.values()) == {Source.MANAGEMENT}
    assert {"ready", "reserved", "consumers"} <= set(full.sources)


def test_workers_queues_are_found_without_the_management_api(
        amqp_url: str, celery_worker_factory: Callable[..., WorkerProcess],
        capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from lazycelery.cli import main

    # The worker consumes a queue nobody configured; without the API nothing names it, so
    # `--workers` asks the workers (read-only inspect) and passive-declares what they consume.
    worker = celery_worker_factory(amqp_url, concurrency=1)
    app = worker.app()
    try:
        code = main(["-b", amqp_url, "queues", "--json", "--management-url", "none"])
        plain = json.loads(capsys.readouterr().out)
        assert code == 0 and worker.queue not in {q["name"] for q in plain["queues"]}
        code = main(["-b", amqp_url, "queues", "--workers", "--json", "--management-url", "none"])
        document = json.loads(capsys.readouterr().out)
        assert code == 0, document
        [found] = [q for q in document["queues"] if q["name"] == worker.queue]
        assert found["consumers"] == 1 and found["sources"]["consumers"] == Source.AMQP_DECLARE
        assert found["ready"] == 0 and not found["missing"]
    finally:
        app.close()
