"""`lazycelery serve` over real HTTP (httpx) against a real server and worker: authentication
(bearer and basic, roles), read-only, failed-login limits, bad parameters as JSON 400s, actions
addressed to one worker and audited with the API user, and the one-line start-up refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_serve_helpers import INTEGRATION, Server, bearer, servers, tokens_config, worker_env  # noqa: F401

from conftest import free_port, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
pytest.importorskip("starlette", reason="the serve extra")

from lazycelery.serve.auth import hash_password  # noqa: E402

VIEWER_TOKEN = "viewer-token-0123456789"
OPERATOR_TOKEN = "operator-token-0123456789"
CONFIG = tokens_config(VIEWER_TOKEN, OPERATOR_TOKEN) + f"""
[[serve.users]]
name = "alice"
password = "{hash_password('wonderland')}"
role = "operator"
"""


def test_auth_roles_actions_and_audit(redis_url: str, celery_worker_factory: Callable[..., Any],
                                      servers: Callable[..., Server],  # noqa: F811
                                      tmp_path: Path) -> None:
    worker = celery_worker_factory(redis_url, backend=redis_url)
    serve = servers("serve", redis_url, worker.queue, backend=redis_url, config_text=CONFIG)
    url = serve.url
    viewer, operator = bearer(VIEWER_TOKEN), bearer(OPERATOR_TOKEN)
    wait_for(lambda: httpx.get(f"{url}/api/workers", params={"status": 1},
                               headers=viewer).json().get(worker.hostname), what="the worker")

    # no credentials, bad credentials: 401 JSON; healthcheck stays open
    response = httpx.get(f"{url}/api/tasks")
    assert response.status_code == 401 and "error" in response.json()
    assert "Bearer" in response.headers["www-authenticate"]
    assert httpx.get(f"{url}/api/tasks", headers=bearer("nope")).status_code == 401
    assert httpx.get(f"{url}/healthcheck").text == "OK"
    # viewer reads, may not act; operator acts; basic auth works
    assert httpx.get(f"{url}/api/tasks", headers=viewer).status_code == 200
    assert httpx.get(f"{url}/metrics", headers=viewer).status_code == 200
    refused = httpx.post(f"{url}/api/worker/pool/grow/{worker.hostname}", headers=viewer)
    assert refused.status_code == 403 and "operator" in refused.json()["error"]
    grown = httpx.post(f"{url}/api/worker/pool/grow/{worker.hostname}", params={"n": 1},
                       headers=operator, timeout=10)
    assert grown.json() == {"message": f"Growing '{worker.hostname}' worker's pool by 1"}
    shrunk = httpx.post(f"{url}/api/worker/pool/shrink/{worker.hostname}", data={"n": "1"},
                        auth=("alice", "wonderland"), timeout=10)
    assert shrunk.status_code == 200, shrunk.text
    sent = httpx.post(f"{url}/api/task/async-apply/workerapp.add", json={"args": [2, 3]},
                      headers=operator, timeout=10).json()
    task_id = sent["task-id"]
    wait_for(lambda: httpx.get(f"{url}/api/task/info/{task_id}", headers=viewer)
             .json().get("state") == "SUCCESS", what="the task to succeed")
    result = httpx.get(f"{url}/api/task/result/{task_id}", headers=viewer).json()
    assert result == {"task-id": task_id, "state": "SUCCESS", "result": 5}
    revoked = httpx.post(f"{url}/api/task/revoke/{task_id}", headers=operator, timeout=10).json()
    assert revoked["message"] == f"Revoked '{task_id}'"
    assert list(revoked["detail"]["replies"]) == [worker.hostname]  # addressed, not broadcast

    # /metrics parses as Prometheus text with Flower's families and ours
    from prometheus_client.parser import text_string_to_metric_families

    def families() -> dict[str, Any]:
        text = httpx.get(f"{url}/metrics", headers=viewer).text
        return {f.name: f for f in text_string_to_metric_families(text)}

    found = wait_for(lambda: (lambda f: f if f["flower_task_runtime_seconds"].samples else None)(
        families()), what="the task's runtime in /metrics")
    for name in ("flower_events", "flower_task_runtime_seconds", "flower_task_prefetch_time_seconds",
                 "flower_worker_prefetched_tasks", "flower_worker_online",
                 "flower_worker_number_of_currently_executing_tasks", "lazycelery_queue_messages",
                 "lazycelery_tasks", "lazycelery_ingest_gaps"):
        assert name in found, name
    online = {s.labels["worker"]: s.value for s in found["flower_worker_online"].samples}
    assert online[worker.hostname] == 1
    succeeded = [s for s in found["flower_events"].samples
                 if s.labels == {"worker": worker.hostname, "type": "task-succeeded",
                                 "task": "workerapp.add"}]
    assert succeeded and succeeded[0].value == 1

    # unknown names are 404s; bad parameters 400s naming them
    assert httpx.post(f"{url}/api/worker/shutdown/celery@nowhere",
                      headers=operator).status_code == 404
    assert httpx.post(f"{url}/api/task/async-apply/no.such.task", json={},
                      headers=operator).status_code == 404
    for method, path, kwargs, parameter in (
            ("GET", "/api/tasks", {"params": {"limit": "-1"}}, "limit"),
            ("GET", "/api/tasks", {"params": {"received_start": "yesterday"}}, "received_start"),
            ("GET", "/api/tasks", {"params": {"search": '"unterminated'}}, "search"),
            ("GET", "/api/workers", {"params": {"refresh": "maybe"}}, "refresh"),
            ("POST", f"/api/worker/pool/autoscale/{worker.hostname}", {"params": {"max": 3}},
             "min"),
            ("POST", f"/api/worker/queue/add-consumer/{worker.hostname}", {}, "queue"),
            ("POST", "/api/task/rate-limit/workerapp.add", {"data": {"ratelimit": "5/m"}},
             "workername"),
            ("POST", "/api/task/revoke/x", {"params": {"signal": "SIGNOPE"}}, "signal"),
            ("POST", "/api/task/send-task/workerapp.add", {"json": {"args": "1,2"}}, "args"),
            ("POST", "/api/task/send-task/workerapp.add", {"json": {"routing": "x"}}, "routing")):
        response = httpx.request(method, f"{url}{path}", headers=operator, **kwargs)
        assert response.status_code == 400, (path, response.text)
        assert response.json()["parameter"] == parameter
    not_json = httpx.post(f"{url}/api/task/send-task/workerapp.add", content=b"{nope",
                          headers=operator)
    assert not_json.status_code == 400 and "JSON" in not_json.json()["error"]
    huge = httpx.get(f"{url}/api/tasks", params={"limit": 10**9}, headers=viewer)
    assert huge.status_code == 200
    assert httpx.get(f"{url}/nowhere", headers=viewer).json() == {"error": "not found"}

    # the audit log names the API caller
    audit = [json.loads(line) for line in (serve.log.parent / "audit.log").read_text().splitlines()]
    users = {(entry["action"], entry["user"].split(" ")[0]) for entry in audit}
    assert ("pool-grow", "api:token:ops") in users
    assert ("pool-shrink", "api:user:alice") in users
    assert ("async-apply", "api:token:ops") in users
    assert ("revoke", "api:token:ops") in users
    # no secret in any answer or in the log
    for secret in (VIEWER_TOKEN, OPERATOR_TOKEN, "wonderland"):
        assert secret not in serve.output()

    # failed logins are limited per client: 5 within a minute (one above), then 429s
    for _ in range(4):
        assert httpx.get(f"{url}/api/tasks", auth=("alice", "wrong")).status_code == 401
    limited = httpx.get(f"{url}/api/tasks", headers=operator)
    assert limited.status_code == 429 and "Retry-After" in limited.headers


def test_read_only_refuses_every_action(redis_url: str, celery_worker_factory: Callable[..., Any],
                                        servers: Callable[..., Server]) -> None:  # noqa: F811
    worker = celery_worker_factory(redis_url, backend=redis_url)
    serve = servers("serve", redis_url, worker.queue, backend=redis_url, args=["--read-only"])
    for path in (f"/api/worker/shutdown/{worker.hostname}", "/api/task/revoke/abc",
                 "/api/task/async-apply/workerapp.add", "/api/task/send-task/workerapp.add",
                 "/api/task/rate-limit/workerapp.add", f"/api/worker/pool/grow/{worker.hostname}"):
        response = httpx.post(f"{serve.url}{path}", json={})
        assert response.status_code == 403, path
        assert "read-only" in response.json()["error"]
    assert worker.ping()
    assert not (serve.log.parent / "audit.log").exists()
    assert httpx.get(f"{serve.url}/api/tasks").status_code == 200


def run_serve(broker: str, tmp_path: Path, *args: str, config_text: str = "") -> \
        subprocess.CompletedProcess[str]:
    config = tmp_path / "config.toml"
    config.write_text(config_text)
    return subprocess.run([sys.executable, "-m", "lazycelery", "serve", "--broker", broker, *args],
                          cwd=str(INTEGRATION), env=worker_env(broker, "q", None, config),
                          capture_output=True, text=True, timeout=60)


def test_start_refusals_are_one_line(redis_url: str, servers: Callable[..., Server],  # noqa: F811
                                     tmp_path: Path) -> None:
    exposed = run_serve(redis_url, tmp_path, "--host", "0.0.0.0", "--port", str(free_port()))
    assert exposed.returncode == 2
    assert exposed.stderr.count("\n") == 1 and "--insecure-no-auth" in exposed.stderr

    bad = run_serve(redis_url, tmp_path, "--port", str(free_port()),
                    config_text='[[serve.users]]\nname = "bob"\npassword = "plain-text"\n')
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert "scrypt" in bad.stderr and "plain-text" not in bad.stderr

    busy = servers("serve", redis_url, "q")
    taken = run_serve(redis_url, tmp_path, "--port", str(busy.port))
    assert taken.returncode == 2 and taken.stderr.count("\n") == 1
    assert "address already in use" in taken.stderr


def test_serve_records_into_the_store(redis_url: str, celery_worker_factory: Callable[..., Any],
                                      servers: Callable[..., Server],  # noqa: F811
                                      tmp_path: Path) -> None:
    from lazycelery.store import open_store
    from lazycelery.store.audit import read_audit

    worker = celery_worker_factory(redis_url, backend=redis_url)
    url = f"sqlite:///{tmp_path / 'history.sqlite3'}"
    serve = servers("serve", redis_url, worker.queue, backend=redis_url, args=["--store", url])
    sent = httpx.post(f"{serve.url}/api/task/async-apply/workerapp.add", json={"args": [4, 5]},
                      timeout=10).json()
    task_id = sent["task-id"]
    wait_for(lambda: httpx.get(f"{serve.url}/api/task/info/{task_id}").json().get("state")
             == "SUCCESS", what="the task to succeed")
    assert serve.stop() == 0
    assert "recording" in serve.output() and "0 lost" in serve.output()
    store = open_store(url, writer=False)
    try:
        found = store.get_task(task_id)
        audited = read_audit(store)
    finally:
        store.close()
    assert found is not None and found[0].state == "SUCCESS" and found[0].result == "9"
    assert [(e.action, e.user.split(" ")[0]) for e in audited] == \
        [("async-apply", "api:anonymous@127.0.0.1")]
