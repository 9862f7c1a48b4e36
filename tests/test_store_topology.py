"""Several recorders: shards of task ids (stable, complete, disjoint), the ingest filter, the
shared event queue's declaration, and the database backfill's window merging."""

from __future__ import annotations

import uuid
import zlib

import pytest

from lazycelery.core.batch import BatchSink
from lazycelery.core.index import TaskIndex
from lazycelery.core.ingest_amqp import SHARED_QUEUE_MAX_LENGTH, shared_event_queue
from lazycelery.store.backfill_db import _merged
from lazycelery.store.topology import Shard, Topology, parse_shard, shard_of


def test_a_task_id_has_the_same_shard_in_every_process() -> None:
    # CRC-32, not hash(): the same in every process whatever PYTHONHASHSEED says
    assert shard_of("7c4bbd15-0d53-4c36-9a3e-1d5b0c1b3e2a", 2) == shard_of(
        "7c4bbd15-0d53-4c36-9a3e-1d5b0c1b3e2a", 2)
    assert [shard_of(f"task-{i}", 3) for i in range(6)] == [
        zlib.crc32(f"task-{i}".encode()) % 3 for i in range(6)]


def test_shards_split_the_ids_completely_and_evenly() -> None:
    ids = [str(uuid.uuid4()) for _ in range(4000)]
    shards = [Shard(i, 4) for i in range(4)]
    owners = [[s.index for s in shards if s.owns(u)] for u in ids]
    assert all(len(o) == 1 for o in owners)
    counts = [sum(1 for o in owners if o == [i]) for i in range(4)]
    assert min(counts) > 800  # 1,000 each, give or take


def test_parse_shard_and_its_one_line_errors() -> None:
    assert parse_shard("1/3") == Shard(1, 3)
    assert parse_shard(" 0/1 ").label == "shard 0/1"
    for bad, text in (("2", "expected I/N"), ("a/b", "expected I/N"), ("2/2", "0 to N-1"),
                      ("-1/2", "0 to N-1"), ("0/0", "0 to N-1")):
        with pytest.raises(ValueError, match=text):
            parse_shard(bad)


def test_topology_labels_and_who_writes_samples() -> None:
    assert Topology().label is None and Topology().writes_samples and not Topology().several
    assert Topology(shard=Shard(0, 2)).writes_samples
    assert not Topology(shard=Shard(1, 2)).writes_samples
    shared = Topology(shared_queue="lc.rec")
    assert shared.label == "shared queue lc.rec" and shared.writes_samples and shared.several
    assert shared.owns("anything")


def test_the_shard_filter_drops_other_shards_task_events_before_the_index() -> None:
    shard = Shard(0, 2)
    mine = next(u for u in (str(uuid.uuid4()) for _ in range(100)) if shard.owns(u))
    other = next(u for u in (str(uuid.uuid4()) for _ in range(100)) if not shard.owns(u))
    index = TaskIndex(max_tasks=100)
    seen: list[int] = []
    sink = BatchSink(index, lambda events, records: seen.append(len(events)),
                     keep=shard.event_filter())
    sink.extend([
        {"type": "task-received", "uuid": mine, "timestamp": 1.0, "hostname": "w", "name": "a"},
        {"type": "task-received", "uuid": other, "timestamp": 1.0, "hostname": "w", "name": "b"},
        {"type": "worker-heartbeat", "hostname": "w", "timestamp": 1.0, "freq": 2.0,
         "active": 0, "processed": 1},
    ])
    sink.flush()
    assert index.get(mine) is not None and index.get(other) is None
    assert seen == [2]  # the worker event is kept by every shard
    sink.extend([{"type": "task-succeeded", "uuid": other, "timestamp": 2.0}])
    sink.flush()
    assert seen == [2] and index.get(other) is None


def test_the_shared_event_queue_is_durable_named_and_bounded() -> None:
    queue = shared_event_queue("lc.rec")
    assert (queue.name, queue.exchange, queue.routing_key) == ("lc.rec", "celeryev", "#")
    assert queue.durable and not queue.exclusive
    assert queue.arguments == {"x-max-length": SHARED_QUEUE_MAX_LENGTH}  # no TTL, no expiry


def test_database_backfill_reads_overlapping_windows_once() -> None:
    assert _merged([(5.0, 9.0), (0.0, 2.0), (1.0, 3.0), (8.0, 12.0)]) == [(0.0, 3.0),
                                                                          (5.0, 12.0)]
    assert _merged([]) == []
