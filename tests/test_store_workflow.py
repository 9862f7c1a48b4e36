"""A workflow tree read from the history store alone (``lazycelery task tree``, serve's
``/api/v1/tasks/{id}/tree``): its tasks are found by their links (uuid, parent_id, root_id;
store/workflow.py), whenever they ran. The recorded redis stream (every parent's children, as
memory links them) and the recorded canvases (a chain, a group, a chord, a nested chain of
groups: the same tree as from memory, with and without the result backend's metas), with some
steps moved days after the task before them; memory and the store combined; schema 3's
``tasks_parent`` index, on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
import gzip
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lazycelery.cli import main
from lazycelery.core.index import TaskIndex
from lazycelery.core.workflow import tree_json
from lazycelery.core.workflow_fetch import gather
from lazycelery.store import open_store
from lazycelery.store.backend import Store
from lazycelery.store.capture import BatchCapture
from lazycelery.store.schema import MIGRATIONS, SCHEMA_VERSION, SQLITE, VERSION_TABLE
from lazycelery.store.workflow import workflow_records
from tests.replay import load_events

DATA = Path(__file__).resolve().parent / "data" / "workflow" / "canvases.json.gz"
DAY = 86_400.0


@pytest.fixture(scope="module")
def recorded() -> dict[str, Any]:
    with gzip.open(DATA, "rt") as fh:
        data: dict[str, Any] = json.load(fh)
    return data


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


def _record(store: Store, events: list[dict[str, Any]], batch: int = 200) -> TaskIndex:
    """Events written as the recorder writes them; the index they built is returned (what a
    dashboard would have had in memory)."""
    index = TaskIndex(max_tasks=1_000_000)
    capture = BatchCapture()
    for start in range(0, len(events), batch):
        chunk = events[start:start + batch]
        store.write(capture.capture(chunk, index.apply_batch(chunk)))
    return index


def _later(events: list[dict[str, Any]], uuids: set[str], by: float) -> list[dict[str, Any]]:
    """The events of ``uuids`` moved ``by`` seconds later (sender and receiver clocks): those
    tasks ran long after the rest of their workflow."""
    out = copy.deepcopy(events)
    for event in out:
        if event.get("uuid") in uuids:
            event["timestamp"] += by
            if event.get("local_received") is not None:
                event["local_received"] += by
    out.sort(key=lambda e: e.get("local_received") or e["timestamp"])
    return out


def _cli_tree(capsys: pytest.CaptureFixture[str], url: str, task: str) -> dict[str, Any]:
    code = main(["task", "--config", "/dev/null", "tree", task, "--json", "--store", url,
                 "-b", "memory://"])
    out, err = capsys.readouterr()
    assert code == 0, err
    doc: dict[str, Any] = json.loads(out)
    return doc


def _all_ids(tree: dict[str, Any]) -> set[str]:
    out = {tree["id"]} if tree["kind"] == "task" else set()
    for child in tree["children"]:
        out |= _all_ids(child)
    return out


# ---------------------------------------------------------------------- the recorded stream


def test_every_parent_of_the_recorded_stream_shows_its_children_from_the_store(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The bug: the store's window was centred on the task's ``last_seen`` (when the recorder
    received it: here, today) but compared with event times (days earlier): no child found."""
    url = f"sqlite:///{tmp_path / 'redis.sqlite3'}"
    store = open_store(url)
    index = _record(store, load_events("redis"))
    parents = [r.uuid for r in index.records() if index.children_of(r.uuid)]
    assert len(parents) > 300
    for uuid in parents:  # the store alone links exactly what memory links
        found = workflow_records(store, [uuid], siblings=False)
        memory = gather(uuid, get=index.get, children_of=index.children_of)
        stored = gather(uuid, get=found.get, children_of=_children(found))
        assert tree_json(stored.root) == tree_json(memory.root), uuid
    store.close()
    for uuid in parents[:5]:  # and the CLI shows them
        doc = _cli_tree(capsys, url, uuid)
        kids = [c["id"] for c in doc["tree"]["children"]] if doc["tree"]["id"] == uuid else []
        root = index.get(uuid)
        assert root is not None
        if root.parent_id is None:
            assert kids == index.children_of(uuid)
        assert set(index.children_of(uuid)) <= _all_ids(doc["tree"])


def _children(records: dict[str, Any]) -> Any:
    kids: dict[str, list[str]] = {}
    for rec in records.values():
        if rec.parent_id:
            kids.setdefault(rec.parent_id, []).append(rec.uuid)
    return lambda u: kids.get(u, [])


# ---------------------------------------------------------------------- recorded canvases


