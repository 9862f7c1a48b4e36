"""The debugging endpoints of /api/v1 in process, compared with the matching CLI ``--json`` on
the same data (a SQLite history store holding recorded real streams): errors and their trend
(tests/data/errors), the timeline, the workflow tree and the export (the redis recording).
Then memory without a store (the bad worker's hint), parameters, 404s, roles, ``?env=``,
masking."""

from __future__ import annotations

import copy
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
from lazycelery.serve.auth import AuthConfig, Guard, hash_token
from lazycelery.serve.service import Service
from lazycelery.store import open_store
from lazycelery.store.writer import StoreWriter
from tests.errors_data import recorded_events
from tests.replay import load_events

TOKENS = {"tokens": [{"name": "v", "sha256": hash_token("view"), "role": "viewer"}]}
VIEW = {"Authorization": "Bearer view"}
SINCE = "2026-01-01T00:00"
TREE_SINCE = "2026-11-27T00:00"


def _store(path: Any, events: list[dict[str, Any]], chunk: int) -> str:
    store = open_store(f"sqlite:///{path}")
    run, _ = store.begin_recorder("test", 1, "redis://x")
    writer = StoreWriter(store, recorder=run)
    writer.start()
    index = TaskIndex()
    for i in range(0, len(events), chunk):
        part = events[i:i + chunk]
        writer.on_batch(part, index.apply_batch(part))
    assert writer.stop(timeout=60)
    store.close()
    return f"sqlite:///{path}"


@pytest.fixture(scope="module")
def errors_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    return _store(tmp_path_factory.mktemp("dbg") / "errors.sqlite3", recorded_events(), 50)


@pytest.fixture(scope="module")
def redis_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    return _store(tmp_path_factory.mktemp("dbg") / "redis.sqlite3", load_events("redis"), 200)


def _service(index: TaskIndex | None = None, **kw: Any) -> Service:
    from celery import Celery

    return Service(app=Celery("t", broker="memory://", set_as_current=False),
                   index=index or TaskIndex(), environment="test", **kw)


def _client(service: Service) -> TestClient:
    return TestClient(build_app(service, Guard(AuthConfig(TOKENS))),
                      raise_server_exceptions=False)


@pytest.fixture(scope="module")
def errors_api(errors_store: str) -> Iterator[TestClient]:
    with _client(_service(store_url=errors_store)) as c:
        yield c


@pytest.fixture(scope="module")
def redis_api(redis_store: str) -> Iterator[TestClient]:
    with _client(_service(store_url=redis_store)) as c:
        yield c


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code = main([*args[:1], "--config", "/dev/null", *args[1:]])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def _without_until(doc: dict[str, Any]) -> dict[str, Any]:
    """The time each side read up to differs (they ran a moment apart): drop it."""
    doc = copy.deepcopy(doc)
    for source in doc.get("sources", {}).values():
        source.pop("until", None)
    doc.pop("until", None)
    return doc


# ---------------------------------------------------------------------- the CLI's documents


