"""`lazycelery serve --all-envs` runs each environment's alert rules: two environments on two
Redis dbs, each with a real `celery worker -E`, and a third whose broker is a closed port. A
failing task in environment a fires a's rule only; the real webhook receiver gets an
`alert.firing` body naming environment a (signed); `GET /api/alerts` lists every environment's
rules with their `env`, `?env=NAME` one environment's; the environment that is down does not
stop the others' rules. The policies run per environment too: a's failures are retried and
audited as environment a."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from notify_receiver import Receiver, receiver
from test_serve_envs import _second_db
from test_serve_helpers import Server

from conftest import WorkerProcess, free_port, wait_for
from lazycelery.core import audit

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
pytest.importorskip("starlette", reason="the serve extra")

SECRET = "envs-alert-secret-42"


def _config(a: str, b: str, hook: str, alerts_dir: Path) -> str:
    return f"""
[notify.channels.hook]
type = "webhook"
url = "{hook}"
secret = "{SECRET}"
timeout = 5

# every environment: three failures of always_fail within 30 s
[[alerts.rules]]
name = "fails"
kind = "failures"
filter = "name:workerapp.always_fail"
count = 3
window = "30s"
notify = ["hook"]

# every environment's policies: a's failures are retried (audited as in environment a)
[[policies.retry]]
name = "doomed"
task = "workerapp.always_fail"
exception = "ValueError"
max_attempts = 1
backoff = "100ms"

[environments.a]
broker = "{a}"

[environments.b]
broker = "{b}"

# b's own rule: a single failure of anything would fire it, in b only
[[environments.b.alerts.rules]]
name = "b-any-failure"
kind = "failures"
filter = "name:workerapp.*"
count = 1
window = "30s"
notify = ["hook"]

[environments.down]
broker = "redis://127.0.0.1:{free_port()}/0"
"""


def _serve_alerting(tmp_path: Path, config: Path, alerts_dir: Path) -> Server:
    """`serve --all-envs` with none of the caller's LAZYCELERY_* variables, its audit log and
    alert state files in ``tmp_path``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CELERY_", "LAZYCELERY_"))}
    env.update(LAZYCELERY_CONFIG=str(config), LAZYCELERY_AUDIT_LOG=str(tmp_path / "audit.log"),
               LAZYCELERY_ALERTS_DIR=str(alerts_dir))
    port = free_port()
    return Server([sys.executable, "-m", "lazycelery", "serve", "--port", str(port),
                   "--queue-interval", "0.5", "--all-envs"], env, port, tmp_path / "serve.log")


def _policy_entries(tmp_path: Path) -> list[audit.AuditEntry]:
    log = tmp_path / "audit.log"
    if not log.exists():
        return []
    return [e for e in audit.read(log) if e.user.startswith("policy:")]


def _bodies(got: Receiver) -> list[dict[str, Any]]:
    out = []
    for request in list(got.requests):
        signature = request.headers.get("X-Lazycelery-Signature", "")
        expected = "sha256=" + hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(signature, expected), request.headers
        out.append(json.loads(request.body))
    return out


