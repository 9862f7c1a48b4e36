"""The AMQP fast path over real RabbitMQ with a real worker, beside the kombu path."""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import msgspec
import pytest

from conftest import WorkerProcess, stop_promptly, wait_for
from lazycelery.core.index import TaskIndex
from lazycelery.core.ingest import CONNECTED, RECONNECTING, Ingestor

pytestmark = pytest.mark.integration


@pytest.fixture(params=[None, 0], ids=["read-ahead", "read-ahead-0"])
def both(amqp_url: str, request: pytest.FixtureRequest) -> Iterator[tuple[Ingestor, Ingestor]]:
    """The fast path with its read-ahead thread (the default bound) and without one
    (``--read-ahead 0``: the ingest thread reads the socket itself), and the kombu path."""
    # wakeup=False: the wakeup broadcast ticks the sender's clock, which would make the two
    # ingestors' Lamport clocks (and so task-sent clocks) differ
    fast = Ingestor(amqp_url, TaskIndex(), mode="auto", wakeup=False, read_ahead=request.param)
    kombu = Ingestor(amqp_url, TaskIndex(), mode="kombu", wakeup=False)
    fast.start()
    kombu.start()
    yield fast, kombu
    fast.stop()
    kombu.stop()


def _state(index: TaskIndex, task_id: str) -> str | None:
    rec = index.get(task_id)
    return rec.state if rec is not None else None


def _record(index: TaskIndex, task_id: str) -> dict[str, Any]:
    rec = index.get(task_id)
    assert rec is not None
    return {k: v for k, v in msgspec.structs.asdict(rec).items() if k != "last_seen"}


def test_fast_and_kombu_paths_build_the_same_index(
        amqp_url: str, celery_worker_factory: Callable[..., WorkerProcess],
        both: tuple[Ingestor, Ingestor]) -> None:
    fast, kombu = both
    assert (fast.path, kombu.path) == ("fast", "kombu")
    wait_for(lambda: fast.status.state == kombu.status.state == CONNECTED, 60,
             what="both AMQP connections")
    assert fast.status.describe() == "connected (fast path)"
    worker = celery_worker_factory(amqp_url)
    client = worker.app()
    try:
        ok = client.send_task("workerapp.add", (20, 22)).id
        fail = client.send_task("workerapp.always_fail", ({"k": 1},)).id
        flaky = client.send_task("workerapp.flaky", (5,), {"fail_for": 2}).id
        add = "workerapp.add"
        result = (client.signature(add, (1, 2)) | client.signature(add, (3,))).apply_async()
        chain = [result.parent.id, result.id]
    finally:
        client.close()
    expected: dict[str, str] = {ok: "SUCCESS", fail: "FAILURE", flaky: "SUCCESS",
                                chain[0]: "SUCCESS", chain[1]: "SUCCESS"}
    for ingestor in (fast, kombu):
        wait_for(lambda i=ingestor: all(_state(i.index, t) == s for t, s in expected.items()),
                 60, what=f"the tasks to finish ({ingestor.path} path)")
    # both saw the same stream: wait until the event counts settle and agree
    wait_for(lambda: fast.index.events_total == kombu.index.events_total, 60,
             what="both paths to apply the same number of events")
    for task_id in expected:
        assert _record(fast.index, task_id) == _record(kombu.index, task_id)
    rec = fast.index.get(fail)
    assert rec is not None and rec.traceback and "ValueError" in rec.traceback
    flaky_rec = fast.index.get(flaky)
    assert flaky_rec is not None and flaky_rec.retries == 2 and flaky_rec.n_retried == 2
    chained = fast.index.get(chain[1])
    assert chained is not None and chained.parent_id == chain[0]
    assert abs((fast.index.get(ok).succeeded or 0) - time.time()) < 120  # type: ignore[union-attr]
    wait_for(lambda: worker.hostname in fast.index.workers, 60, what="the worker record")
    assert fast.counters()["malformed"] == fast.counters()["unsupported"] == 0
    assert fast.index.counts()["by_state"] == kombu.index.counts()["by_state"]
    reader = fast._session.read_ahead
    assert reader.inline is (fast.read_ahead == 0) and (reader.peak == 0) is reader.inline
    stop_promptly(fast)


def test_wrong_password_is_one_masked_line(amqp_url: str) -> None:
    bad = amqp_url.replace("guest:guest@", "guest:wrong-s3cret@", 1)
    assert bad != amqp_url
    ingestor = Ingestor(bad, TaskIndex(), mode="fast", wakeup=False)
    ingestor.start()
    try:
        wait_for(lambda: ingestor.status.state == RECONNECTING, 60, what="the login failure")
        error = ingestor.status.last_error or ""
        assert error and "\n" not in error and "s3cret" not in error
        assert "ACCESS_REFUSED" in error or "refused" in error.lower() or "closed" in error.lower()
        assert "s3cret" not in ingestor.status.describe()
    finally:
        stop_promptly(ingestor)


