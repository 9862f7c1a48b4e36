"""The multi-environment serve app in process (Starlette's TestClient) over replayed events:
``?env=`` picks the environment and never reaches the Flower handlers, unknown ones are a 404
naming the known ones (behind authentication), ``/api/envs`` lists them, ``/metrics`` has one
family per name with an ``env`` label on every sample."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest

pytest.importorskip("starlette", reason="the serve extra")
with warnings.catch_warnings():  # starlette 1.x suggests another httpx package: not ours to pick
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from lazycelery.core.envs import EnvSet, EnvWatch
from lazycelery.serve.auth import AuthConfig, Guard, hash_token
from lazycelery.serve.envs import EnvServices
from lazycelery.serve.envs_app import build_env_app, split_env
from lazycelery.serve.service import Service
from tests.replay import load_events


def test_split_env_takes_env_out_of_the_query() -> None:
    assert split_env(b"") == (None, b"")
    assert split_env(b"limit=3&state=FAILURE") == (None, b"limit=3&state=FAILURE")
    assert split_env(b"env=prod&limit=3") == ("prod", b"limit=3")
    assert split_env(b"env=a&limit=3&env=b") == ("b", b"limit=3")
    assert split_env(b"env=&limit=3") == (None, b"limit=3")
    assert split_env(b"search=a%20b&env=x") == ("x", b"search=a+b")


def services(max_inflight: int = 32) -> EnvServices:
    from celery import Celery

    envs = EnvSet([EnvWatch("full", None, max_tasks=100_000),
                   EnvWatch("empty", None, max_tasks=100_000),
                   EnvWatch("bad", None, error="cannot import app 'nope.celery'")])
    out = EnvServices(envs, max_inflight=max_inflight)
    for name in ("full", "empty"):  # as EnvServices._service makes them: one admission
        app = Celery(name, broker="memory://", set_as_current=False)
        out.services[name] = Service(app=app, index=envs[name].index, environment=name,
                                     admission=out.admission)
    events = load_events("redis")  # what the ingest thread and its observer do
    out.services["full"].counters.on_batch(events, envs["full"].index.apply_batch(events))
    return out


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(build_env_app(services(), Guard(AuthConfig({}))),
                    raise_server_exceptions=False) as c:
        yield c


def test_env_picks_the_environment(client: TestClient) -> None:
    full = client.get("/api/tasks", params={"env": "full", "limit": 5}).json()
    assert len(full) == 5
    assert client.get("/api/tasks", params={"limit": 5}).json() == full  # the first: default
    assert client.get("/api/tasks", params={"env": "empty"}).json() == {}
    assert client.get("/api/task/types", params={"env": "empty"}).json() == {"task-types": []}
    uuid = next(iter(full))
    assert client.get(f"/api/task/info/{uuid}", params={"env": "full"}).status_code == 200
    assert client.get(f"/api/task/info/{uuid}", params={"env": "empty"}).status_code == 404


def test_unknown_and_broken_environments_are_json(client: TestClient) -> None:
    unknown = client.get("/api/tasks", params={"env": "qa"})
    assert unknown.status_code == 404
    assert unknown.json() == {"error": "unknown environment 'qa' (known: full, empty, bad)",
                              "parameter": "env"}
    assert client.post("/api/task/revoke/x", params={"env": "qa"}).status_code == 404
    broken = client.get("/api/workers", params={"env": "bad"})
    assert broken.status_code == 503 and "nope.celery" in broken.json()["error"]


def test_envs_lists_every_environment(client: TestClient) -> None:
    listed = client.get("/api/envs").json()
    assert listed["default"] == "full"
    assert [row["env"] for row in listed["envs"]] == ["full", "empty", "bad"]
    assert listed["envs"][2]["why"] == "cannot import app 'nope.celery'"


def test_metrics_label_every_sample_with_its_env(client: TestClient) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    text = client.get("/metrics").text
    helps = [line for line in text.splitlines() if line.startswith("# HELP")]
    assert len(helps) == len(set(helps))  # one family per name, whatever the env count
    families = list(text_string_to_metric_families(text))
    for family in families:
        for sample in family.samples:
            if family.name.startswith("lazycelery_http_"):  # the process's, once
                assert "env" not in sample.labels, sample
                continue
            assert sample.labels["env"] in {"full", "empty", "bad"}, sample
    by_name = {f.name: f for f in families}
    events = {s.labels["env"] for s in by_name["flower_events"].samples}
    assert events == {"full"}  # the empty environment has no event to count
    connected = {s.labels["env"]: s.value
                 for s in by_name["lazycelery_ingest_connected"].samples}
    assert connected == {"full": 0.0, "empty": 0.0, "bad": 0.0}
    tasks = {s.labels["env"] for s in by_name["lazycelery_tasks"].samples}
    assert tasks == {"full", "empty"}


def test_unknown_env_is_behind_authentication() -> None:
    guard = Guard(AuthConfig({"tokens": [{"name": "v", "sha256": hash_token("view"),
                                          "role": "viewer"}]}))
    with TestClient(build_env_app(services(), guard), raise_server_exceptions=False) as c:
        for path in ("/api/tasks?env=qa", "/api/tasks?env=full", "/api/envs", "/metrics"):
            assert c.get(path).status_code == 401, path  # no names leaked before auth
        viewer = {"Authorization": "Bearer view"}
        assert c.get("/api/tasks?env=qa", headers=viewer).status_code == 404
        assert c.get("/api/envs", headers=viewer).status_code == 200


def _shed(text: str) -> dict[str, float]:
    return {line.split('reason="')[1].split('"')[0]: float(line.split()[-1])
            for line in text.splitlines() if line.startswith("lazycelery_http_shed_total{")}


def test_max_inflight_is_one_limit_for_every_environment() -> None:
    """``serve --all-envs --max-inflight N``: one admission, whichever environment (or the
    router's own /api/envs) a request is for; /metrics and /healthcheck are never shed."""
    out = services(max_inflight=2)
    assert out.admission.max_inflight == 2
    assert all(s.admission is out.admission for s in out.services.values())
    with TestClient(build_env_app(out, Guard(AuthConfig({}))),
                    raise_server_exceptions=False) as c:
        assert c.get("/api/tasks", params={"env": "empty"}).status_code == 200
        out.admission.inflight += 2  # as if two requests were in flight, in any environment
        for path, params in (("/api/tasks", {"env": "full"}), ("/api/tasks", {"env": "empty"}),
                             ("/api/workers", {}), ("/api/envs", {}), ("/api/alerts", {})):
            got = c.get(path, params=params)
            assert got.status_code == 503, (path, got.text)
            assert got.json()["reason"] == "busy" and got.headers["retry-after"] == "1"
        assert c.post("/api/task/revoke/x", params={"env": "full"}).status_code != 503
        health = c.get("/healthcheck").json()  # never shed (here 503: no ingest subscribed)
        assert "reason" not in health and health["error"].startswith("starting")
        metrics = c.get("/metrics")
        assert metrics.status_code == 200
        assert _shed(metrics.text) == {"busy": 5.0, "ingest_behind": 0.0}  # once, not per env
        out.admission.inflight -= 2
        assert c.get("/api/envs").status_code == 200


def test_any_environment_behind_sheds_gets() -> None:
    """GETs yield while any environment's ingest is behind its broker."""
    from types import SimpleNamespace

    from lazycelery.serve.admission import BEHIND_AFTER, BEHIND_INFLIGHT

    out = services()
    behind = {"full": 0.0, "empty": 0.0}
    for name in behind:
        out.envs[name].ingestor = SimpleNamespace(  # type: ignore[assignment]
            backlog=SimpleNamespace(behind=lambda name=name: behind[name]))
    assert out.admission.behind() == 0.0
    behind["empty"] = BEHIND_AFTER + 1
    assert out.admission.behind() == BEHIND_AFTER + 1
    with TestClient(build_env_app(out, Guard(AuthConfig({}))),
                    raise_server_exceptions=False) as c:
        out.admission.inflight += BEHIND_INFLIGHT
        got = c.get("/api/tasks", params={"env": "full"})  # another environment's request
        assert got.status_code == 503 and got.json()["reason"] == "ingest_behind"
        out.admission.inflight -= BEHIND_INFLIGHT
        assert c.get("/api/tasks", params={"env": "full"}).status_code == 200