def test_errors_equal_the_cli_json(errors_api: TestClient, errors_store: str,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    want = json.loads(cli(capsys, "errors", "--store", errors_store, "--since", SINCE,
                          "--json"))
    got = errors_api.get("/api/v1/errors", params={"since": SINCE}, headers=VIEW)
    assert got.status_code == 200 and got.headers["content-type"] == "application/json"
    assert _without_until(got.json()) == _without_until(want)
    top = got.json()["groups"][0]
    assert top["exception"] == "FileNotFoundError"
    assert any(g["cluster"] is not None for g in got.json()["groups"])
    worker = next(h for h in top["hints"] if h["kind"] == "worker")
    assert worker["evidence"]["value"] == "w-bad@shop-1" and "w-bad@shop-1" in worker["text"]
    assert set(top) >= {"count", "tasks", "first_seen", "last_seen", "workers", "queues"}


def test_top_limits_the_groups(errors_api: TestClient) -> None:
    doc = errors_api.get("/api/v1/errors", params={"since": SINCE, "top": 3},
                         headers=VIEW).json()
    assert len(doc["groups"]) == 3 and doc["groups_total"] == 16


@pytest.mark.parametrize("unit", ["minute", "hour", "day"])
def test_trend_equals_the_cli_json(errors_api: TestClient, errors_store: str, unit: str,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    top = errors_api.get("/api/v1/errors", params={"since": SINCE},
                         headers=VIEW).json()["groups"][0]["group"]
    for which in (top, "all"):
        want = json.loads(cli(capsys, "errors", "trend", which, "--unit", unit, "--store",
                              errors_store, "--since", SINCE, "--json"))
        got = errors_api.get(f"/api/v1/errors/{which[:8]}/trend",
                             params={"since": SINCE, "bucket": unit}, headers=VIEW).json()
        assert _without_until(got) == _without_until(want)
        assert got["total"] > 0


def test_a_groups_tasks_page_by_cursor(errors_api: TestClient) -> None:
    doc = errors_api.get("/api/v1/errors", params={"since": SINCE}, headers=VIEW).json()
    group = doc["groups"][0]
    seen: list[str] = []
    cursor = None
    while True:
        page = errors_api.get(f"/api/v1/errors/{group['group']}", headers=VIEW, params={
            "since": SINCE, "limit": 7, **({"cursor": cursor} if cursor else {})}).json()
        assert page["group"] == group
        seen.extend(t["uuid"] for t in page["tasks"])
        assert all(t["state"] in ("FAILURE", "RETRY") for t in page["tasks"])
        cursor = page["next"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == group["count"]
    assert set(group["task_ids"]) <= set(seen)


def test_timeline_equals_the_cli_json(redis_api: TestClient, redis_store: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    for extra, params in (((), {}), (("--by", "queue", "--filter", "state:failure"),
                                     {"by": "queue", "q": "state:failure"})):
        want = json.loads(cli(capsys, "timeline", "--store", redis_store, "--since",
                              TREE_SINCE, "--json", *extra))
        got = redis_api.get("/api/v1/timeline", params={"since": TREE_SINCE, **params},
                            headers=VIEW).json()
        assert _without_until(got) == _without_until(want)
        assert got["bars"] > 0 and got["lanes"]


@pytest.mark.parametrize("fmt", ["csv", "json", "ndjson"])
def test_export_equals_the_cli_bytes(redis_api: TestClient, redis_store: str, fmt: str,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    for q in ("", "state:failure"):
        want = cli(capsys, "export", "--store", redis_store, "--since", TREE_SINCE,
                   "--format", fmt, *(("--filter", q) if q else ()))
        got = redis_api.get("/api/v1/export", headers=VIEW, params={
            "since": TREE_SINCE, "format": fmt, "limit": 100_000, **({"q": q} if q else {})})
        assert got.status_code == 200 and got.text == want
        assert got.headers["content-type"].startswith(
            {"csv": "text/csv", "json": "application/json", "ndjson": "application/x-ndjson"}
            [fmt])
    rows = redis_api.get("/api/v1/export", headers=VIEW, params={
        "since": TREE_SINCE, "format": "ndjson", "limit": 5}).text.splitlines()
    assert len(rows) == 5  # bounded by limit


def _workflow_task(redis_store: str) -> str:
    index = TaskIndex()
    index.apply_batch(load_events("redis"))
    return next(r.uuid for r in index.records() if index.children_of(r.uuid))


def test_tree_equals_the_cli_json(redis_api: TestClient, redis_store: str,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    task = _workflow_task(redis_store)
    want = json.loads(cli(capsys, "task", "tree", task, "--json", "--store", redis_store,
                          "-b", "memory://"))
    got = redis_api.get(f"/api/v1/tasks/{task}/tree", headers=VIEW)
    assert got.status_code == 200 and got.json() == want
    # memory's records (the live ones) link the children the store's window may not reach
    index = TaskIndex()
    index.apply_batch(load_events("redis"))
    with _client(_service(index, store_url=redis_store)) as c:
        live = c.get(f"/api/v1/tasks/{task}/tree", headers=VIEW).json()
    assert live["task"] == task and live["tree"]["id"] == task
    assert [k["id"] for k in live["tree"]["children"]] == index.children_of(task)
    # the store alone finds them too, by their links (tests/test_store_workflow.py)
    assert got.json()["tree"] == live["tree"]
    missing = redis_api.get("/api/v1/tasks/no-such-task/tree", headers=VIEW)
    assert missing.status_code == 404 and missing.json()["parameter"] == "task_id"


# ---------------------------------------------------------------------- memory (no --store)


@pytest.fixture(scope="module")
def memory_api() -> Iterator[TestClient]:
    index = TaskIndex()
    index.apply_batch(recorded_events())
    with _client(_service(index)) as c:
        yield c


def test_memory_groups_name_the_bad_worker(memory_api: TestClient) -> None:
    doc = memory_api.get("/api/v1/errors", params={"since": SINCE}, headers=VIEW).json()
    assert "memory" in doc["sources"] and doc["groups_total"] >= 10
    resize = next(g for g in doc["groups"] if g["exception"] == "FileNotFoundError")
    worker = next(h for h in resize["hints"] if h["kind"] == "worker")
    assert worker["evidence"]["value"] == "w-bad@shop-1"
    trend = memory_api.get(f"/api/v1/errors/{resize['group']}/trend",
                           params={"since": SINCE, "bucket": "hour"}, headers=VIEW).json()
    assert trend["total"] == resize["count"]
    tasks = memory_api.get(f"/api/v1/errors/{resize['group']}", params={"since": SINCE},
                           headers=VIEW).json()
    assert tasks["count"] == resize["count"]


def test_memory_timeline_and_export(memory_api: TestClient) -> None:
    doc = memory_api.get("/api/v1/timeline", params={"since": SINCE}, headers=VIEW).json()
    assert doc["bars"] > 0
    assert doc["lanes"][0]["key"].count("@") == 1
    rows = memory_api.get("/api/v1/export", headers=VIEW, params={
        "since": SINCE, "format": "ndjson", "q": "state:failure"}).text.splitlines()
    assert rows and all(json.loads(r)["state"] == "FAILURE" for r in rows)


def test_the_window_excludes_older_tasks(memory_api: TestClient) -> None:
    doc = memory_api.get("/api/v1/errors", params={"since": "1m"}, headers=VIEW).json()
    assert doc["groups"] == [] and doc["failures"] == 0  # the recording is older


# ---------------------------------------------------------------------- bad input, roles


@pytest.mark.parametrize(("path", "params", "parameter"), [
    ("/api/v1/errors", {"since": "yesterday"}, "since"),
    ("/api/v1/errors", {"new": "soon"}, "new"),
    ("/api/v1/errors", {"top": "0"}, "top"),
    ("/api/v1/errors/all/trend", {"bucket": "week"}, "bucket"),
    ("/api/v1/errors/ffff", {"cursor": "garbage!"}, "cursor"),
    ("/api/v1/timeline", {"by": "host"}, "by"),
    ("/api/v1/timeline", {"q": "state:("}, "q"),
    ("/api/v1/export", {"format": "xml"}, "format"),
    ("/api/v1/export", {"limit": "0"}, "limit"),
    ("/api/v1/export", {"since": ""}, "since"),
    # absurd windows: past 10 years (99999d is before year 1) or past a float
    ("/api/v1/errors", {"since": "99999d"}, "since"),
    ("/api/v1/errors", {"since": "9" * 400}, "since"),
    ("/api/v1/errors", {"new": "3651d"}, "new"),
    ("/api/v1/timeline", {"since": "99999d"}, "since"),
    ("/api/v1/timeline", {"q": "since:99999d"}, "q"),
    ("/api/v1/export", {"q": "runtime>99999w"}, "q"),
    ("/api/v1/tasks", {"q": "before:99999d"}, "q"),
])
def test_bad_parameters_are_json_400(memory_api: TestClient, path: str,
                                     params: dict[str, str], parameter: str) -> None:
    got = memory_api.get(path, params=params, headers=VIEW)
    assert got.status_code == 400, got.text
    assert got.json()["parameter"] == parameter and "Traceback" not in got.text
    if "99999" in str(params) or "3651d" in str(params) or "9" * 400 in str(params):
        assert "duration too long" in got.json()["error"], got.text


def test_unknown_group_is_404(memory_api: TestClient) -> None:
    for path in ("/api/v1/errors/0000000000", "/api/v1/errors/0000000000/trend"):
        got = memory_api.get(path, params={"since": SINCE}, headers=VIEW)
        assert got.status_code == 404 and got.json()["parameter"] == "group"


def test_a_token_is_needed_and_a_viewer_suffices(memory_api: TestClient) -> None:
    for path in ("/api/v1/errors", "/api/v1/timeline", "/api/v1/export",
                 "/api/v1/errors/all/trend"):
        assert memory_api.get(path).status_code == 401
        assert memory_api.get(path, headers=VIEW).status_code == 200


def test_store_that_cannot_be_read_is_503(tmp_path: Any) -> None:
    service = _service(store_url=f"sqlite:///{tmp_path / 'missing.sqlite3'}")
    with _client(service) as c:
        got = c.get("/api/v1/errors", headers=VIEW)
    assert got.status_code == 503 and "history store" in got.json()["error"]


def test_env_picks_the_environment() -> None:
    from celery import Celery

    from lazycelery.core.envs import EnvSet, EnvWatch
    from lazycelery.serve.envs import EnvServices
    from lazycelery.serve.envs_app import build_env_app

    envs = EnvSet([EnvWatch("a", None, max_tasks=10_000), EnvWatch("b", None, max_tasks=10)])
    services = EnvServices(envs)
    for name in ("a", "b"):
        services.services[name] = Service(
            app=Celery(name, broker="memory://", set_as_current=False),
            index=envs[name].index, environment=name)
    envs["b"].index.apply_batch(recorded_events())
    with TestClient(build_env_app(services, Guard(AuthConfig({}))),
                    raise_server_exceptions=False) as c:
        a = c.get("/api/v1/errors", params={"since": SINCE, "env": "a"}).json()
        b = c.get("/api/v1/errors", params={"since": SINCE, "env": "b"}).json()
        assert a["failures"] == 0 and b["failures"] > 0
        assert c.get("/api/v1/errors", params={"env": "nope"}).json()["parameter"] == "env"


def test_secrets_stay_masked() -> None:
    from lazycelery.mask.masker import Masker

    events = [{"type": "task-received", "uuid": "t1", "name": "shop.pay", "timestamp": 10.0,
               "hostname": "w@h", "args": "()", "kwargs": "{'password': 'hunter2'}"},
              {"type": "task-failed", "uuid": "t1", "timestamp": 11.0, "hostname": "w@h",
               "exception": "ValueError('no')", "traceback": None}]
    Masker().apply(events)
    index = TaskIndex()
    index.apply_batch(events)
    with _client(_service(index)) as c:
        for fmt in ("csv", "json", "ndjson"):
            got = c.get("/api/v1/export", params={"since": "2026-01-01", "format": fmt,
                                                  "since_": "x"}, headers=VIEW)
            assert got.status_code == 200
        body = c.get("/api/v1/export", params={"since": "1970-01-01", "format": "json"},
                     headers=VIEW).text
        assert "hunter2" not in body and "password" in body
        errors = c.get("/api/v1/errors/all/trend", params={"since": "1970-01-01"},
                       headers=VIEW)
        assert errors.status_code == 200 and errors.json()["total"] == 1
        group = c.get("/api/v1/errors", params={"since": "1970-01-01"},
                      headers=VIEW).json()["groups"][0]["group"]
        tasks = c.get(f"/api/v1/errors/{group}", params={"since": "1970-01-01"},
                      headers=VIEW).text
        assert "hunter2" not in tasks
