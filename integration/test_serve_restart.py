"""`POST /api/worker/restart/<worker>` on a real `lazycelery serve` with a real worker (on Redis
and on RabbitMQ): the
configured restart command (a real script that writes a file) runs for an operator only, with
the worker's name as one argument; the call is audited with the API user; read-only refuses it
with the same JSON 403 as every action; no command configured or an unknown worker is a 404."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_serve_helpers import Server, bearer, servers, tokens_config  # noqa: F401

from conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
pytest.importorskip("starlette", reason="the serve extra")

VIEWER_TOKEN = "viewer-token-0123456789"
OPERATOR_TOKEN = "operator-token-0123456789"
TOKENS = tokens_config(VIEWER_TOKEN, OPERATOR_TOKEN)


def _fake_supervisor(tmp_path: Path) -> tuple[Path, Path]:
    """A script standing in for systemctl: appends its arguments to a file, says it restarted."""
    script, calls = tmp_path / "fake-systemctl", tmp_path / "restarts.txt"
    script.write_text(f'#!/bin/sh\necho "$@" >> "{calls}"\necho "restarted celery@$2"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script, calls


def _known(url: str, worker: str, headers: dict[str, str]) -> Any:
    return httpx.get(f"{url}/api/workers", params={"status": 1}, headers=headers).json().get(worker)


@pytest.mark.parametrize("broker", ["redis", "amqp"])
def test_restart_runs_the_command_for_an_operator(broker: str, request: pytest.FixtureRequest,
                                                  celery_worker_factory: Callable[..., Any],
                                                  servers: Callable[..., Server],  # noqa: F811
                                                  tmp_path: Path) -> None:
    broker_url: str = request.getfixturevalue(f"{broker}_url")  # the worker is known by events
    worker = celery_worker_factory(broker_url)
    script, calls = _fake_supervisor(tmp_path)
    config = f'restart = "{script} restart {{name}} {{worker}}"\n{TOKENS}'
    serve = servers("serve", broker_url, worker.queue, config_text=config)
    url, viewer, operator = serve.url, bearer(VIEWER_TOKEN), bearer(OPERATOR_TOKEN)
    wait_for(lambda: _known(url, worker.hostname, viewer), what="the worker")
    name = worker.hostname.split("@")[0]

    refused = httpx.post(f"{url}/api/worker/restart/{worker.hostname}", headers=viewer)
    assert refused.status_code == 403 and "operator" in refused.json()["error"]
    assert not calls.exists()

    done = httpx.post(f"{url}/api/worker/restart/{worker.hostname}", headers=operator, timeout=30)
    assert done.status_code == 200, done.text
    assert done.json() == {"message": f"Restarted '{worker.hostname}': exit 0: "
                                      f"restarted celery@{name}"}
    assert calls.read_text() == f"restart {name} {worker.hostname}\n"

    unknown = httpx.post(f"{url}/api/worker/restart/celery@nowhere", headers=operator)
    assert unknown.status_code == 404 and "Unknown worker" in unknown.json()["error"]
    assert calls.read_text().count("\n") == 1  # nothing ran for it

    audit = [json.loads(line) for line in (serve.log.parent / "audit.log").read_text().splitlines()]
    restarts = [e for e in audit if e["action"] == "restart"]
    assert len(restarts) == 1 and restarts[0]["user"].startswith("api:token:ops")
    assert restarts[0]["targets"] == [worker.hostname]
    assert OPERATOR_TOKEN not in serve.output()


def test_restart_refused_read_only_and_absent_without_a_command(
        redis_url: str, celery_worker_factory: Callable[..., Any],
        servers: Callable[..., Server], tmp_path: Path) -> None:  # noqa: F811
    worker = celery_worker_factory(redis_url)
    script, calls = _fake_supervisor(tmp_path)
    read_only = servers("serve", redis_url, worker.queue, args=["--read-only"],
                        config_text=f'restart = "{script} restart {{name}}"\n')
    response = httpx.post(f"{read_only.url}/api/worker/restart/{worker.hostname}")
    assert response.status_code == 403
    assert response.json() == {"error": "read-only mode: actions are refused"}
    assert not calls.exists() and not (read_only.log.parent / "audit.log").exists()

    bare = servers("serve", redis_url, worker.queue)  # no restart command in its config
    wait_for(lambda: _known(bare.url, worker.hostname, {}), what="the worker")
    response = httpx.post(f"{bare.url}/api/worker/restart/{worker.hostname}")
    assert response.status_code == 404 and "no restart command" in response.json()["error"]
    assert not calls.exists() and worker.ping()
