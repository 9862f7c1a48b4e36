"""More actions forwarded to a real `lazycelery serve` with a real celery worker on Redis (the
retry and revoke basics are in test_remote_actions.py, whose fixtures these reuse): a retry
forwarded to serve goes where serve's ``[[policies.route]]`` rules say; task id prefixes are
resolved by serve (404 none, 409 ambiguous); queue moves, dead-letter requeues, reveal and
the worker restart command run on serve for an operator token, audited with its name, and
are refused by a viewer token and by serve --read-only."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from test_remote_actions import (  # noqa: F401
    _audit,
    _failed_task,
    _revoked_at,
    _serve_sees,
    _state,
    _who,
    cluster,
    serve_env,
)
from test_serve_helpers import INTEGRATION, Server, servers  # noqa: F401
from test_serve_v1 import CONFIG, OPERATOR_TOKEN

from conftest import WorkerProcess, wait_for
from lazycelery.core.actions_remote import RemoteActions
from lazycelery.core.index import TaskIndex

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
pytest.importorskip("starlette", reason="the serve extra")

ROUTED = f"lcq-routed-{uuid.uuid4().hex[:6]}"


def _route_config() -> str:
    return CONFIG + f'\n[[policies.route]]\ntask = "workerapp.fail_*"\nqueue = "{ROUTED}"\n'


@pytest.fixture
def routed(redis_url: str, celery_worker_factory: Callable[..., WorkerProcess],
           servers: Callable[..., Server],  # noqa: F811
           tmp_path: Path) -> Iterator[tuple[WorkerProcess, Server, Any]]:
    worker = celery_worker_factory(redis_url, backend=redis_url)
    serve = servers("serve", redis_url, worker.queue, backend=redis_url,
                    config_text=_route_config())
    _serve_sees(serve, worker)
    client = worker.app()
    try:
        yield worker, serve, client
    finally:
        client.close()


def _queued_ids(redis_url: str, queue: str) -> list[str]:
    """The task ids of the messages waiting in a Redis queue (the list, read, not taken)."""
    conn = redis.Redis.from_url(redis_url)
    try:
        return [json.loads(raw)["headers"]["id"] for raw in conn.lrange(queue, 0, -1)]
    finally:
        conn.close()


def test_a_forwarded_retry_follows_serves_routing_rules(
        routed: tuple[WorkerProcess, Server, Any], redis_url: str, tmp_path: Path) -> None:
    worker, serve, client = routed
    failed = _failed_task(serve, client, uuid.uuid4().hex)
    ops = RemoteActions(serve.url, OPERATOR_TOKEN, index=TaskIndex())
    result = ops.retry(ops.plan_retries([failed]))
    assert result.ok, result.lines()
    new_id = result.created[failed]
    assert result.replies[failed].text == f"sent as {new_id} to {ROUTED}"
    # in the routed queue, which no worker consumes: not in the task's own queue
    wait_for(lambda: new_id in _queued_ids(redis_url, ROUTED), timeout=30,
             what="the retry in the routed queue")
    assert new_id not in _queued_ids(redis_url, worker.queue)
    assert _who(tmp_path) == [("retry", "api:token:ops")]
    assert _audit(tmp_path)[0].result["created"] == {failed: new_id}


def _cli(serve: Server, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lazycelery", *argv, "--server", serve.url],
                          cwd=str(INTEGRATION), capture_output=True, text=True, timeout=60,
                          env={**serve_env(), "LAZYCELERY_TOKEN": OPERATOR_TOKEN})


def test_the_cli_forwards_task_id_prefixes_serve_resolves(
        cluster: tuple[WorkerProcess, Server, Any], tmp_path: Path) -> None:  # noqa: F811
    worker, serve, client = cluster
    failed = _failed_task(serve, client, uuid.uuid4().hex)
    done = _cli(serve, "task", "retry", failed[:8], "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"lazycelery: {failed[:8]} is task {failed}" in done.stderr
    assert "retry: 1 of 1 sent" in done.stdout
    assert _who(tmp_path) == [("retry", "api:token:ops")]
    assert _audit(tmp_path)[0].targets == [failed]

    # two ETA tasks whose ids share their first 12 characters: the prefix names both
    head = uuid.uuid4().hex[:8] + "-" + uuid.uuid4().hex[:3]
    twins = [f"{head}{i}-4000-8000-{uuid.uuid4().hex[:12]}" for i in (1, 2)]
    for task_id in twins:
        client.send_task("workerapp.add", args=[1, 2], countdown=300, task_id=task_id)
    wait_for(lambda: all(_state(serve, t) == "RECEIVED" for t in twins), timeout=60,
             what="the worker to receive both")
    done = _cli(serve, "task", "revoke", head, "--yes")
    assert done.returncode != 0
    assert done.stderr.strip() == (f"lazycelery: revoke: task id prefix {head!r} is ambiguous: "
                                   f"{', '.join(sorted(twins))}")
    done = _cli(serve, "task", "terminate", "fedcba98", "--yes")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert done.stderr.strip() == ("lazycelery: terminate: no task id starts with 'fedcba98' "
                                   "in serve's index or the result backend (a task still in a "
                                   "queue has no result yet): give the full id")
    # one more character names one of them: revoked at the worker holding it
    done = _cli(serve, "task", "revoke", twins[0][:13], "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"revoke {twins[0]} at {worker.hostname} (holds it: RECEIVED)" in done.stdout
    assert twins[0] in _revoked_at(client, worker) and twins[1] not in _revoked_at(client, worker)
    assert [e.action for e in _audit(tmp_path)] == ["retry", "revoke"]