def test_stop_is_prompt_while_idle_and_queue_goes_away(amqp_url: str) -> None:
    ingestor = Ingestor(amqp_url, TaskIndex(), mode="fast", wakeup=False)
    ingestor.start()
    wait_for(lambda: ingestor.status.state == CONNECTED, 60, what="the AMQP connection")
    time.sleep(0.5)
    stop_promptly(ingestor)


def test_refused_connection_reconnects(amqp_url: str) -> None:
    # a port nothing listens on: reconnecting with a short error line, and stop stays prompt
    ingestor = Ingestor("amqp://guest:guest@127.0.0.1:1//", TaskIndex(), mode="fast",
                        wakeup=False)
    ingestor.start()
    try:
        wait_for(lambda: ingestor.status.state == RECONNECTING, 60, what="the refused connect")
        assert "refused" in (ingestor.status.last_error or "").lower()
    finally:
        stop_promptly(ingestor)


def _flood_body(index: int, padding: int) -> bytes:
    event = {"hostname": "flood@test", "utcoffset": 0, "pid": 1, "clock": index,
             "uuid": f"flood-{index}", "name": "flood", "args": "x" * padding, "kwargs": "{}",
             "retries": 0, "timestamp": time.time(), "type": "task-received"}
    return json.dumps(event).encode()


def _event_queues(amqp_url: str) -> list[dict[str, Any]]:
    """The vhost's ``celeryev.*`` queues as the management API reports them."""
    parts = urlsplit(amqp_url)
    vhost = unquote(parts.path[1:]) or "/"
    url = f"http://127.0.0.1:15672/api/queues/{quote(vhost, safe='')}"
    request = urllib.request.Request(url, headers={
        "Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()})
    with urllib.request.urlopen(request, timeout=10) as response:
        queues: list[dict[str, Any]] = json.load(response)
    return [q for q in queues if str(q.get("name", "")).startswith("celeryev.")]


@pytest.mark.timeout(180)
def test_read_ahead_rides_out_a_stall_longer_than_the_queue_ttl(amqp_url: str) -> None:
    """The ingest thread is held for longer than the event queue's 5 s message TTL while 24 MB
    of events are published: the read-ahead thread keeps taking them off the queue, so none
    expires there, and every event is applied once the ingest resumes. (Without it, RabbitMQ
    stops sending to the stalled consumer and the queued events expire silently.)"""
    import amqp

    index = TaskIndex()
    stall, stalled, release = threading.Event(), threading.Event(), threading.Event()

    def slow_consumer(events: Any, records: Any) -> None:
        if stall.is_set() and not release.is_set():
            stalled.set()
            release.wait(120)  # the ingest thread held, as a busy process would hold it

    ingestor = Ingestor(amqp_url, index, mode="fast", wakeup=False, on_batch=slow_consumer)
    parts = urlsplit(amqp_url)
    publisher = amqp.Connection(host=f"{parts.hostname}:{parts.port}",
                                virtual_host=unquote(parts.path[1:]) or "/")
    ingestor.start()
    try:
        wait_for(lambda: ingestor.status.state == CONNECTED, 60, what="the AMQP connection")
        assert ingestor.path == "fast"
        publisher.connect()
        channel = publisher.channel()
        wait_for(lambda: len(_event_queues(amqp_url)) == 1, 60, what="the event queue")
        (queue,) = _event_queues(amqp_url)
        assert queue["arguments"].get("x-message-ttl") == 5000
        stall.set()

        def publish(i: int) -> None:
            channel.basic_publish(
                amqp.Message(_flood_body(i, 4000), content_type="application/json",
                             content_encoding="utf-8"),
                exchange="celeryev", routing_key="task.received")

        publish(0)
        wait_for(stalled.is_set, 60, what="the consumer to stall")
        count = 6000  # ~24 MB
        for i in range(1, count + 1):
            publish(i)
        published_at = time.monotonic()
        # held past the TTL, until the queue is empty (drained by the read-ahead, or expired)
        wait_for(lambda: time.monotonic() > published_at + 6.0
                 and _event_queues(amqp_url)[0]["messages"] == 0, 60,
                 what="the TTL to pass and the event queue to empty")
        assert stalled.is_set() and not release.is_set()
        session = ingestor._session
        release.set()
        wait_for(lambda: len(index) == count + 1, 60,
                 what=f"all {count + 1} tasks applied (have {len(index)})")
        assert index.events_total == count + 1
        assert ingestor.status.state == CONNECTED and ingestor.status.gap is None
        ahead = getattr(session, "read_ahead", None)
        assert ahead is not None and ahead.peak > 8 << 20  # it held the stalled megabytes
    finally:
        release.set()
        ingestor.stop()
        publisher.collect() if not publisher.connected else publisher.close()
