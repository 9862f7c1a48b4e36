"""`lazycelery serve --all-envs` over real HTTP: two environments on two Redis dbs, each with a
real `celery worker -E`, a third pointing at a closed port and a fourth whose app does not
import. Each answers with its own workers and tasks (``?env=NAME``), ``/metrics`` labels every
sample with its environment, and the broken ones say why without stopping the others."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_serve_helpers import Server

from conftest import WorkerProcess, _db_cycle, free_port, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
pytest.importorskip("starlette", reason="the serve extra")

Factory = Callable[..., WorkerProcess]


def _second_db(redis_url: str) -> str:
    import redis

    second = f"{redis_url.rsplit('/', 1)[0]}/{next(_db_cycle)}"
    if second == redis_url:
        pytest.skip("one Redis db in LAZYCELERY_TEST_REDIS_DBS: two are needed")
    redis.Redis.from_url(second).flushdb()
    return second


def _serve(tmp_path: Path, config: Path, *args: str) -> Server:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CELERY_", "LAZYCELERY_"))}
    env.update(LAZYCELERY_CONFIG=str(config), LAZYCELERY_AUDIT_LOG=str(tmp_path / "audit.log"))
    port = free_port()
    server = Server([sys.executable, "-m", "lazycelery", "serve", "--port", str(port),
                     "--queue-interval", "0.5", *args], env, port, tmp_path / "serve.log")
    return server


def _send(worker: WorkerProcess, task: str, *args: Any) -> None:
    app = worker.app()
    try:
        app.send_task(task, args=args)
    finally:
        app.close()


def test_each_environment_answers_for_itself(tmp_path: Path, redis_url: str,
                                             celery_worker_factory: Factory) -> None:
    second = _second_db(redis_url)
    workers = {"a": celery_worker_factory(redis_url), "b": celery_worker_factory(second)}
    config = tmp_path / "config.toml"
    config.write_text(f"""
[environments.a]
broker = "{redis_url}"
read_only = true

[environments.b]
broker = "{second}"

[environments.down]
broker = "redis://:hunter2@127.0.0.1:{free_port()}/0"

