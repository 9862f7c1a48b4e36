"""/api/v1 in process (Starlette's TestClient) over a replayed event stream: the filter
language, cursor paging over memory and a SQLite store, task detail, workers, queues, the
audit log's role, JSON errors naming the parameter, the OpenAPI document, and the stream hub's
loss accounting and resumption."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette", reason="the serve extra")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from lazycelery.core.index import TaskIndex
from lazycelery.core.query import compile_filter
from lazycelery.serve.app import build_app
from lazycelery.serve.auth import AuthConfig, Guard, hash_token
from lazycelery.serve.runtime import Observer
from lazycelery.serve.service import Service
from lazycelery.serve.v1.hub import StreamHub
from lazycelery.serve.v1.openapi import openapi_document
from tests.replay import load_events

TOKENS = {"tokens": [{"name": "v", "sha256": hash_token("view"), "role": "viewer"},
                     {"name": "o", "sha256": hash_token("op"), "role": "operator"}]}
VIEW = {"Authorization": "Bearer view"}
OP = {"Authorization": "Bearer op"}


def make_service(index: TaskIndex, **kw: Any) -> Service:
    from celery import Celery

    return Service(app=Celery("t", broker="memory://", set_as_current=False), index=index,
                   environment="test", **kw)


@pytest.fixture(scope="module")
def events() -> list[dict[str, Any]]:
    return load_events("redis")


@pytest.fixture(scope="module")
def index(events: list[dict[str, Any]]) -> TaskIndex:
    index = TaskIndex()
    index.apply_batch(events)
    return index


@pytest.fixture
def api(index: TaskIndex) -> Iterator[TestClient]:
    service = make_service(index)
    with TestClient(build_app(service, Guard(AuthConfig(TOKENS))),
                    raise_server_exceptions=False) as c:
        yield c


def test_tasks_filter_matches_the_core_predicate(api: TestClient, index: TaskIndex) -> None:
    q = "state:failure"
    body = api.get("/api/v1/tasks", params={"q": q, "limit": 1000}, headers=VIEW).json()
    expected = {r.uuid for r in compile_filter(q).filter(index.records())}
    assert expected and {t["uuid"] for t in body["tasks"]} == expected
    assert all(t["state"] == "FAILURE" for t in body["tasks"])


def test_cursor_pages_cover_memory_once(api: TestClient, index: TaskIndex) -> None:
    seen: list[str] = []
    cursor: str | None = None
    while True:
        got = api.get("/api/v1/tasks", params={"limit": 7, **({"cursor": cursor} if cursor
                                                              else {})}, headers=VIEW).json()
        seen.extend(t["uuid"] for t in got["tasks"])
        cursor = got["next"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == len(index)


@pytest.mark.parametrize(("query", "parameter"), [
    ({"q": "state:"}, "q"), ({"limit": "x"}, "limit"), ({"limit": "0"}, "limit"),
    ({"cursor": "garbage!"}, "cursor"),
])
def test_bad_parameters_are_json_400(api: TestClient, query: dict[str, str],
                                     parameter: str) -> None:
    got = api.get("/api/v1/tasks", params=query, headers=VIEW)
    assert got.status_code == 400
    assert got.json()["parameter"] == parameter and "Traceback" not in got.text


def test_huge_limit_is_capped(api: TestClient) -> None:
    assert api.get("/api/v1/tasks?limit=99999999", headers=VIEW).json()["limit"] == 1000


def test_detail_history_children_and_404(api: TestClient, index: TaskIndex) -> None:
    parent = next(r for r in index.records() if index.children_of(r.uuid))
    got = api.get(f"/api/v1/tasks/{parent.uuid}", headers=VIEW).json()
    assert got["source"] == "memory"
    assert got["task"]["children"] == index.children_of(parent.uuid)
    assert [h["state"] for h in got["history"]] == [s for s, _ in parent.history()]
    missing = api.get("/api/v1/tasks/no-such-task", headers=VIEW)
    assert missing.status_code == 404 and missing.json()["parameter"] == "task_id"
    assert api.get("/api/v1/workers/nobody", headers=VIEW).status_code == 404


def test_workers_and_queues(api: TestClient, index: TaskIndex) -> None:
    workers = api.get("/api/v1/workers", headers=VIEW).json()["workers"]
    assert {w["hostname"] for w in workers} == set(index.workers)
    assert all("status" in w for w in workers)
    assert api.get("/api/v1/queues", headers=VIEW).status_code == 503  # no queue reader


def test_queues_keep_the_priority_breakdown(index: TaskIndex) -> None:
    from lazycelery.broker.model import QueueSnapshot, QueueStats

    snap = QueueSnapshot(taken_at=1.0, source="redis", queues=(
        QueueStats(name="celery", ready=9, by_priority={0: 4, 3: 2, 6: 3}),))
    service = make_service(index, queues=lambda: snap)
    with TestClient(build_app(service, Guard(AuthConfig({})))) as c:
        queue = c.get("/api/v1/queues").json()["queues"][0]
    assert queue["ready"] == 9 and queue["by_priority"] == {"0": 4, "3": 2, "6": 3}


def test_auth_and_audit_role(api: TestClient, tmp_path: Path) -> None:
    assert api.get("/api/v1/tasks").status_code == 401
    assert api.get("/api/v1/tasks", headers={"Authorization": "Bearer nope"}).status_code == 401
    denied = api.get("/api/v1/audit", headers=VIEW)
    assert denied.status_code == 403 and "operator" in denied.json()["error"]


def test_audit_newest_first(index: TaskIndex, tmp_path: Path) -> None:
    from lazycelery.core import audit

    path = tmp_path / "audit.log"
    for n in range(3):
        audit.record(f"act{n}", [f"t{n}"], {"ok": True}, environment="test", path=path)
    service = make_service(index, audit_path=path)
    with TestClient(build_app(service, Guard(AuthConfig(TOKENS)))) as c:
        got = c.get("/api/v1/audit?limit=2", headers=OP).json()
    assert [e["action"] for e in got["entries"]] == ["act2", "act1"]


def test_openapi_document_is_valid_and_complete(api: TestClient) -> None:
    validator = pytest.importorskip("openapi_spec_validator")
    document = api.get("/api/v1/openapi.json", headers=VIEW).json()
    validator.validate(document)
    routes = {r.path.replace(":path", "") for r in api.app.routes  # type: ignore[attr-defined]
              if r.path.startswith("/api/v1")}
    assert routes == set(document["paths"])
    assert openapi_document("x")["openapi"] == "3.1.0"


def test_store_fills_after_memory(tmp_path: Path, events: list[dict[str, Any]]) -> None:
    """Tasks evicted from memory are answered from the store, each task once over the pages."""
    from lazycelery.store import open_store
    from lazycelery.store.writer import StoreWriter

    url = f"sqlite:///{tmp_path / 'h.db'}"
    full = TaskIndex()
    store = open_store(url)
    writer = StoreWriter(store)
    writer.start()
    for start in range(0, len(events), 500):
        chunk = events[start:start + 500]
        writer.on_batch(chunk, full.apply_batch(chunk))
    assert writer.stop()
    store.close()
    small = TaskIndex(max_tasks=20)
    small.apply_batch(events)
    service = make_service(small, store_url=url)
    seen: list[str] = []
    with TestClient(build_app(service, Guard(AuthConfig({})))) as c:
        cursor: str | None = None
        while True:
            got = c.get("/api/v1/tasks", params={"limit": 50, **({"cursor": cursor} if cursor
                                                                  else {})}).json()
            seen.extend(t["uuid"] for t in got["tasks"])
            cursor = got["next"]
            if cursor is None:
                break
        evicted = next(u for u in (r.uuid for r in full.records()) if u not in small)
        detail = c.get(f"/api/v1/tasks/{evicted}").json()
    assert len(seen) == len(set(seen)) == len(full)
    assert detail["source"] == "store" and detail["transitions"]


def test_hub_counts_what_a_slow_client_lost() -> None:
    hub = StreamHub(size=8)
    hub.keep()
    index = TaskIndex()
    evs = [{"type": "task-received", "uuid": f"u{n}", "name": "t", "timestamp": 1.0 + n}
           for n in range(20)]
    hub.publish(evs, index.apply_batch(evs), index.lock)
    got = hub.read(0, 100)
    assert got.lost == 12 and [i.seq for i in got.items] == list(range(13, 21))
    assert got.position == 20 and hub.read(20, 100).items == []
    position, problem = hub.position_of(hub.event_id(15))
    assert (position, problem) == (15, None)
    assert hub.position_of("other-3")[1] is not None


def test_hub_stores_nothing_unwatched_but_counts_it() -> None:
    hub = StreamHub(size=8)
    index = TaskIndex()
    evs = [{"type": "task-received", "uuid": f"u{n}", "name": "t", "timestamp": 1.0 + n}
           for n in range(5)]
    hub.publish(evs, index.apply_batch(evs), index.lock)  # nobody listens: not stored
    assert hub.published == 0 and hub.last == 5
    hub.keep()
    hub.publish(evs[:2], index.apply_batch(evs[:2]), index.lock)
    got = hub.read(0, 100)
    assert got.lost == 5 and [i.seq for i in got.items] == [6, 7]


def test_observer_feeds_the_hub(index: TaskIndex, events: list[dict[str, Any]]) -> None:
    fresh = TaskIndex()
    service = make_service(fresh)
    service.hub.keep()
    Observer(service).on_batch(events[:50], fresh.apply_batch(events[:50]))
    items = service.hub.read(0, 100).items
    assert len(items) == sum(1 for e in events[:50] if e.get("uuid") or e.get("hostname"))
    assert items[0].data().startswith(b'{"record":')
