"""Poison input over real brokers: mutated real events published on the event channel among valid
ones, through the Redis fast path, the AMQP fast path and the kombu path on both. Every valid event
is applied, the connection is never dropped (no reconnect, no gap), the bad ones are counted and
reported; `lazycelery tail --json` prints every valid event and says what it skipped."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from test_tail_helpers import TailProcess, assert_no_traceback

from conftest import wait_for
from lazycelery.core.index import TaskIndex
from lazycelery.core.ingest import CONNECTED, CONNECTING, Ingestor, IngestStatus
from tests.mutations import Fuzzer, Message, redis_envelope
from tests.replay import record_dict

pytestmark = pytest.mark.integration

#: valid task lifecycles (4 events each) and bad messages per test
TASKS = 250
POISON = 400


# --------------------------------------------------------------------------- publishers


class RedisPublisher:
    """PUBLISH on the event channel of the URL's db, as kombu's Redis transport does."""

    def __init__(self, url: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url)
        db = urlsplit(url).path.strip("/") or "0"
        self.channel = f"/{db}.celeryev/task.multi"

    def send(self, messages: list[Message]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for msg in messages:
            pipe.publish(self.channel, redis_envelope(msg))
        pipe.execute()

    def close(self) -> None:
        self.client.close()


class AmqpPublisher:
    """basic_publish on the ``celeryev`` topic exchange with the message's properties."""

    def __init__(self, url: str) -> None:
        import amqp

        from lazycelery.core.ingest_amqp import parse_amqp_url

        ep = parse_amqp_url(url)
        self.amqp = amqp
        self.conn = amqp.Connection(host=ep.address, userid=ep.userid, password=ep.password,
                                    virtual_host=ep.virtual_host)
        self.conn.connect()
        self.channel = self.conn.channel()

    def send(self, messages: list[Message]) -> None:
        for msg in messages:
            props: dict[str, Any] = {"content_encoding": "utf-8",
                                     "application_headers": {"hostname": "fuzz@h", **msg.headers}}
            if msg.content_type is not None:
                props["content_type"] = msg.content_type
            self.channel.basic_publish(self.amqp.Message(msg.body, **props),
                                       exchange="celeryev", routing_key=msg.routing_key)

    def close(self) -> None:
        self.conn.close()


Publisher = RedisPublisher | AmqpPublisher


# --------------------------------------------------------------------------- the run


class Watched:
    """An Ingestor with every status and notice it reported."""

    def __init__(self, url: str, mode: str) -> None:
        self.index = TaskIndex()
        self.statuses: list[IngestStatus] = []
        self.notices: list[str] = []
        self.ingestor = Ingestor(url, self.index, mode=mode, wakeup=False,
                                 on_status=self.statuses.append, on_notice=self.notices.append)

    def states(self) -> set[str]:
        return {s.state for s in self.statuses}


@pytest.fixture
def watch() -> Iterator[Callable[[str, str], Watched]]:
    made: list[Watched] = []

    def make(url: str, mode: str) -> Watched:
        watched = Watched(url, mode)
        made.append(watched)
        watched.ingestor.start()
        return watched

    yield make
    for watched in made:
        watched.ingestor.stop()


def subscribed(publisher: Publisher, fuzzer: Fuzzer, index: TaskIndex) -> None:
    """Publish a valid probe until the index has it: a PUB/SUB subscriber sees nothing sent
    before its subscription, and kombu's Redis channel subscribes on its first read."""
    probe = fuzzer.valid_task()[:1]
    msg = fuzzer.valid_message(probe)

    def seen() -> bool:
        if probe[0]["uuid"] in index:
            return True
        publisher.send([msg])
        return False

    wait_for(seen, 60, interval=0.2, what="the subscription")


def expected(messages: list[Message]) -> TaskIndex:
    index = TaskIndex()
    for msg in messages:
        index.apply_batch(msg.valid)
    return index


def all_valid_applied(got: TaskIndex, want: TaskIndex, uuids: set[str]) -> bool:
    for uuid in uuids:
        rec, ref = got.get(uuid), want.get(uuid)
        if rec is None or ref is None or rec.state != ref.state:
            return False
    return True