[environments.broken]
broker = "{redis_url}"
app = "no_such_module_xyz.celery"
""")
    serve = _serve(tmp_path, config, "--all-envs")
    try:
        wait_for(serve.healthy, timeout=60, interval=0.2, what="serve to answer")
        _check(serve.url, workers)
    finally:
        assert serve.stop() == 0, serve.output()[-3000:]
    assert "hunter2" not in serve.output()


def _get(url: str, path: str, **params: Any) -> Any:
    response = httpx.get(f"{url}{path}", params=params, timeout=15)
    assert response.status_code == 200, response.text
    return response.json()


def _check(url: str, workers: dict[str, WorkerProcess]) -> None:
    mine = {env: w.hostname for env, w in workers.items()}
    for env, worker in workers.items():
        def seen(env: str = env, worker: WorkerProcess = worker) -> bool:
            _send(worker, "workerapp.add", 2, 3)  # again until the event stream is up
            tasks = _get(url, "/api/tasks", env=env, state="SUCCESS")
            return bool(tasks) and _get(url, "/api/workers", env=env, status=1).get(
                worker.hostname) is True
        wait_for(seen, timeout=60, interval=0.5, what=f"a success and the worker in {env}")

    # each environment shows only its own workers and tasks
    for env, hostname in mine.items():
        other = next(h for e, h in mine.items() if e != env)
        assert set(_get(url, "/api/workers", env=env, status=1)) == {hostname}
        detail = _get(url, "/api/workers", env=env)
        assert hostname in detail and other not in detail
        tasks = _get(url, "/api/tasks", env=env)
        assert tasks and {t["worker"] for t in tasks.values()} == {hostname}
    # no env: the first environment
    assert set(_get(url, "/api/workers", status=1)) == {mine["a"]}

    # an unknown environment: 404 naming the known ones
    unknown = httpx.get(f"{url}/api/tasks", params={"env": "nope"})
    assert unknown.status_code == 404
    assert "a, b, down, broken" in unknown.json()["error"]
    # one that could not be set up: 503 with its reason; the closed port answers (empty)
    broken = httpx.get(f"{url}/api/tasks", params={"env": "broken"})
    assert broken.status_code == 503 and "no_such_module_xyz" in broken.json()["error"]
    assert _get(url, "/api/tasks", env="down") == {}

    # read_only is per environment: a refuses actions, b acts (addressed to its worker)
    refused = httpx.post(f"{url}/api/worker/pool/grow/{mine['a']}", params={"env": "a", "n": 1})
    assert refused.status_code == 403
    grown = httpx.post(f"{url}/api/worker/pool/grow/{mine['b']}", params={"env": "b", "n": 1},
                       timeout=10)
    assert grown.status_code == 200, grown.text

    # GET /api/envs: every environment, the broken ones with their reason
    listed = _get(url, "/api/envs")
    assert listed["default"] == "a"
    rows = {row["env"]: row for row in listed["envs"]}
    assert list(rows) == ["a", "b", "down", "broken"]
    assert rows["a"]["state"] == rows["b"]["state"] == "connected"
    assert rows["a"]["workers_online"] == rows["b"]["workers_online"] == 1
    assert rows["a"]["read_only"] and not rows["b"]["read_only"]
    wait_for(lambda: _get(url, "/api/envs")["envs"][2]["why"], timeout=60,
             what="the closed port's reason")
    down = _get(url, "/api/envs")["envs"][2]
    assert down["state"] != "connected" and "refused" in down["why"].lower()
    assert "hunter2" not in str(down)
    assert rows["broken"]["state"] == "misconfigured"
    assert "no_such_module_xyz" in rows["broken"]["why"]

    _check_metrics(url, mine)


def _check_metrics(url: str, mine: dict[str, str]) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{url}/metrics", timeout=15).text
    families = {f.name: f for f in text_string_to_metric_families(text)}  # parses: one per name
    online = {(s.labels["env"], s.labels["worker"]): s.value
              for s in families["flower_worker_online"].samples}
    assert online == {("a", mine["a"]): 1.0, ("b", mine["b"]): 1.0}
    events = {s.labels["env"] for s in families["flower_events"].samples}
    assert events == {"a", "b"}
    connected = {s.labels["env"]: s.value
                 for s in families["lazycelery_ingest_connected"].samples}
    assert connected == {"a": 1.0, "b": 1.0, "down": 0.0, "broken": 0.0}
    tasks = {s.labels["env"] for s in families["lazycelery_tasks"].samples}
    assert tasks == {"a", "b", "down"}


def test_redis_and_rabbitmq_at_once(tmp_path: Path, redis_url: str, amqp_url: str,
                                    celery_worker_factory: Factory) -> None:
    workers = {"red": celery_worker_factory(redis_url), "rabbit": celery_worker_factory(amqp_url)}
    config = tmp_path / "config.toml"
    config.write_text(f'[environments.red]\nbroker = "{redis_url}"\n'
                      f'[environments.rabbit]\nbroker = "{amqp_url}"\nmanagement_url = "none"\n')
    serve = _serve(tmp_path, config, "--env", "rabbit", "--env", "red")
    try:
        wait_for(serve.healthy, timeout=60, interval=0.2, what="serve to answer")
        url = serve.url
        for env, worker in workers.items():
            def seen(env: str = env, worker: WorkerProcess = worker) -> bool:
                _send(worker, "workerapp.add", 2, 3)
                tasks = _get(url, "/api/tasks", env=env, state="SUCCESS")
                return bool(tasks) and all(t["worker"] == worker.hostname
                                           for t in tasks.values())
            wait_for(seen, timeout=60, interval=0.5, what=f"a success in {env}")
        for env, worker in workers.items():  # a heartbeat (worker-online may predate serve)
            wait_for(lambda env=env, worker=worker: _get(  # type: ignore[misc]
                url, "/api/workers", env=env, status=1).get(worker.hostname),
                timeout=60, what=f"{env}'s worker online")
        # no env: the first one asked for (rabbit)
        assert set(_get(url, "/api/workers", status=1)) == {workers["rabbit"].hostname}
        assert set(_get(url, "/api/workers", env="red", status=1)) == {workers["red"].hostname}
        lengths = _get(url, "/api/queues/length", env="rabbit")["active_queues"]
        assert [q["name"] for q in lengths] == [workers["rabbit"].queue]
        rows = {row["env"]: row["state"] for row in _get(url, "/api/envs")["envs"]}
        assert rows == {"rabbit": "connected", "red": "connected"}
    finally:
        assert serve.stop() == 0, serve.output()[-3000:]


def _inflight(url: str) -> float:
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith("lazycelery_http_inflight "):  # the process's: no env label
            return float(line.split()[-1])
    raise AssertionError("no lazycelery_http_inflight")


def test_max_inflight_counts_every_environment(tmp_path: Path, redis_url: str) -> None:
    """``--max-inflight 2`` over two environments: one request held in each fills it, so a
    GET to either (or to /api/envs) is shed at once with 503 JSON; /healthcheck and /metrics
    still answer, and count the shed requests once, for the process."""
    import asyncio

    second = _second_db(redis_url)
    config = tmp_path / "config.toml"
    config.write_text(f'[environments.a]\nbroker = "{redis_url}"\nresult_backend = "{redis_url}"\n'
                      f'[environments.b]\nbroker = "{second}"\nresult_backend = "{second}"\n')
    serve = _serve(tmp_path, config, "--all-envs", "--max-inflight", "2")
    hold = 15.0  # the window for the shed GETs: room for a loaded machine

    async def flood(url: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            held = [asyncio.create_task(client.get(
                f"{url}/api/task/result/held-{env}", params={"env": env, "timeout": hold}))
                for env in ("a", "b")]
            deadline = time.monotonic() + hold / 2
            while await asyncio.to_thread(_inflight, url) < 2:  # both held in serve
                assert time.monotonic() < deadline, "the held requests never got in flight"
                await asyncio.sleep(0.05)
            shed = await asyncio.gather(
                *(client.get(f"{url}/api/tasks", params={"env": env}) for env in "ab" * 5),
                client.get(f"{url}/api/envs"), client.get(f"{url}/api/alerts"))
            health = await client.get(f"{url}/healthcheck")
            assert health.status_code == 200, health.text
            for got in await asyncio.gather(*held):
                assert got.status_code == 200, got.text
            return list(shed)

    try:
        wait_for(serve.healthy, timeout=60, interval=0.2, what="serve to answer")
        shed = asyncio.run(flood(serve.url))
        assert {got.status_code for got in shed} == {503}, [g.text for g in shed]
        for got in shed:
            assert got.json()["reason"] == "busy" and got.headers["retry-after"] == "1"
            assert "--max-inflight" in got.json()["error"]
        metrics = httpx.get(f"{serve.url}/metrics", timeout=10).text
        assert 'lazycelery_http_shed_total{reason="busy"} 12.0' in metrics, metrics
        assert metrics.count("lazycelery_http_shed_total{") == 2  # busy, ingest_behind: once
        wait_for(lambda: httpx.get(f"{serve.url}/api/envs", timeout=10).status_code == 200,
                 timeout=60, what="serve to answer again")
    finally:
        assert serve.stop() == 0, serve.output()[-3000:]
    assert "Traceback" not in serve.output()


def _metric_queues(url: str, env: str) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{url}/metrics", timeout=15).text
    return {s.labels["queue"]: s.value
            for f in text_string_to_metric_families(text) if f.name == "lazycelery_queue_messages"
            for s in f.samples if s.labels["env"] == env and s.labels["priority"] == "all"}


def test_metrics_and_queue_lengths_list_the_same_queues(
        tmp_path: Path, redis_url: str, celery_worker_factory: Factory) -> None:
    """Per environment, /metrics and /api/queues/length name the same queues with the same
    depths: the queues its workers consume (each worker here its own, not "celery"), and no
    queue the environment neither configures nor has (a bare app's default "celery")."""
    second = _second_db(redis_url)
    workers = {"a": celery_worker_factory(redis_url), "b": celery_worker_factory(second)}
    config = tmp_path / "config.toml"
    config.write_text(f'[environments.a]\nbroker = "{redis_url}"\n'
                      f'[environments.b]\nbroker = "{second}"\n')
    serve = _serve(tmp_path, config, "--all-envs")
    try:
        wait_for(serve.healthy, timeout=60, interval=0.2, what="serve to answer")
        for env, worker in workers.items():
            last: list[Any] = []

            def agree(env: str = env, worker: WorkerProcess = worker,
                      last: list[Any] = last) -> Any:
                lengths = _get(serve.url, "/api/queues/length", env=env)["active_queues"]
                api = {q["name"]: float(q["messages"]) for q in lengths}
                metrics = _metric_queues(serve.url, env)
                last[:] = [api, metrics]
                return api if set(api) == {worker.queue} and api == metrics else None

            try:
                wait_for(agree, timeout=60, interval=0.5,
                         what=f"/metrics and /api/queues/length to agree in {env}")
            except AssertionError:
                raise AssertionError(f"{env}: /api/queues/length {last[0]} vs /metrics "
                                     f"{last[1]}") from None
    finally:
        assert serve.stop() == 0, serve.output()[-3000:]
