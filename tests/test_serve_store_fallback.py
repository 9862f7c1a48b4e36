"""Flower's task endpoints with a history store, in process over a SQLite store and the
recorded Redis stream in memory: ``/api/tasks`` stays memory's unless ``store=true``, which
continues into the store (filters, offset and limit over both); ``/api/task/result`` answers a
stored outcome when no backend knows the task."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette", reason="the serve extra")
with warnings.catch_warnings():  # starlette 1.x suggests another httpx package: not ours to pick
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from lazycelery.core.index import TaskIndex
from lazycelery.core.model import TaskRecord
from lazycelery.serve.app import build_app
from lazycelery.serve.auth import AuthConfig, Guard
from lazycelery.serve.runtime import store_lookup
from lazycelery.serve.service import Service
from tests.replay import load_events

OLD = [TaskRecord(uuid=f"stored-{i}", state="FAILURE" if i % 2 else "SUCCESS",
                  name="proj.old", worker="w@h", received=100.0 + i,
                  succeeded=None if i % 2 else 101.0 + i, failed=101.0 + i if i % 2 else None,
                  result=None if i % 2 else str(i), exception="ValueError('x')" if i % 2 else None,
                  traceback="Traceback ...\nValueError: x" if i % 2 else None,
                  last_seen=101.0 + i)
       for i in range(6)]


def _service(tmp_path: Path, *, store: bool = True) -> Service:
    from celery import Celery

    from lazycelery.store import open_store
    from lazycelery.store.batch import WriteBatch

    index = TaskIndex()
    events = load_events("redis")
    index.apply_batch(events)
    url = f"sqlite:///{tmp_path / 'h.sqlite3'}"
    db = open_store(url)
    in_memory = index.records()[0]  # also stored: answered once, from memory
    db.write(WriteBatch(tasks=[*OLD, in_memory]))
    db.close()
    app = Celery("t", broker="memory://", set_as_current=False)  # no result backend
    return Service(app=app, index=index, environment="t",
                   stored_task=store_lookup(url) if store else None,
                   store_url=url if store else None)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[tuple[TestClient, Service]]:
    service = _service(tmp_path)
    with TestClient(build_app(service, Guard(AuthConfig({}))),
                    raise_server_exceptions=False) as c:
        yield c, service


def _ids(client: TestClient, **params: Any) -> list[str]:
    response = client.get("/api/tasks", params=params)
    assert response.status_code == 200, response.text
    return list(response.json())


def test_tasks_stay_in_memory_unless_the_store_is_asked(
        client: tuple[TestClient, Service]) -> None:
    c, service = client
    memory = len(service.index.records())
    assert not any(i.startswith("stored-") for i in _ids(c, limit=10_000))
    both = _ids(c, store="true", limit=10_000)
    assert len(both) == memory + len(OLD) and len(set(both)) == len(both)
    # memory first (Flower's order), then the store newest first
    assert both[:memory] == _ids(c, limit=10_000)
    assert both[memory:] == [f"stored-{i}" for i in reversed(range(6))]
    # offset and limit count over both; filters apply to the stored tasks too
    assert _ids(c, store="1", offset=memory + 1, limit=2) == ["stored-4", "stored-3"]
    assert _ids(c, store="true", taskname="proj.old", state="FAILURE") == \
        ["stored-5", "stored-3", "stored-1"]
    assert _ids(c, store="true", workername="W@H", search="state:success") == \
        ["stored-4", "stored-2", "stored-0"]
    assert _ids(c, store="false", taskname="proj.old") == []


def test_store_true_without_a_store_names_the_parameter(tmp_path: Path) -> None:
    service = _service(tmp_path, store=False)
    with TestClient(build_app(service, Guard(AuthConfig({}))),
                    raise_server_exceptions=False) as c:
        for value in ("true", "maybe"):
            bad = c.get("/api/tasks", params={"store": value})
            assert bad.status_code == 400 and bad.json()["parameter"] == "store"
        assert c.get("/api/task/result/stored-0").status_code == 503  # no backend, no store


def test_task_result_answers_a_stored_outcome(client: tuple[TestClient, Service]) -> None:
    c, service = client
    assert c.get("/api/task/result/stored-2").json() == \
        {"task-id": "stored-2", "state": "SUCCESS", "result": "2"}
    assert c.get("/api/task/result/stored-3").json() == {
        "task-id": "stored-3", "state": "FAILURE", "result": "ValueError('x')",
        "traceback": "Traceback ...\nValueError: x"}
    # unknown to backend and store: Flower's answer without a backend
    assert c.get("/api/task/result/never-seen").status_code == 503
    info = c.get("/api/task/info/stored-3").json()
    assert (info["state"], info["exception"]) == ("FAILURE", "ValueError('x')")
    # in memory: not looked up in the store (Flower: no backend, 503)
    in_memory = service.index.records()[0].uuid
    assert c.get(f"/api/task/result/{in_memory}").status_code == 503