def _nested(recorded: dict[str, Any]) -> str:
    """A task of the last group of chain(task, group, task, group) ("nested" is its group id)."""
    gid = recorded["ids"]["nested"]
    return sorted(u for u, m in recorded["metas"].items() if m.get("group_id") == gid)[0]


def _canvas_ids(recorded: dict[str, Any]) -> list[str]:
    ids = recorded["ids"]
    return [ids["chord"], *ids["group"], ids["chain"], _nested(recorded)]


def _fetch(recorded: dict[str, Any]) -> Any:
    metas = recorded["metas"]
    return lambda ids: {i: metas[i] for i in ids if i in metas}


def test_canvases_from_the_store_alone_equal_memory_s_trees(store: Store,
                                                             recorded: dict[str, Any]) -> None:
    """A chain, a top-level group, a top-level chord and chain(task, group, task, group): each
    one's last steps ran two days after its first (outside any window around the first), and
    nothing is in memory. From any of its tasks, the same tree as from memory."""
    events = recorded["events"]
    memory = TaskIndex(max_tasks=10_000)
    memory.apply_batch(events)
    late = {r.uuid for r in memory.records() if r.parent_id is not None}
    _record(store, _later(events, late, 2 * DAY))
    for focus in _canvas_ids(recorded):
        want = gather(focus, get=memory.get, children_of=memory.children_of,
                      records=memory.records, fetch=_fetch(recorded))
        every = [u for _d, n in want.root.walk() if n.kind == "task" for u in (n.id,)]
        assert len(every) >= 2
        for start in every:
            found = workflow_records(store, [start])
            got = gather(start, get=found.get, children_of=_children(found),
                         records=found.values, fetch=_fetch(recorded))
            assert tree_json(got.root) == tree_json(want.root), (focus, start)
            # without the backend: what events link, as from memory
            bare = workflow_records(store, [start], siblings=False)
            got = gather(start, get=bare.get, children_of=_children(bare))
            mem = gather(start, get=memory.get, children_of=memory.children_of)
            assert tree_json(got.root) == tree_json(mem.root), (focus, start)


def test_the_cli_tree_finds_children_that_ran_days_later(
        tmp_path: Path, recorded: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'h.sqlite3'}"
    store = open_store(url)
    memory = TaskIndex(max_tasks=10_000)
    memory.apply_batch(recorded["events"])
    nested = _nested(recorded)
    rec = memory.get(nested)
    assert rec is not None and rec.root_id is not None
    root = rec.root_id
    steps = {r.uuid for r in memory.records() if r.root_id == root and r.uuid != root}
    _record(store, _later(recorded["events"], steps, 3 * DAY))
    store.close()
    want = gather(root, get=memory.get, children_of=memory.children_of)
    doc = _cli_tree(capsys, url, root)
    assert doc["tree"] == tree_json(want.root)
    assert _all_ids(doc["tree"]) == steps | {root}
    doc = _cli_tree(capsys, url, nested)  # from the last step, up to the root and down again
    assert _all_ids(doc["tree"]) == steps | {root}


