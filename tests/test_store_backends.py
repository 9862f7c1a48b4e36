"""The history store on real databases: SQLite in tmp_path and PostgreSQL (a database of the
test's own on 127.0.0.1:5432, skipped with the reason when no server answers)."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from lazycelery.core.index import TaskIndex
from lazycelery.core.model import TaskRecord
from lazycelery.store import (
    GapRow,
    Retention,
    Store,
    StoreError,
    Transition,
    WriteBatch,
    open_store,
)
from lazycelery.store.capture import BatchCapture
from lazycelery.store.history import history_events
from lazycelery.store.schema import SCHEMA_VERSION
from tests.replay import load_events, record_dict

# Fields that depend on when or how often a record was applied, not on which events it saw.
VOLATILE = ("last_seen",)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'history.sqlite3'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = open_store(store_url)
    try:
        yield opened
    finally:
        opened.close()


def _record_stream(store: Store, events: list[dict[str, Any]], batch: int = 300) -> TaskIndex:
    """Apply events to an index in batches and write each batch as the recorder does."""
    index = TaskIndex(max_tasks=1_000_000)
    capture = BatchCapture()
    for start in range(0, len(events), batch):
        chunk = events[start:start + batch]
        store.write(capture.capture(chunk, index.apply_batch(chunk)))
    return index


def _stored(store: Store, uuids: list[str]) -> dict[str, TaskRecord]:
    return {uuid: rec for uuid, (rec, _) in store.fetch_tasks(uuids).items()}


def test_a_recorded_stream_is_stored_task_by_task_as_the_index_has_it(store: Store) -> None:
    events = load_events("redis")
    index = _record_stream(store, events)
    live = {rec.uuid: rec for rec in index.snapshot()}
    stored = _stored(store, list(live))
    assert len(stored) == len(live) == store.count("tasks")
    for uuid, rec in live.items():
        assert record_dict(stored[uuid], *VOLATILE) == record_dict(rec, *VOLATILE), uuid
    task_events = [e for e in events if e["type"].startswith("task-")]
    assert store.count("transitions") == len(task_events)
    assert store.count("worker_samples") >= 4  # online and offline of both workers


def test_a_restarted_recorder_merges_with_what_the_first_one_stored(store: Store) -> None:
    """Two recorder runs, each seeing part of every task's events (in any order), end with
    the record one index would build from all of them."""
    events = [e for e in load_events("amqp") if e["type"].startswith("task-")]
    rng = random.Random(7)
    first, second = [], []
    for event in events:
        (first if rng.random() < 0.5 else second).append(event)
    _record_stream(store, second)
    _record_stream(store, first)  # a new run: its index starts empty
    whole = TaskIndex(max_tasks=1_000_000)
    whole.apply_batch(events)
    stored = _stored(store, [r.uuid for r in whole.snapshot()])
    for rec in whole.snapshot():
        got = stored[rec.uuid]
        assert got.state == rec.state, rec.uuid
        assert (got.name, got.args, got.result, got.exception) == (
            rec.name, rec.args, rec.result, rec.exception), rec.uuid
        assert (got.succeeded, got.failed, got.started) == (rec.succeeded, rec.failed, rec.started)
        if rec.state in ("SUCCESS", "FAILURE"):
            assert got.worker == rec.worker, rec.uuid


def test_history_replayed_through_an_index_gives_the_same_records(store: Store) -> None:
    events = load_events("redis")
    index = _record_stream(store, events)
    replay = TaskIndex(max_tasks=1_000_000)
    items = list(history_events(store, 0.0, time.time() + 3600))
    assert all(isinstance(item, dict) and item["history"] is True for item in items)
    times = [item["timestamp"] for item in items if isinstance(item, dict)]
    assert times == sorted(times)
    replay.apply_batch([item for item in items if isinstance(item, dict)])
    for rec in index.snapshot():
        again = replay.get(rec.uuid)
        assert again is not None
        assert (again.state, again.name, again.worker, again.args, again.result,
                again.exception, again.retries) == (
            rec.state, rec.name, rec.worker, rec.args, rec.result, rec.exception, rec.retries)


def test_gaps_recorder_runs_and_history_order(store: Store) -> None:
    now = time.time()
    run, previous = store.begin_recorder("host-a", 123, "redis://h/0", now=now - 100)
    assert previous is None
    store.write(WriteBatch(gaps=[GapRow(now - 50, now - 40, "disconnected: refused", "ingest")]),
                recorder=run, now=now - 30)
    store.end_recorder(run, now=now - 20)
    again, previous = store.begin_recorder("host-a", 124, "redis://h/0", now=now)
    assert again != run and previous is not None
    assert (previous.pid, previous.stopped) == (123, pytest.approx(now - 20))
    (gap,) = store.gaps(now - 45, now)
    assert (gap.cause, gap.source, gap.end - gap.start) == (
        "disconnected: refused", "ingest", pytest.approx(10))
    assert store.gaps(now - 39, now) == []


def test_retention_by_age_and_by_count_prunes_in_small_steps(store: Store) -> None:
    now = time.time()
    old = [{"type": "task-succeeded", "uuid": f"old-{i}", "timestamp": now - 86400 * 3,
            "hostname": "w"} for i in range(25)]
    new = [{"type": "task-succeeded", "uuid": f"new-{i}", "timestamp": now - i,
            "hostname": "w"} for i in range(30)]
    _record_stream(store, old + new)
    assert store.count("tasks") == 55
    steps = []
    while (deleted := store.prune(Retention(max_age=86400), now=now, limit=10)):
        steps.append(deleted)
    assert len(steps) >= 3  # 25 tasks + 25 transitions, at most 10 of each per step
    assert store.count("tasks") == 30 and store.count("transitions") == 30
    while store.prune(Retention(max_tasks=12), now=now, limit=5):
        pass
    kept = {uuid for uuid in (f"new-{i}" for i in range(30)) if store.get_task(uuid)}
    assert kept == {f"new-{i}" for i in range(12)}  # the most recently active
    assert store.count("transitions") == 12


def test_a_store_written_by_a_newer_version_is_refused_in_one_line(store_url: str) -> None:
    store = open_store(store_url)
    with store.transaction():
        store.execute("INSERT INTO lazycelery_schema (version, description) VALUES (?, ?)",
                      (SCHEMA_VERSION + 1, "from the future"))
    store.close()
    with pytest.raises(StoreError) as info:
        open_store(store_url)
    text = str(info.value)
    assert "\n" not in text
    assert f"schema {SCHEMA_VERSION + 1}" in text and "upgrade lazycelery" in text


def test_opening_twice_migrates_once(store_url: str) -> None:
    for _ in range(2):
        store = open_store(store_url)
        assert store.schema_version() == SCHEMA_VERSION
        assert store.count("tasks") == 0
        store.close()


def test_backfilled_tasks_keep_the_mark_until_events_arrive(store: Store) -> None:
    now = time.time()
    rec = TaskRecord(uuid="b1", state="SUCCESS", name="x.y", result="3", succeeded=now)
    store.write(WriteBatch(tasks=[rec], backfilled={"b1"},
                           transitions=[Transition("b1", "task-succeeded", now, None, None, True)]))
    assert store.get_task("b1") == (rec, True)
    (item,) = [i for i in history_events(store, now - 1, now + 1) if isinstance(i, dict)]
    assert item["backfilled"] is True and item["result"] == "3"
    later = msgspec.structs.replace(TaskRecord(uuid="b1"), received=now - 1, received_attempt=0,
                                    name="x.y", state="RECEIVED")
    store.write(WriteBatch(tasks=[later]))
    got, backfilled = store.get_task("b1") or (None, None)
    assert backfilled is False and got is not None and got.state == "SUCCESS"


def test_a_read_only_postgresql_role_reads_history_but_cannot_record(postgres_url: str) -> None:
    """A dashboard's role may have SELECT only: opening a current store writes nothing, and a
    recorder with that role is refused at start in one line."""
    import uuid

    import psycopg

    open_store(postgres_url).close()  # the schema, made by a recorder's role
    role = f"lc_ro_{uuid.uuid4().hex[:8]}"
    prefix, database = postgres_url.rsplit("/", 1)
    host = prefix.partition("://")[2].rpartition("@")[2]
    reader_url = f"postgresql://{role}@{host}/{database}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'CREATE ROLE "{role}" LOGIN')
        admin.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{role}"')
    try:
        reader = open_store(reader_url, create=False, writer=False)
        assert reader.count("tasks") == 0
        reader.close()
        with pytest.raises(StoreError) as info:
            open_store(reader_url)
        assert str(info.value) == (f"store {reader_url}: permission denied for table tasks")
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(f'REVOKE ALL ON ALL TABLES IN SCHEMA public FROM "{role}"')
            admin.execute(f'DROP ROLE "{role}"')
