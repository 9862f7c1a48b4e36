"""The fast paths of ``/api/tasks?sort_by=`` and ``/metrics`` give the answers of the
implementations they replaced, on the recorded event streams and on hand-made edge cases
(ties, missing times, odd label values). The old code is kept here verbatim as the reference."""

from __future__ import annotations

from typing import Any

import pytest
from celery import Celery
from prometheus_client.parser import text_string_to_metric_families

from lazycelery.broker.model import QueueSnapshot, QueueStats
from lazycelery.core.index import TaskIndex
from lazycelery.serve.metrics import MetricsWriter, registry_for, render, render_reference
from lazycelery.serve.service import Service
from lazycelery.serve.tasks import page, parse_query
from tests.replay import load_events
from tests.serve_reference import old_page

pytestmark = pytest.mark.timeout(60)


def _recorded_index(broker: str) -> TaskIndex:
    index = TaskIndex()
    events = load_events(broker)
    for i in range(0, len(events), 256):
        index.apply_batch(events[i:i + 256])
    return index


def _edge_index() -> TaskIndex:
    """Ties on the time (uuid decides), tasks never received or never started, ints."""
    index = TaskIndex()
    events: list[dict[str, Any]] = []
    for i in range(60):
        uuid = f"t{(i * 37) % 60:03d}"
        ts = 1000.0 + (i % 7)  # many ties
        if i % 5 != 0:  # every 5th task is only seen started: no `received`
            events.append({"type": "task-received", "uuid": uuid, "name": f"n{i % 3}",
                           "hostname": f"w{i % 2}", "timestamp": ts, "local_received": ts})
        if i % 3 != 0:  # every 3rd never started
            events.append({"type": "task-started", "uuid": uuid, "hostname": f"w{i % 2}",
                           "timestamp": ts + (i % 4), "local_received": ts + (i % 4)})
    index.apply_batch(events)
    return index


QUERIES = [f"sort_by={sign}{field}&limit={limit}&offset={offset}{extra}"
           for sign in ("", "-") for field in ("received", "started", "name", "state")
           for limit, offset in ((1, 0), (5, 0), (10, 3), (100, 0), (10_000, 0), (7, 50))
           for extra in ("", "&state=SUCCESS", "&workername=w1")]


def _query(text: str) -> Any:
    return parse_query(dict(part.split("=", 1) for part in text.split("&")))


@pytest.mark.parametrize("source", ["redis", "amqp", "edge"])
def test_sort_by_gives_the_old_pages(source: str) -> None:
    index = _edge_index() if source == "edge" else _recorded_index(source)
    assert len(index.records()) >= 50
    for text in QUERIES:
        q = _query(text)
        assert [r.uuid for r in page(index, q)] == [r.uuid for r in old_page(index, q)], text


def test_the_edge_data_has_the_edges() -> None:
    records = _edge_index().records()
    assert any(r.received is None for r in records) and any(r.started is None for r in records)
    received = [r.received for r in records if r.received is not None]
    assert len(set(received)) < len(received)  # ties


# ---- /metrics ---------------------------------------------------------------------------

def _service(snapshot: QueueSnapshot | None, broker: str = "redis") -> Service:
    index = _recorded_index(broker)
    service = Service(app=Celery("t", broker="memory://", set_as_current=False), index=index,
                      environment="t")
    events = load_events(broker)
    service.counters.on_batch(events, index.apply_batch(events))
    service.queues = lambda: snapshot
    return service


def _snapshot(n: int, taken_at: float) -> QueueSnapshot:
    odd = QueueStats(name='odd "queue"\\name\n', ready=3, by_priority={0: 1, 9: 2},
                     consumers=2, oldest_age_s=float("inf"))
    bare = QueueStats(name="bare", ready=None)
    queues = tuple(QueueStats(name=f"q{i}", ready=i * 1_000_003, reserved=i % 3,
                              consumers=None if i % 4 == 0 else i,
                              by_priority={9: i, 0: 2 * i, 3: 0} if i % 2 else None,
                              oldest_age_s=None if i % 5 == 0 else i / 7)
                   for i in range(n))
    return QueueSnapshot(taken_at=taken_at, source="t", queues=(odd, bare, *queues))


@pytest.mark.parametrize("snapshot", [None, _snapshot(0, 0.0), _snapshot(50, 4e9)],
                         ids=["no-snapshot", "never-taken", "queues"])
def test_metrics_writer_writes_the_old_bytes(snapshot: QueueSnapshot | None) -> None:
    # taken_at in the future: the snapshot's age is 0.0 in both renders (the clock moves)
    service = _service(snapshot)
    writer = MetricsWriter(service)
    old = render(registry_for(service))
    assert b"flower_task_runtime_seconds_bucket" in old
    assert writer.render() == old
    assert writer.render() == old  # from the cache


def test_metrics_writer_parses_like_prometheus_client() -> None:
    service = _service(_snapshot(20, 4e9), "amqp")

    def parsed(text: bytes) -> list[tuple[str, str, list[Any]]]:
        return [(f.name, f.type, sorted((s.name, sorted(s.labels.items()), s.value)
                                        for s in f.samples))
                for f in text_string_to_metric_families(text.decode())]

    ours = parsed(MetricsWriter(service).render())
    assert ours == parsed(render_reference(registry_for(service))) and len(ours) > 10


def test_metrics_writer_follows_new_snapshots_and_workers() -> None:
    first, second = _snapshot(3, 4e9), _snapshot(5, 4e9)
    service = _service(first)
    writer = MetricsWriter(service)
    assert writer.render() == render(registry_for(service))
    service.queues = lambda: second
    service.index.apply_batch([{"type": "worker-heartbeat", "hostname": "new@host",
                                "timestamp": 4e9, "local_received": 4e9, "active": 2}])
    body = writer.render()
    assert body == render(registry_for(service))
    assert b'queue="q4"' in body and b'worker="new@host"' in body