def run_poison_stream(watched: Watched, publisher: Publisher, transport: str, seed: int) -> None:
    ingestor, index = watched.ingestor, watched.index
    wait_for(lambda: ingestor.status.state == CONNECTED, 60,
             what=f"{ingestor.path} ingest to connect ({ingestor.status.describe()})")
    fuzzer = Fuzzer(seed=seed, broker=transport)
    subscribed(publisher, fuzzer, index)
    stream = fuzzer.stream(tasks=TASKS, poison=POISON, transport=transport)
    for start in range(0, len(stream), 50):
        publisher.send(stream[start:start + 50])
    want = expected(stream)
    uuids = {e["uuid"] for m in stream for e in m.valid if "uuid" in e}
    assert len(uuids) >= TASKS
    wait_for(lambda: all_valid_applied(index, want, uuids), 60, interval=0.1,
             what=f"every valid event ({ingestor.path} path, {transport})")
    # every valid record is exactly what the valid events alone build
    with index.lock:
        for uuid in uuids:
            assert record_dict(index.get(uuid), "last_seen") == \
                record_dict(want.get(uuid), "last_seen"), uuid
    host = fuzzer.valid_worker
    wait_for(lambda: host in index.workers and index.workers[host].processed
             == want.workers[host].processed, 60, what="the valid worker's last heartbeat")
    assert record_dict(index.workers[host], "last_heartbeat") == \
        record_dict(want.workers[host], "last_heartbeat")
    # the connection was never dropped for a bad event: no reconnect, no gap
    assert watched.states() <= {CONNECTING, CONNECTED}, [s.describe() for s in watched.statuses]
    assert ingestor.status.gap is None and ingestor.status.attempt == 0
    # the bad ones were counted (at least one count each where that is certain) and reported
    counted = sum(1 for m in stream if m.counted)
    bad = index.bad
    assert bad.total >= counted > POISON // 2, (bad.total, counted, bad.counts)
    wait_for(lambda: ingestor.status.skipped == bad.skipped > 0, 60,
             what="the skipped count in the ingest status")
    assert any(line.startswith("bad events: ") for line in watched.notices), watched.notices
    counters = ingestor.counters()
    assert counters["skipped"] == bad.skipped and counters["repaired"] == bad.repaired
    assert sum(ingestor.bad_input().values()) == bad.total


@pytest.mark.parametrize("mode", ["fast", "kombu"])
def test_redis_poison_costs_only_itself(redis_url: str, mode: str,
                                        watch: Callable[[str, str], Watched]) -> None:
    watched = watch(redis_url, mode)
    assert watched.ingestor.path == mode
    publisher = RedisPublisher(redis_url)
    try:
        run_poison_stream(watched, publisher, "redis", seed=101 if mode == "fast" else 102)
    finally:
        publisher.close()


@pytest.mark.parametrize("mode", ["fast", "kombu"])
def test_amqp_poison_costs_only_itself(amqp_url: str, mode: str,
                                       watch: Callable[[str, str], Watched]) -> None:
    watched = watch(amqp_url, mode)
    assert watched.ingestor.path == mode
    wait_for(lambda: watched.ingestor.status.state == CONNECTED, 60, what="the AMQP connection")
    publisher = AmqpPublisher(amqp_url)
    try:
        run_poison_stream(watched, publisher, "amqp", seed=201 if mode == "fast" else 202)
    finally:
        publisher.close()


def test_tail_prints_every_valid_event_and_reports_the_bad_ones(redis_url: str) -> None:
    tail = TailProcess(redis_url, "--json")
    publisher = RedisPublisher(redis_url)
    fuzzer = Fuzzer(seed=301)
    try:
        probe = fuzzer.valid_task()[:1]
        deadline = time.monotonic() + 30
        while True:  # tail is subscribed once it prints a probe
            publisher.send([fuzzer.valid_message(probe)])
            try:
                tail.wait_doc(lambda d: d.get("uuid") == probe[0]["uuid"], timeout=0.5)
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
        stream = fuzzer.stream(tasks=60, poison=120)
        publisher.send(stream)
        valid = {(e["uuid"], e["type"]) for m in stream for e in m.valid if "uuid" in e}
        def shown() -> set[tuple[str, str]]:
            # (bad events that reached tail print their fields as they came: not hashable)
            return {(d["uuid"], d["type"]) for d in tail.docs()
                    if isinstance(d.get("uuid"), str) and isinstance(d.get("type"), str)}

        tail.wait_until(lambda: valid <= shown(), 60, "every valid event on stdout")
        tail.wait_stderr("bad events: ", timeout=60)
        errors = tail.stderr()
        assert "connection lost" not in errors and "reconnect" not in errors, errors
        assert_no_traceback(errors)
        assert "\x1b" not in errors
    finally:
        publisher.close()
        tail.close()
