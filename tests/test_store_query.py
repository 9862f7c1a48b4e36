"""Reading tasks back (lazycelery.store.query) on real SQLite and PostgreSQL: filtered pages
resumed by a cursor, lookup by id, the dashboard's first screen; and migration 2 on a store
written by schema 1."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from lazycelery.core.model import TaskRecord
from lazycelery.store import GapRow, Store, Transition, WorkerSample, WriteBatch, open_store
from lazycelery.store.query import TaskFilter, first_screen, get, page
from lazycelery.store.schema import MIGRATIONS, POSTGRESQL, SCHEMA_VERSION, SQLITE, VERSION_TABLE

STATES = ("SUCCESS", "FAILURE", "REVOKED")
NAMES = ("app.a", "app.b", "app.c")
T0 = 1_800_000_000.0


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


def _tasks(n: int = 400, seed: int = 1) -> list[TaskRecord]:
    """Tasks over 400 s; every fifth pair shares its time (ties the cursor must break)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        state = rng.choice(STATES)
        t = T0 + (i - i % 2 * (i % 5 == 1))  # i and i-1 tie when i % 5 == 1
        rec = TaskRecord(uuid=f"task-{i:04d}", name=rng.choice(NAMES), state=state,
                         worker=f"w{i % 3}@h", queue="q", received=t - 0.5)
        if state == "SUCCESS":
            rec.succeeded = t
        elif state == "FAILURE":
            rec.failed = t
        else:
            rec.revoked = t
        out.append(rec)
    return out


def _fill(store: Store, tasks: list[TaskRecord]) -> None:
    transitions = [Transition(t.uuid, "task-received", t.received, t.worker, 0) for t in tasks]
    store.write(WriteBatch(tasks=tasks, transitions=transitions))


def _last(rec: TaskRecord) -> float:
    return max(t for t in (rec.received, rec.succeeded, rec.failed, rec.revoked) if t)


def _expected(tasks: list[TaskRecord], flt: TaskFilter) -> list[str]:
    """The page order by hand: newest first, ties by insertion order (id) descending."""
    ids = {t.uuid: i for i, t in enumerate(tasks)}
    keep = [t for t in tasks
            if (not flt.states or t.state in flt.states) and (not flt.names or t.name in flt.names)
            and (flt.since is None or _last(t) >= flt.since)
            and (flt.until is None or _last(t) < flt.until)]
    keep.sort(key=lambda t: (_last(t), ids[t.uuid]), reverse=True)
    return [t.uuid for t in keep]


def _all_pages(store: Store, flt: TaskFilter, limit: int) -> list[str]:
    got: list[str] = []
    cursor = None
    for _ in range(1000):
        p = page(store, flt, cursor, limit)
        assert len(p.tasks) <= limit
        got.extend(t.record.uuid for t in p.tasks)
        if p.next is None:
            return got
        cursor = p.next
    raise AssertionError("paging did not end")


@pytest.mark.parametrize("flt", [
    TaskFilter(),
    TaskFilter(states=("FAILURE",), names=("app.b",), since=T0 + 50, until=T0 + 300),
    TaskFilter(states=("FAILURE", "REVOKED"), names=("app.a", "app.c")),  # split and merged
    TaskFilter(names=("app.a",), until=T0 + 200),
    TaskFilter(states=("SUCCESS",), since=T0 + 390),
    TaskFilter(states=("FAILURE",), names=("nope",)),
], ids=["all", "state-name-range", "several", "name-until", "state-since", "none"])
def test_pages_walk_every_match_newest_first_once(store: Store, flt: TaskFilter) -> None:
    tasks = _tasks()
    _fill(store, tasks)
    expected = _expected(tasks, flt)
    assert _all_pages(store, flt, 7) == expected
    first = page(store, flt, None, 1000)
    assert [t.record.uuid for t in first.tasks] == expected and first.next is None


def test_a_page_holds_the_stored_records(store: Store) -> None:
    tasks = _tasks(20)
    _fill(store, tasks)
    top = page(store, TaskFilter(), None, 3)
    by_id = {t.uuid: t for t in tasks}
    for stored in top.tasks:
        assert stored.record.name == by_id[stored.record.uuid].name
        assert stored.record.state == by_id[stored.record.uuid].state
        assert stored.last_time == _last(by_id[stored.record.uuid])
    assert top.next == top.tasks[-1].cursor


def test_get_a_task_with_its_transitions(store: Store) -> None:
    tasks = _tasks(10)
    _fill(store, tasks)
    detail = get(store, "task-0003")
    assert detail is not None and detail.record.uuid == "task-0003"
    assert [t.type for t in detail.transitions] == ["task-received"]
    assert get(store, "task-9999") is None


