"""The ASGI app in process (Starlette's TestClient): every error is JSON with no traceback,
roles and read-only are enforced before a handler runs, bodies are bounded."""

from __future__ import annotations

import base64
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("starlette", reason="the serve extra")
with warnings.catch_warnings():  # starlette 1.x suggests another httpx package: not ours to pick
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from lazycelery.core.index import TaskIndex
from lazycelery.serve.app import build_app
from lazycelery.serve.auth import AuthConfig, Guard, hash_token
from lazycelery.serve.counters import FlowerCounters
from lazycelery.serve.http import MAX_BODY
from lazycelery.serve.service import Service
from tests.replay import load_events


class Exploding:
    """A celery app whose every attribute raises: a handler bug, as the client sees it."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError("secret-ish internal detail redis://u:hunter2@h/0")


COUNTERS = FlowerCounters()


@pytest.fixture(scope="module")
def index() -> TaskIndex:
    index = TaskIndex()
    events = load_events("redis")
    COUNTERS.on_batch(events, index.apply_batch(events))
    return index


def client(index: TaskIndex, *, read_only: bool = False, tokens: bool = False) -> TestClient:
    table = {"tokens": [{"name": "v", "sha256": hash_token("view"), "role": "viewer"},
                        {"name": "o", "sha256": hash_token("op"), "role": "operator"}]} \
        if tokens else {}
    from celery import Celery

    service = Service(app=Celery("t", broker="memory://", set_as_current=False), index=index,
                      environment="test", read_only=read_only, counters=COUNTERS)
    return TestClient(build_app(service, Guard(AuthConfig(table))), raise_server_exceptions=False)


@pytest.fixture
def open_client(index: TaskIndex) -> Iterator[TestClient]:
    with client(index) as c:
        yield c


def test_reads_answer_flower_shapes(open_client: TestClient, index: TaskIndex) -> None:
    tasks = open_client.get("/api/tasks", params={"limit": 3}).json()
    assert len(tasks) == 3
    first = next(iter(tasks.values()))
    assert list(first)[-1] == "worker" and first["uuid"] in tasks
    info = open_client.get(f"/api/task/info/{first['uuid']}").json()
    assert info["uuid"] == first["uuid"] and "worker" in info
    types = open_client.get("/api/task/types").json()["task-types"]
    assert "benchapp.add" in types
    # no ingest here: never subscribed, so not ready (tests/test_serve_health.py)
    assert open_client.get("/healthcheck").status_code == 503


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/nowhere", 404), ("DELETE", "/api/tasks", 405), ("GET", "/api/task/info/nope", 404),
    ("GET", "/api/tasks?limit=-5", 400), ("GET", "/api/tasks?search=NOT%20x", 400),
    ("POST", "/api/task/send-task/x", 400), ("GET", "/api/task/result/abc", 503),
])
def test_errors_are_json(open_client: TestClient, method: str, path: str, status: int) -> None:
    kwargs: dict[str, Any] = {"content": b"[1, 2]"} if method == "POST" else {}
    response = open_client.request(method, path, **kwargs)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    assert set(response.json()) <= {"error", "parameter"}


def test_a_handler_bug_is_a_json_500_without_details(index: TaskIndex) -> None:
    service = Service(app=Exploding(), index=index, environment="t")
    with TestClient(build_app(service, Guard(AuthConfig({}))),
                    raise_server_exceptions=False) as c:
        response = c.post("/api/task/async-apply/benchapp.add", json={})
    assert response.status_code == 500
    assert response.json() == {"error": "internal error (see the server's log)"}
    assert "hunter2" not in response.text and "Traceback" not in response.text


def test_roles_and_read_only(index: TaskIndex) -> None:
    with client(index, tokens=True) as c:
        assert c.get("/api/tasks").status_code == 401
        assert c.get("/api/tasks", headers={"Authorization": "Bearer view"}).status_code == 200
        refused = c.post("/api/task/revoke/x", headers={"Authorization": "Bearer view"})
        assert refused.status_code == 403 and "operator" in refused.json()["error"]
        basic = "Basic " + base64.b64encode(b"nobody:pw").decode()
        assert c.get("/metrics", headers={"Authorization": basic}).status_code == 401
    with client(index, read_only=True) as c:
        for path in ("/api/task/revoke/x", "/api/worker/shutdown/w", "/api/task/send-task/x"):
            response = c.post(path)
            assert response.status_code == 403 and "read-only" in response.json()["error"]


def test_bodies_are_bounded(open_client: TestClient) -> None:
    response = open_client.post("/api/task/send-task/x", content=b"{" + b" " * MAX_BODY + b"}")
    assert response.status_code == 413


def test_metrics_render(open_client: TestClient) -> None:
    text = open_client.get("/metrics").text
    assert 'flower_events_total{task="benchapp.add",type="task-received",worker="' in text
    assert 'lazycelery_tasks{state="SUCCESS"}' in text


def test_gaps_are_counted_once_each() -> None:
    from lazycelery.core.ingest_status import Gap, IngestStatus

    counters = FlowerCounters()
    first = Gap(start=10.0, end=12.5, seconds=2.5, reason="connection lost")
    for status in (IngestStatus(state="connected", path="fast"),
                   IngestStatus(state="connected", path="fast", gap=first),
                   IngestStatus(state="connected", path="fast", gap=first),
                   IngestStatus(state="connected", path="fast",
                                gap=Gap(start=20.0, end=21.0, seconds=1.0, reason="restart"))):
        counters.on_status(status)
    copy = counters.copy()
    assert (copy["gaps"], copy["gap_seconds"]) == (2, 3.5)


def test_task_info_falls_back_to_the_history_store(tmp_path: Any, index: TaskIndex) -> None:
    from celery import Celery

    from lazycelery.core.model import TaskRecord
    from lazycelery.serve.runtime import store_lookup
    from lazycelery.store import open_store
    from lazycelery.store.batch import WriteBatch

    url = f"sqlite:///{tmp_path / 'h.sqlite3'}"
    store = open_store(url)
    old = TaskRecord(uuid="gone-from-memory", state="SUCCESS", name="proj.old", worker="w@h",
                     received=100.0, succeeded=101.0, result="42")
    store.write(WriteBatch(tasks=[old]))
    store.close()
    service = Service(app=Celery("t", broker="memory://", set_as_current=False), index=index,
                      environment="t", stored_task=store_lookup(url))
    with TestClient(build_app(service, Guard(AuthConfig({})))) as c:
        info = c.get("/api/task/info/gone-from-memory").json()
        assert (info["state"], info["name"], info["result"], info["worker"]) == \
            ("SUCCESS", "proj.old", "42", "w@h")
        assert c.get("/api/task/info/never-seen").status_code == 404


def test_our_exposition_parses_like_prometheus_clients(index: TaskIndex) -> None:
    from celery import Celery
    from prometheus_client.parser import text_string_to_metric_families

    from lazycelery.broker.model import QueueSnapshot, QueueStats
    from lazycelery.serve.metrics import registry_for, render, render_reference

    service = Service(app=Celery("t", broker="memory://", set_as_current=False), index=index,
                      environment="t", counters=COUNTERS)
    snapshot = QueueSnapshot(taken_at=1.0, source="t", queues=(
        QueueStats(name='odd "queue"\\name\n', ready=3, by_priority={0: 1, 9: 2}, consumers=2),))
    service.queues = lambda: snapshot
    registry = registry_for(service)

    def parsed(text: bytes) -> list[tuple[str, str, list[Any]]]:
        return [(f.name, f.type, sorted((s.name, sorted(s.labels.items()), s.value)
                                        for s in f.samples))
                for f in text_string_to_metric_families(text.decode())
                if f.name != "lazycelery_queue_snapshot_age_seconds"]  # the clock moves

    ours, reference = parsed(render(registry)), parsed(render_reference(registry))
    assert ours == reference and len(ours) > 10


@pytest.mark.parametrize(("path", "kwargs", "parameter"), [
    ("/api/task/send-task/x", {"json": {"countdown": 1e12}}, "countdown"),
    ("/api/task/send-task/x", {"json": {"countdown": "99999999999"}}, "countdown"),
    ("/api/task/send-task/x", {"json": {"expires": 1e12}}, "expires"),
    ("/api/task/timeout/x", {"data": {"workername": "w", "hard": "1e12"}}, "hard"),
    ("/api/task/timeout/x", {"data": {"workername": "w", "soft": "400000000"}}, "soft"),
])
def test_seconds_past_ten_years_are_a_400(open_client: TestClient, path: str,
                                          kwargs: dict[str, Any], parameter: str) -> None:
    got = open_client.post(path, **kwargs)
    assert got.status_code == 400, got.text
    assert got.json()["parameter"] == parameter and "too long" in got.json()["error"]