def test_a_task_missing_from_the_store_still_shows_its_stored_children(
        tmp_path: Path, recorded: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    """The root's own events were lost (a gap); its children name it as parent and root."""
    memory = TaskIndex(max_tasks=10_000)
    memory.apply_batch(recorded["events"])
    root = recorded["ids"]["chain"]
    rec = memory.get(root)
    assert rec is not None and rec.root_id is not None
    top = rec.root_id
    url = f"sqlite:///{tmp_path / 'h.sqlite3'}"
    store = open_store(url)
    _record(store, [e for e in recorded["events"] if e.get("uuid") != top])
    store.close()
    doc = _cli_tree(capsys, url, top)
    assert doc["tree"]["id"] == top and not doc["tree"]["known"]
    assert _all_ids(doc["tree"]) == {r.uuid for r in memory.records() if r.root_id == top}
    assert doc["notes"][-1] == "not in the history store"


# ---------------------------------------------------------------------- memory + store (serve)


def test_serve_joins_memory_and_the_store(tmp_path: Path, recorded: dict[str, Any]) -> None:
    """Memory holds only the chain's first step (serve restarted after it ran); the store holds
    the later steps only: the tree is the whole chain, from either."""
    pytest.importorskip("starlette", reason="the serve extra")
    from celery import Celery

    from lazycelery.serve.service import Service
    from lazycelery.serve.v1.debug_data import tree_doc

    full = TaskIndex(max_tasks=10_000)
    full.apply_batch(recorded["events"])
    last = recorded["ids"]["chain"]
    rec = full.get(last)
    assert rec is not None and rec.root_id is not None
    first = rec.root_id
    chain = {r.uuid for r in full.records() if r.root_id == first}
    assert len(chain) == 3
    url = f"sqlite:///{tmp_path / 'h.sqlite3'}"
    store = open_store(url)
    _record(store, _later([e for e in recorded["events"] if e.get("uuid") in chain - {first}],
                          chain, 2 * DAY))
    store.close()
    memory = TaskIndex()
    memory.apply_batch([e for e in recorded["events"] if e.get("uuid") == first])
    service = Service(app=Celery("t", broker="memory://", set_as_current=False),
                      index=memory, environment="test", store_url=url)
    want = tree_json(gather(first, get=full.get, children_of=full.children_of).root)
    for focus in (first, last):
        doc = tree_doc(service, focus)
        assert doc is not None and doc["tree"] == want, focus
    # without the store, memory alone: the first step only
    alone = Service(app=service.app, index=memory, environment="test")
    doc = tree_doc(alone, first)
    assert doc is not None and doc["tree"]["children"] == []


# ---------------------------------------------------------------------- the index


def test_children_are_read_through_the_parent_index_on_sqlite(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'h.sqlite3'}")
    traced: list[str] = []
    store._conn.set_trace_callback(traced.append)  # type: ignore[attr-defined]
    workflow_records(store, ["a-task"], siblings=False)
    store._conn.set_trace_callback(None)  # type: ignore[attr-defined]
    plans = {column: str(store.query("EXPLAIN QUERY PLAN " + sql))
             for sql in traced if sql.startswith("SELECT")
             for column in ("uuid", "parent_id", "root_id") if f"WHERE {column} IN" in sql}
    assert "tasks_parent" in plans["parent_id"]
    assert "tasks_root" in plans["root_id"]
    assert "uuid" in plans["uuid"] and "SCAN tasks" not in plans["uuid"]
    store.close()


def test_a_schema_2_store_gets_the_parent_index(store_url: str) -> None:
    """Migration 3 on a store at schema 2 (as every store written before it): its rows kept."""
    dialect_statements = _schema_2_statements(store_url)
    if store_url.startswith("sqlite"):
        conn = sqlite3.connect(store_url.removeprefix("sqlite:///"), isolation_level=None)
        run = conn.execute
    else:
        import psycopg

        pg = psycopg.connect(store_url, autocommit=True)
        run = pg.execute  # type: ignore[assignment]
    run(VERSION_TABLE)
    for statement in dialect_statements:
        run(statement)
    run("INSERT INTO lazycelery_schema (version) VALUES (2)")
    run("INSERT INTO tasks (uuid, state, name, parent_id, root_id, last_time) VALUES "
        "('kid', 'SUCCESS', 'app.a', 'top', 'top', 5.0)")
    if store_url.startswith("sqlite"):
        conn.close()
    else:
        pg.close()
    store = open_store(store_url)
    try:
        assert store.schema_version() == SCHEMA_VERSION == 3
        if store_url.startswith("sqlite"):
            names = {r[0] for r in store.query(
                "SELECT name FROM sqlite_master WHERE type = 'index'")}
        else:
            names = {r[0] for r in store.query(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'tasks'")}
        assert "tasks_parent" in names
        assert set(workflow_records(store, ["top"], siblings=False)) == {"kid"}
    finally:
        store.close()


def _schema_2_statements(store_url: str) -> list[str]:
    from lazycelery.store.schema import POSTGRESQL

    dialect = SQLITE if store_url.startswith("sqlite") else POSTGRESQL
    return [s for m in MIGRATIONS if m.version <= 2 for s in m.statements(dialect)]


def test_a_huge_workflow_is_read_up_to_the_limit(tmp_path: Path) -> None:
    """A root with 300 children, read with a limit of 50: 50 tasks, no more (each query is
    bounded too), and the root among them."""
    t0 = 1_700_000_000.0
    events = [{"type": "task-received", "uuid": "root", "name": "app.fan", "parent_id": None,
               "root_id": "root", "timestamp": t0, "hostname": "w@h", "local_received": t0}]
    events += [{"type": "task-received", "uuid": f"kid-{i:03d}", "name": "app.leaf",
                "parent_id": "root", "root_id": "root", "timestamp": t0 + i * 600.0,
                "hostname": "w@h", "local_received": t0 + i * 600.0} for i in range(1, 301)]
    store = open_store(f"sqlite:///{tmp_path / 'h.sqlite3'}")
    _record(store, events)
    assert len(workflow_records(store, ["kid-300"], siblings=False)) == 301  # 50 hours apart
    found = workflow_records(store, ["root"], siblings=False, limit=50)
    assert len(found) == 50 and "root" in found
    store.close()
