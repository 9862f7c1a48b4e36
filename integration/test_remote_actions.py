"""Actions forwarded from a remote viewer (`lazycelery --server URL`, `task ... --server`) to a
real `lazycelery serve`, with a real celery worker on Redis: an operator token's retry really
re-sends the failed task with its real args (which only serve reads) and a revoke really
reaches the worker holding the task, each audited by serve under the token's name; a viewer
token is refused (403) and nothing happens; serve --read-only refuses; the viewer's own
--read-only refuses before sending; an unreachable serve is one line. The last tests drive the
remote dashboard's keys (prompt_toolkit, headless) through the same path."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prompt_toolkit.input import create_pipe_input
from test_dashboard_actions import ESC, Live, drive
from test_serve_helpers import INTEGRATION, Server, servers  # noqa: F401
from test_serve_v1 import CONFIG, OPERATOR_TOKEN, VIEW, VIEWER_TOKEN

from conftest import WorkerProcess, wait_for
from lazycelery.core import audit
from lazycelery.core.action_result import ActionError, ReadOnlyError
from lazycelery.core.actions_remote import RemoteActions
from lazycelery.core.index import TaskIndex
from lazycelery.core.ingest_remote import RemoteIngestor, probe_server
from lazycelery.core.queues_remote import RemoteQueues
from lazycelery.tui.app import Dashboard
from lazycelery.tui.remote import connect_remote_operator
from lazycelery.tui.screen.sources import DashboardInfo
from tests.tui_harness import SizedOutput

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
pytest.importorskip("starlette", reason="the serve extra")


def _state(server: Server, task_id: str) -> str | None:
    response = httpx.get(f"{server.url}/api/v1/tasks/{task_id}", headers=VIEW, timeout=10)
    return response.json()["task"]["state"] if response.status_code == 200 else None


def _revoked_at(client: Any, worker: WorkerProcess) -> list[str]:
    found = client.control.inspect(destination=[worker.hostname], timeout=3.0).revoked()
    return list((found or {}).get(worker.hostname, []))


def _audit(tmp_path: Path) -> list[audit.AuditEntry]:
    path = tmp_path / "audit.log"  # serve's (test_serve_helpers.worker_env)
    return audit.read(path) if path.exists() else []


def _who(tmp_path: Path) -> list[tuple[str, str]]:
    """(action, API user) of serve's audit lines: the token's name, then the OS user serve
    runs as (``api:token:ops (as root)``)."""
    return [(e.action, e.user.split(" (as ")[0]) for e in _audit(tmp_path)]


def _serve_sees(serve: Server, worker: WorkerProcess) -> None:
    """serve's event receiver is subscribed once a heartbeat of the worker reached it (an
    event sent before would be lost: Redis fan-out is pub/sub)."""
    def seen() -> bool:
        body = httpx.get(f"{serve.url}/api/v1/snapshot", params={"limit": 0}, headers=VIEW,
                         timeout=10).json()
        return any(w.get("hostname") == worker.hostname for w in body.get("workers") or ())

    wait_for(seen, timeout=60, what="serve to hear the worker")


@pytest.fixture
def cluster(redis_url: str, celery_worker_factory: Callable[..., WorkerProcess],
            servers: Callable[..., Server],  # noqa: F811
            tmp_path: Path) -> Iterator[tuple[WorkerProcess, Server, Any]]:
    with serve_cluster(redis_url, celery_worker_factory, servers, CONFIG,
                       env={"LC_STATE_DIR": str(tmp_path)}) as parts:
        yield parts


@contextlib.contextmanager
def serve_cluster(redis_url: str, celery_worker_factory: Callable[..., WorkerProcess],
                  servers: Callable[..., Server],  # noqa: F811
                  config_text: str, **worker: Any
                  ) -> Iterator[tuple[WorkerProcess, Server, Any]]:
    """A real worker (``worker``: its factory's options), a serve with ``config_text`` on the
    same Redis that has heard the worker, and a client app (closed after)."""
    process = celery_worker_factory(redis_url, backend=redis_url, **worker)
    serve = servers("serve", redis_url, process.queue, backend=redis_url,
                    config_text=config_text)
    _serve_sees(serve, process)
    client = process.app()
    try:
        yield process, serve, client
    finally:
        client.close()


def _failed_task(serve: Server, client: Any, token: str) -> str:
    first = client.send_task("workerapp.fail_once", args=[token, {"order": 42}],
                             kwargs={"notify": True})
    wait_for(lambda: _state(serve, first.id) == "FAILURE", timeout=60, what="the first run to fail")
    return str(first.id)


def _eta_task(serve: Server, client: Any) -> str:
    eta = client.send_task("workerapp.add", args=[1, 2], countdown=300)
    wait_for(lambda: _state(serve, eta.id) == "RECEIVED", timeout=60,
             what="the worker to receive the ETA task")
    return str(eta.id)


def test_operator_token_forwards_retry_and_revoke_viewer_is_refused(
        cluster: tuple[WorkerProcess, Server, Any], tmp_path: Path) -> None:
    worker, serve, client = cluster
    token = uuid.uuid4().hex
    failed = _failed_task(serve, client, token)
    ops = RemoteActions(serve.url, OPERATOR_TOKEN, index=TaskIndex())

    # retry: the dry run comes from serve (real args stay there: only their shape here)
    batch = ops.plan_retries([failed])
    assert [p.uuid for p in batch.plans] == [failed] and not batch.refusals
    assert batch.plans[0].describe().startswith("workerapp.fail_once(2 args; kwargs notify)")
    assert "args from result backend" in batch.plans[0].describe()
    result = ops.retry(batch)
    assert result.ok, result.lines()
    new_id = result.created[failed]
    wait_for(lambda: _state(serve, new_id) == "SUCCESS", timeout=60, what="the re-sent run")
    rerun = client.AsyncResult(new_id).get(timeout=10)
    assert rerun == {"value": {"order": 42}, "extra": {"notify": True}}  # the real args

    # revoke: serve locates the ETA task at the worker that holds it
    eta = _eta_task(serve, client)
    placement = ops.locate([eta])
    assert placement.holders == {eta: worker.hostname}
    result = ops.revoke([eta], placement=placement)
    assert result.ok and result.replies[worker.hostname].ok, result.lines()
    assert eta in _revoked_at(client, worker)
    assert _who(tmp_path) == [("retry", "api:token:ops"), ("revoke", "api:token:ops")]

    # a viewer token: serve answers 403, nothing is sent, nothing audited
    other = _eta_task(serve, client)
    viewer = RemoteActions(serve.url, VIEWER_TOKEN)
    with pytest.raises(ActionError) as refused:
        viewer.revoke([other])
    assert str(refused.value) == ("revoke: serve refused: role viewer may not act "
                                  "(operator needed)")
    with pytest.raises(ActionError, match=r"^retry: serve refused: role viewer"):
        viewer.retry(viewer.plan_retries([failed]))  # the dry run itself is a read
    # this process's --read-only: refused before anything is sent
    with pytest.raises(ReadOnlyError, match="read-only mode"):
        RemoteActions(serve.url, OPERATOR_TOKEN, read_only=True).revoke([other])
    assert other not in _revoked_at(client, worker)
    assert _state(serve, other) == "RECEIVED"
    assert len(_audit(tmp_path)) == 2

    # the CLI: `task revoke ID --server URL` with the operator token
    done = subprocess.run([sys.executable, "-m", "lazycelery", "task", "revoke", other,
                           "--server", serve.url, "--yes"], cwd=str(INTEGRATION),
                          env={**serve_env(), "LAZYCELERY_TOKEN": OPERATOR_TOKEN},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"revoke {other} at {worker.hostname} (holds it: RECEIVED)" in done.stdout
    assert "revoke: 1 ok" in done.stdout
    assert other in _revoked_at(client, worker)
    assert _who(tmp_path)[-1] == ("revoke", "api:token:ops")


def serve_env() -> dict[str, str]:
    import os

    env = dict(os.environ, LAZYCELERY_CONFIG=os.devnull)
    env.pop("LAZYCELERY_TOKEN", None)
    return env


def test_serve_read_only_refuses_and_unreachable_serve_is_one_line(
        redis_url: str, celery_worker_factory: Callable[..., WorkerProcess],
        servers: Callable[..., Server], tmp_path: Path) -> None:  # noqa: F811
    worker = celery_worker_factory(redis_url, backend=redis_url)
    serve = servers("serve", redis_url, worker.queue, backend=redis_url, config_text=CONFIG,
                    args=("--read-only",))
    _serve_sees(serve, worker)
    client = worker.app()
    try:
        eta = _eta_task(serve, client)
        with pytest.raises(ActionError) as refused:
            RemoteActions(serve.url, OPERATOR_TOKEN).revoke([eta])
        assert str(refused.value) == "revoke: serve refused: read-only mode: actions are refused"

        # the remote dashboard knows it from the snapshot: read-only, with the reason
        async def scenario(live: Live) -> None:
            await live.until(lambda: live.index.get(eta) is not None, what="the ETA task")
            await live.open_task(eta)
            await live.keys("x")
            await live.until(lambda: "runs read-only (serve --read-only refuses every "
                             "action)" in live.messages(), what="the refusal")
            assert live.d.operator.dialog is None

        with remote_dashboard(serve.url, OPERATOR_TOKEN) as live:
            assert live.d.screen.info.read_only
            drive(live, scenario)
        assert eta not in _revoked_at(client, worker)
        assert _audit(tmp_path) == []
    finally:
        client.close()

    with pytest.raises(ActionError) as lost:
        RemoteActions("http://127.0.0.1:1", OPERATOR_TOKEN).revoke([eta])
    assert str(lost.value).startswith("revoke: cannot reach http://127.0.0.1:1: ")
    assert str(lost.value).endswith("nothing was sent") and "\n" not in str(lost.value)
    done = subprocess.run([sys.executable, "-m", "lazycelery", "task", "retry", eta,
                           "--server", "http://127.0.0.1:1", "--token", "t", "--yes"],
                          env=serve_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert done.stderr.strip().startswith("lazycelery: retry: cannot reach http://127.0.0.1:1")
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


# --------------------------------------------------------------------------- the dashboard


@contextlib.contextmanager
def remote_dashboard(server: str, token: str) -> Iterator[Live]:
    """The remote dashboard as `lazycelery --server` builds it, with piped keys."""
    role, server_read_only = probe_server(server, token)
    index = TaskIndex()
    with create_pipe_input() as inp:
        d = Dashboard(index, info=DashboardInfo(broker=f"{server} ({role})",
                                                read_only=role != "operator"
                                                or server_read_only),
                      input=inp, output=SizedOutput(rows=40, columns=140), refresh_interval=None)
        ingestor = RemoteIngestor(server, index, token=token, on_batch=d.on_batch,
                                  on_status=d.on_status,
                                  on_snapshot=lambda records: d.on_batch([], records))
        monitor = RemoteQueues(server, token=token)
        d.attach(ingestor, monitor)
        connect_remote_operator(d, server, token, role, read_only=False,
                                server_read_only=server_read_only)
        yield Live(d, inp, index, ingestor, monitor)  # type: ignore[arg-type]


def test_remote_dashboard_keys_retry_and_revoke_through_serve(
        cluster: tuple[WorkerProcess, Server, Any], tmp_path: Path) -> None:
    worker, serve, client = cluster
    token = uuid.uuid4().hex
    failed = _failed_task(serve, client, token)

    async def scenario(live: Live) -> None:
        index = live.index
        await live.until(lambda: index.get(failed) is not None, what="the failed task")
        await live.open_task(failed)
        await live.keys("r")
        shown = await live.confirm("Retry 1 task")
        assert "1 task would be retried, 0 refused" in shown
        assert "workerapp.fail_once(2 args; kwargs notify)" in shown
        await live.until(lambda: "retry: 1 of 1 sent" in live.messages(), what="the result")
        await live.until(lambda: any(getattr(index.get(c), "state", None) == "SUCCESS"
                                     for c in index.children_of(failed)),
                         what="the new run, seen through serve's stream")

        eta = client.send_task("workerapp.add", args=[3, 4], countdown=300).id
        await live.until(lambda: getattr(index.get(eta), "state", None) == "RECEIVED",
                         what="the ETA task")
        await live.keys(ESC)
        await live.open_task(eta)
        await live.keys("x")
        shown = await live.confirm("Revoke 1 task")
        assert f"at {worker.hostname} (holds it: RECEIVED)" in shown
        await live.until(lambda: "revoke: 1 ok" in live.messages(), what="serve's answer")
        assert eta in _revoked_at(client, worker)

    with remote_dashboard(serve.url, OPERATOR_TOKEN) as live:
        drive(live, scenario)
    assert _who(tmp_path) == [("retry", "api:token:ops"), ("revoke", "api:token:ops")]


def test_remote_dashboard_with_a_viewer_token_refuses_with_one_line(
        cluster: tuple[WorkerProcess, Server, Any], tmp_path: Path) -> None:
    worker, serve, client = cluster
    eta = _eta_task(serve, client)

    async def scenario(live: Live) -> None:
        await live.until(lambda: live.index.get(eta) is not None, what="the ETA task")
        await live.open_task(eta)
        await live.keys("x")
        await live.until(lambda: "revoke: refused: the token's role at" in live.messages(),
                         what="the refusal")
        assert "is viewer; actions need an operator token" in live.messages()
        assert live.d.operator.dialog is None

    with remote_dashboard(serve.url, VIEWER_TOKEN) as live:
        drive(live, scenario)
    assert eta not in _revoked_at(client, worker)
    assert _audit(tmp_path) == []