def _alerts(url: str, **params: str) -> dict[str, Any]:
    response = httpx.get(f"{url}/api/alerts", params=params, timeout=10)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_each_environment_runs_its_own_alert_rules(
        tmp_path: Path, redis_url: str, celery_worker_factory: Callable[..., WorkerProcess]
        ) -> None:
    second = _second_db(redis_url)
    worker_a = celery_worker_factory(redis_url)
    worker_b = celery_worker_factory(second)
    config = tmp_path / "config.toml"
    alerts_dir = tmp_path / "alerts"
    with receiver() as hook:
        config.write_text(_config(redis_url, second, hook.url, alerts_dir))
        serve = _serve_alerting(tmp_path, config, alerts_dir)
        try:
            wait_for(serve.healthy, timeout=60, interval=0.2, what="serve to answer")
            _check(serve.url, hook, worker_a, worker_b)
            wait_for(lambda: _policy_entries(tmp_path), timeout=60, interval=0.3,
                     what="the retry policy to act in a")
        finally:
            code = serve.stop()
        output = serve.output()
    assert code == 0, output[-3000:]
    assert "Traceback" not in output and SECRET not in output, output[-3000:]
    assert "do not run in a serve over several environments" not in output
    # each environment's rules said at start, with its name; the state files are per env
    assert "a: alerts: 1 rule(s)" in output and "b: alerts: 2 rule(s)" in output, output
    assert "down: alerts: 1 rule(s)" in output, output
    assert {p.name for p in alerts_dir.glob("state-*.json")} >= {"state-a.json", "state-b.json"}
    assert "a: policies: 1 retry rule" in output and "b: policies: 1 retry rule" in output
    # the policy acted in a only, and its audit lines name environment a
    policy = _policy_entries(tmp_path)
    assert policy and {e.environment for e in policy} == {"a"}, policy


def _check(url: str, hook: Receiver, worker_a: WorkerProcess, worker_b: WorkerProcess) -> None:
    # b's events flow (a success shows in b) before a starts failing: b's rules then see b's
    # stream and must stay quiet
    app_b = worker_b.app()
    try:
        def b_seen() -> bool:
            app_b.send_task("workerapp.add", args=(1, 2))
            tasks = httpx.get(f"{url}/api/tasks", params={"env": "b", "state": "SUCCESS"},
                              timeout=10).json()
            return bool(tasks)
        wait_for(b_seen, timeout=60, interval=0.5, what="b's event stream")
    finally:
        app_b.close()

    app_a = worker_a.app()
    try:
        def fired() -> bool:
            if not any(b["kind"] == "alert.firing" for b in _bodies(hook)):
                for i in range(3):  # PUB/SUB keeps nothing for a subscriber not there yet
                    app_a.send_task("workerapp.always_fail", args=(i,))
            return any(b["kind"] == "alert.firing" for b in _bodies(hook))
        wait_for(fired, timeout=90, interval=1.0, what="a's alert.firing webhook")
    finally:
        app_a.close()

    firing = [b for b in _bodies(hook) if b["kind"] == "alert.firing"]
    assert {(b["environment"], b["labels"]["rule"]) for b in firing} == {("a", "fails")}, firing
    assert firing[0]["key"] == "a/fails" and "[FIRING] fails" in firing[0]["title"]

    # /api/alerts: every environment's rules, each with its env; a's firing only
    everything = _alerts(url)
    assert everything["configured"] is True and everything["firing"] == 1, everything
    states = {(r["env"], r["name"]): r["state"] for r in everything["rules"]}
    assert states == {("a", "fails"): "firing", ("b", "fails"): "ok",
                      ("b", "b-any-failure"): "ok", ("down", "fails"): "ok"}, states
    only_a = _alerts(url, env="a")
    assert [(r["env"], r["name"], r["state"]) for r in only_a["rules"]] == \
        [("a", "fails", "firing")]
    only_b = _alerts(url, env="b", state="firing")
    assert only_b["firing"] == 0 and only_b["rules"] == []
    firing_all = _alerts(url, state="firing")
    assert [(r["env"], r["name"]) for r in firing_all["rules"]] == [("a", "fails")]
    assert httpx.get(f"{url}/api/alerts", params={"env": "nope"}).status_code == 404
    bad = httpx.get(f"{url}/api/alerts", params={"state": "maybe"})
    assert bad.status_code == 400 and bad.json()["parameter"] == "state"
    # the environment that is down is still down, and did not stop a's rules
    envs = {e["env"]: e for e in httpx.get(f"{url}/api/envs", timeout=10).json()["envs"]}
    assert envs["down"]["state"] != "connected" and envs["a"]["state"] == "connected"