def test_first_screen_recent_tasks_latest_worker_samples_and_gaps(store: Store) -> None:
    tasks = _tasks(50)
    _fill(store, tasks)
    samples = [WorkerSample(f"w{h}@h", T0 + t, "heartbeat", t, 10 * t, 0.1, 0.1, 0.1, 1, 2.0,
                            "5.7") for h in range(3) for t in range(0, 40, 10)]
    samples.append(WorkerSample("w9@h", T0 - 5000, "offline", None, None, None, None, None,
                                None, None, None))
    store.write(WriteBatch(workers=samples, gaps=[GapRow(T0 + 45, T0 + 46, "lost", "ingest"),
                                                  GapRow(T0 - 900, T0 - 800, "old", "ingest")]))
    screen = first_screen(store, 10)
    assert [t.record.uuid for t in screen.tasks] == _expected(tasks, TaskFilter())[:10]
    assert [(w.hostname, w.time) for w in screen.workers] == [
        ("w0@h", T0 + 30), ("w1@h", T0 + 30), ("w2@h", T0 + 30), ("w9@h", T0 - 5000)]
    assert [w.hostname for w in first_screen(store, 10, workers_since=T0).workers] == [
        "w0@h", "w1@h", "w2@h"]
    assert [g.cause for g in screen.gaps] == ["lost"]  # the old one is before the screen


def test_sqlite_pages_use_the_state_name_time_index(tmp_path: Path) -> None:
    """Without statistics SQLite picked the name index and tested every task of that name."""
    store = open_store(f"sqlite:///{tmp_path / 'h.sqlite3'}")
    traced: list[str] = []
    store._conn.set_trace_callback(traced.append)  # type: ignore[attr-defined]
    page(store, TaskFilter(states=("FAILURE",), names=("app.a",), since=T0), None, 10)
    store._conn.set_trace_callback(None)  # type: ignore[attr-defined]
    (sql,) = [s for s in traced if s.startswith("SELECT") and "FROM tasks" in s]
    plan = store.query("EXPLAIN QUERY PLAN " + sql)
    assert "tasks_state_name_time" in str(plan)
    store.close()


def test_a_schema_1_store_is_migrated_forward_keeping_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    import sqlite3

    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute(VERSION_TABLE)
    for statement in MIGRATIONS[0].statements(SQLITE):
        conn.execute(statement)
    conn.execute("INSERT INTO lazycelery_schema (version) VALUES (1)")
    conn.execute("INSERT INTO tasks (uuid, state, name, last_time) VALUES "
                 "('old-1', 'SUCCESS', 'app.a', 5.0)")
    conn.close()
    store = open_store(f"sqlite:///{path}")
    assert store.schema_version() == SCHEMA_VERSION == 3
    assert store.has_table("audit")
    assert [t.record.uuid for t in page(store, TaskFilter(states=("SUCCESS",),
                                                          names=("app.a",))).tasks] == ["old-1"]
    store.close()


def test_a_reader_that_may_not_migrate_reads_a_schema_1_store_as_it_is(
        postgres_url: str) -> None:
    """A dashboard's SELECT-only role meets a store still at schema 1 (no recorder of the new
    version has run yet): it reads it as it is; the next recorder migrates it."""
    import uuid

    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(VERSION_TABLE)
        for statement in MIGRATIONS[0].statements(POSTGRESQL):
            conn.execute(statement)
        conn.execute("INSERT INTO lazycelery_schema (version) VALUES (1)")
        conn.execute("INSERT INTO tasks (uuid, state, name, last_time) VALUES "
                     "('old-1', 'FAILURE', 'app.a', 5.0)")
        role = f"lc_ro_{uuid.uuid4().hex[:8]}"
        database = postgres_url.rsplit("/", 1)[1]
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
        try:
            conn.execute(f'GRANT CONNECT ON DATABASE "{database}" TO "{role}"')
            conn.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{role}"')
            prefix = postgres_url.rsplit("/", 1)[0].split("://", 1)[1].rsplit("@", 1)[-1]
            reader = open_store(f"postgresql://{role}@{prefix}/{database}", writer=False)
            assert reader.schema_version() == 1
            found = page(reader, TaskFilter(states=("FAILURE",), names=("app.a",)))
            assert [t.record.uuid for t in found.tasks] == ["old-1"]
            reader.close()
            recorder = open_store(postgres_url)
            assert recorder.schema_version() == SCHEMA_VERSION
            recorder.close()
        finally:
            conn.execute(f'DROP OWNED BY "{role}"')
            conn.execute(f'DROP ROLE "{role}"')
