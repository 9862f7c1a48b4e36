"""serve --store: the /api/v1 debugging views read the store's window and memory's records the
writer has not flushed yet, each task once. The redis recording: the store holds its first
part, memory all of it (the writer about to flush the rest)."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("starlette", reason="the serve extra")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from lazycelery.cli import main
from lazycelery.core.index import TaskIndex
from lazycelery.serve.app import build_app
from lazycelery.serve.auth import AuthConfig, Guard
from lazycelery.serve.service import Service
from lazycelery.store import open_store
from lazycelery.store.writer import StoreWriter
from tests.replay import load_events

pytestmark = pytest.mark.timeout(300)

SINCE = "2026-01-01T00:00"
FLUSHED = 6_000  # of the recording's ~12,400 events


def _store(path: Any, events: list[dict[str, Any]]) -> str:
    store = open_store(f"sqlite:///{path}")
    run, _ = store.begin_recorder("test", 1, "redis://x")
    writer = StoreWriter(store, recorder=run)
    writer.start()
    index = TaskIndex()
    for i in range(0, len(events), 200):
        part = events[i:i + 200]
        writer.on_batch(part, index.apply_batch(part))
    assert writer.stop(timeout=60)
    store.close()
    return f"sqlite:///{path}"


@pytest.fixture(scope="module")
def events() -> list[dict[str, Any]]:
    return load_events("redis")


def _client(url: str, events: list[dict[str, Any]]) -> Iterator[tuple[TestClient, TaskIndex]]:
    from celery import Celery

    index = TaskIndex()
    for i in range(0, len(events), 200):
        index.apply_batch(events[i:i + 200])
    service = Service(app=Celery("t", broker="memory://", set_as_current=False), index=index,
                      environment="test", store_url=url)
    with TestClient(build_app(service, Guard(AuthConfig({}))),
                    raise_server_exceptions=False) as client:
        yield client, index


@pytest.fixture(scope="module")
def half(tmp_path_factory: pytest.TempPathFactory,
         events: list[dict[str, Any]]) -> Iterator[tuple[TestClient, TaskIndex]]:
    url = _store(tmp_path_factory.mktemp("unflushed") / "half.sqlite3", events[:FLUSHED])
    yield from _client(url, events)


@pytest.fixture(scope="module")
def whole_url(tmp_path_factory: pytest.TempPathFactory, events: list[dict[str, Any]]) -> str:
    return _store(tmp_path_factory.mktemp("unflushed") / "whole.sqlite3", events)


def _export(client: TestClient) -> list[dict[str, Any]]:
    got = client.get("/api/v1/export", params={"since": SINCE, "format": "ndjson",
                                                 "limit": "100000"})
    assert got.status_code == 200, got.text
    return [json.loads(line) for line in got.text.splitlines()]


def test_export_has_the_unflushed_tasks_once(half: tuple[TestClient, TaskIndex]) -> None:
    client, memory = half
    rows = _export(client)
    ids = [r["uuid"] for r in rows]
    assert len(ids) == len(set(ids))
    assert set(ids) == {r.uuid for r in memory.records()}
    states = {r["uuid"]: r["state"] for r in rows}
    assert all(states[r.uuid] == r.state for r in memory.records())  # memory's are newer


def test_errors_count_each_failed_task_once(half: tuple[TestClient, TaskIndex]) -> None:
    client, memory = half
    doc = client.get("/api/v1/errors", params={"since": SINCE}).json()
    assert doc["sources"]["memory"]["unflushed"] > 0 and "history" in doc["sources"]
    failed = sum(1 for r in memory.records() if r.state == "FAILURE")
    finished = sum(1 for r in memory.records() if r.state in ("FAILURE", "SUCCESS"))
    assert failed > 0 and sum(g["failed"] for g in doc["groups"]) == failed
    assert doc["finished"] == finished
    trend = client.get("/api/v1/errors/all/trend", params={"since": SINCE}).json()
    assert trend["total"] == doc["failures"]


def test_timeline_has_the_unflushed_tasks(half: tuple[TestClient, TaskIndex],
                                          whole_url: str,
                                          events: list[dict[str, Any]]) -> None:
    client, _ = half
    got = client.get("/api/v1/timeline", params={"since": SINCE}).json()
    for whole, _memory in _client(whole_url, events):
        want = whole.get("/api/v1/timeline", params={"since": SINCE}).json()
    assert got["bars"] == want["bars"] > 0


def test_all_flushed_equals_the_cli(whole_url: str, events: list[dict[str, Any]],
                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Memory holding nothing the store lacks adds nothing: the CLI's document still."""
    code = main(["errors", "--config", "/dev/null", "--store", whole_url, "--since", SINCE,
                 "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    want = json.loads(out)
    for client, _memory in _client(whole_url, events):
        got = client.get("/api/v1/errors", params={"since": SINCE}).json()
    for doc in (got, want):
        doc["sources"]["history"].pop("until")
    assert got == want
