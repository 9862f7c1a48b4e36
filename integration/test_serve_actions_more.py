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

import httpx
import pytest
import redis
from test_dashboard_actions import ENTER, ESC, TAB, Live, drive
from test_remote_actions import (  # noqa: F401
    _audit,
    _failed_task,
    _revoked_at,
    _serve_sees,
    _state,
    _who,
    cluster,
    remote_dashboard,
    serve_cluster,
    serve_env,
)
from test_serve_helpers import INTEGRATION, Server, servers  # noqa: F401
from test_serve_v1 import CONFIG, OP, OPERATOR_TOKEN, VIEW, VIEWER_TOKEN

from conftest import WorkerProcess, wait_for
from lazycelery.core.action_result import ActionError
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
    with serve_cluster(redis_url, celery_worker_factory, servers, _route_config()) as parts:
        yield parts


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
    wait_for(lambda: new_id in _queued_ids(redis_url, ROUTED), timeout=60,
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


# --------------------------------------------------------------------------- step 3: queues,
# reveal, worker control


def _script(tmp_path: Path) -> Path:
    """A script standing in for systemctl: appends its arguments to a file, says it
    restarted (as integration/test_serve_restart.py's)."""
    script, calls = tmp_path / "fake-systemctl", tmp_path / "restarts.txt"
    script.write_text(f'#!/bin/sh\necho "$@" >> "{calls}"\necho "restarted celery@$2"\n')
    script.chmod(0o755)
    return script


@pytest.fixture
def acting(redis_url: str, celery_worker_factory: Callable[..., WorkerProcess],
           servers: Callable[..., Server],  # noqa: F811
           tmp_path: Path) -> Iterator[tuple[WorkerProcess, Server, Any]]:
    """A serve whose config masks the key `order`, names Redis dead-letter queues
    `<queue>.dlq` and has a restart command (a script writing a file)."""
    config = (f'restart = "{_script(tmp_path)} restart {{name}} {{worker}}"\n'
              '[queues]\ndead_letter = "{queue}.dlq"\n'
              '[mask]\nextra_keys = ["order"]\n' + CONFIG)
    with serve_cluster(redis_url, celery_worker_factory, servers, config) as parts:
        yield parts


def _serve_lists(serve: Server, queue: str, ready: int) -> None:
    """serve's queue reader has seen ``queue`` holding ``ready`` messages (a queue serve does
    not know is a 404 for the actions)."""
    def listed() -> bool:
        got = httpx.get(f"{serve.url}/api/v1/queues", headers=VIEW, timeout=10)
        rows = {q["name"]: q for q in (got.json().get("queues") or [])} \
            if got.status_code == 200 else {}
        return rows.get(queue, {}).get("ready") == ready

    wait_for(listed, timeout=60, what=f"serve to list {queue} with {ready} messages")


def test_queue_move_and_requeue_dead_run_on_serve(
        acting: tuple[WorkerProcess, Server, Any], redis_url: str, tmp_path: Path) -> None:
    worker, serve, client = acting
    hold = f"lcq-hold-{uuid.uuid4().hex[:6]}"  # no worker consumes it
    held = [client.send_task("workerapp.add", args=[i, i], queue=hold).id for i in range(3)]
    _serve_lists(serve, hold, 3)

    # a viewer token may not move them: 403, nothing moved, nothing audited
    viewer = RemoteActions(serve.url, VIEWER_TOKEN)
    with pytest.raises(ActionError, match=r"^move: serve refused: role viewer may not act"):
        viewer.queue_bulk("move", hold, worker.queue, held[:1])
    assert sorted(_queued_ids(redis_url, hold)) == sorted(held)

    # move two of them, by id, to the worker's queue: the worker runs them
    ops = RemoteActions(serve.url, OPERATOR_TOKEN)
    result, outcome = ops.queue_bulk("move", hold, worker.queue, [*held[:2], "not-there"])
    assert result.count == 2 and outcome is not None, result.lines()
    assert sorted(outcome.done) == sorted(held[:2]) and outcome.not_found == ["not-there"]
    assert result.message == "2 moved, 1 not found among 3 scanned"
    wait_for(lambda: all(_state(serve, t) == "SUCCESS" for t in held[:2]), timeout=60,
             what="the moved tasks to run")
    assert _queued_ids(redis_url, hold) == [held[2]]

    # dead letters parked in "<queue>.dlq" (the config's pattern) go back: the CLI, all of them
    dlq = f"{worker.queue}.dlq"
    dead = [client.send_task("workerapp.add", args=[2, i], queue=dlq).id for i in range(2)]
    _serve_lists(serve, dlq, 2)
    done = _cli(serve, "queues", "requeue-dead", dlq, "--all", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"requeue-dead {dlq}: 2 requeued" in done.stdout
    wait_for(lambda: all(_state(serve, t) == "SUCCESS" for t in dead), timeout=60,
             what="the requeued dead letters to run")
    entries = _audit(tmp_path)
    assert _who(tmp_path) == [("move", "api:token:ops"), ("requeue-dead", "api:token:ops")]
    assert entries[0].targets == [hold, worker.queue] and entries[0].result["count"] == 2
    assert entries[1].targets == [dlq] and entries[1].result["count"] == 2


def test_reveal_on_serve_shows_the_masked_values_to_an_operator_only(
        acting: tuple[WorkerProcess, Server, Any], tmp_path: Path) -> None:
    _worker, serve, client = acting
    token = uuid.uuid4().hex
    failed = _failed_task(serve, client, token)
    # serve masks what it ingests: its API shows the key `order` masked
    shown = httpx.get(f"{serve.url}/api/v1/tasks/{failed}", headers=VIEW, timeout=10).json()
    # (the random token and task id may themselves contain "42": look only at what is left)
    args = str(shown["task"].get("args"))
    assert token in args and "42" not in args.replace(token, "")

    viewer = RemoteActions(serve.url, VIEWER_TOKEN)
    with pytest.raises(ActionError, match=r"^reveal: serve refused: role viewer may not act"):
        viewer.reveal(failed)
    assert _audit(tmp_path) == []

    revealed = RemoteActions(serve.url, OPERATOR_TOKEN).reveal(failed[:8])  # a prefix, too
    assert revealed.uuid == failed and revealed.reason is None
    assert revealed.fields["args"] == f"({token!r}, {{'order': 42}})"
    assert revealed.fields["kwargs"] == "{'notify': True}"
    [entry] = _audit(tmp_path)
    assert (entry.action, entry.targets) == ("reveal", [failed])
    assert entry.user.startswith("api:token:ops")
    assert "42" not in json.dumps(entry.result).replace(token, "").replace(failed, "")
    raw = httpx.post(f"{serve.url}/api/v1/actions/reveal", json={"task_id": failed},
                     headers=OP, timeout=30)
    assert raw.headers["cache-control"] == "no-store"


def test_worker_restart_and_pool_restart_forwarded_from_the_cli(
        acting: tuple[WorkerProcess, Server, Any], tmp_path: Path) -> None:
    worker, serve, _client = acting
    name = worker.hostname.split("@")[0]
    refused = subprocess.run(
        [sys.executable, "-m", "lazycelery", "worker", "restart", worker.hostname, "--yes",
         "--server", serve.url], cwd=str(INTEGRATION), capture_output=True, text=True,
        timeout=60, env={**serve_env(), "LAZYCELERY_TOKEN": VIEWER_TOKEN})
    assert refused.returncode != 0
    assert refused.stderr.strip() == ("lazycelery: restart: serve refused: role viewer may not "
                                      "act (operator needed)")
    assert not (tmp_path / "restarts.txt").exists()

    done = _cli(serve, "worker", "restart", worker.hostname, "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{worker.hostname}  ok     exit 0: restarted celery@{name}" in done.stdout
    assert (tmp_path / "restarts.txt").read_text() == f"restart {name} {worker.hostname}\n"

    done = _cli(serve, "worker", "pool-restart", worker.hostname, "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "pool-restart: 1 ok" in done.stdout
    assert _who(tmp_path) == [("restart", "api:token:ops"), ("pool-restart", "api:token:ops")]
    # a short name is the worker serve knows by it; a dry run sends nothing
    short = _cli(serve, "worker", "shutdown", name, "--dry-run")
    assert short.returncode == 0, short.stdout + short.stderr
    assert short.stdout.strip() == f"shutdown on: {worker.hostname}"
    nobody = _cli(serve, "worker", "shutdown", "nobody", "--yes")
    assert nobody.returncode != 0 and "Traceback" not in nobody.stderr
    assert nobody.stderr.strip() == (f"lazycelery: shutdown: no worker named 'nobody' at "
                                     f"{serve.url} (known: {worker.hostname})")
    assert worker.ping()  # nothing was shut down
    assert len(_audit(tmp_path)) == 2


def test_remote_dashboard_reveals_moves_and_restarts_through_serve(
        acting: tuple[WorkerProcess, Server, Any], redis_url: str, tmp_path: Path) -> None:
    worker, serve, client = acting
    token = uuid.uuid4().hex
    failed = _failed_task(serve, client, token)
    hold = f"lcq-hold-{uuid.uuid4().hex[:6]}"
    held = [client.send_task("workerapp.add", args=[i, 1], queue=hold).id for i in range(2)]
    _serve_lists(serve, hold, 2)

    async def scenario(live: Live) -> None:
        d = live.d
        # reveal: asked first (Cancel focused), read by serve, shown in a dialog only
        await live.until(lambda: live.index.get(failed) is not None, what="the failed task")
        await live.open_task(failed)
        await live.keys(ENTER)  # the detail
        await live.keys("V")
        # not live.confirm: the values' dialog may open before a poll sees none open
        title = f"Reveal the masked values of {failed[:8]}"
        await live.until(lambda: d.operator.dialog is not None
                         and d.operator.dialog.title == title, what="the question")
        asked = d.operator.dialog
        assert asked is not None and asked.focus == 0  # Cancel
        assert "serve's result backend now" in "\n".join(
            "".join(t for _, t, *_ in line) for line in asked.lines)
        await live.keys(TAB + ENTER)
        await live.until(lambda: d.operator.dialog is not None
                         and d.operator.dialog.title.startswith("Real values of"),
                         what="the values")
        said = "\n".join("".join(t for _, t, *_ in line) for line in d.operator.dialog.lines)
        assert f"({token!r}, {{'order': 42}})" in said
        await live.keys(ENTER)  # Close
        await live.keys(ESC + ESC)

        # move the queue's waiting messages to the worker's queue: asked which, then the count
        await live.until(lambda: live.monitor.snapshot.get(hold) is not None, what="the queue")
        await live.keys("2")
        for _ in range(len(d.queues)):
            if d.queues.selected is not None and d.queues.selected.name == hold:
                break
            await live.keys("j")
        assert d.queues.selected is not None and d.queues.selected.name == hold
        await live.keys("M")
        await live.until(lambda: d.operator.dialog is not None, what="the prompt")
        await live.keys(worker.queue + ENTER)
        shown = await live.confirm(f"Move messages of {hold}")
        assert f"2 waiting messages move from {hold!r} to {worker.queue!r}" in shown
        await live.until(lambda: "move: 2 moved" in live.messages(), what="serve's answer")

        # restart the worker: serve runs its own configured command
        await live.keys("1")
        await live.until(lambda: d.workers.selected is not None, what="the worker")
        await live.keys("mR")
        shown = await live.confirm(f"Restart {worker.hostname}")
        assert "runs its configured restart command" in shown
        await live.until(lambda: "exit 0: restarted celery@" in live.messages(),
                         what="the restart")

    with remote_dashboard(serve.url, OPERATOR_TOKEN) as live:
        drive(live, scenario)
    wait_for(lambda: all(_state(serve, t) == "SUCCESS" for t in held), timeout=60,
             what="the moved tasks to run")
    assert _who(tmp_path) == [("reveal", "api:token:ops"), ("move", "api:token:ops"),
                              ("restart", "api:token:ops")]


def test_serve_read_only_refuses_the_new_actions(
        redis_url: str, celery_worker_factory: Callable[..., WorkerProcess],
        servers: Callable[..., Server], tmp_path: Path) -> None:  # noqa: F811
    worker = celery_worker_factory(redis_url, backend=redis_url)
    serve = servers("serve", redis_url, worker.queue, backend=redis_url,
                    config_text=f'restart = "{_script(tmp_path)} restart {{name}}"\n' + CONFIG,
                    args=("--read-only",))
    _serve_sees(serve, worker)
    client = worker.app()
    try:
        hold = f"lcq-hold-{uuid.uuid4().hex[:6]}"
        held = client.send_task("workerapp.add", args=[1, 1], queue=hold).id
        _serve_lists(serve, hold, 1)
        refusal = "serve refused: read-only mode: actions are refused"
        for argv in (("queues", "move", hold, worker.queue, "--all", "--yes"),
                     ("queues", "requeue-dead", hold, "--ids", held, "--yes"),
                     ("worker", "restart", worker.hostname, "--yes")):
            done = _cli(serve, *argv)
            assert done.returncode != 0, argv
            assert done.stderr.strip() == f"lazycelery: {argv[1]}: {refusal}", argv
        with pytest.raises(ActionError, match=f"^reveal: {refusal}$"):
            RemoteActions(serve.url, OPERATOR_TOKEN).reveal(held)
        assert _queued_ids(redis_url, hold) == [held]
        assert not (tmp_path / "restarts.txt").exists() and _audit(tmp_path) == []
    finally:
        client.close()
