"""Actions against real workers on a real broker: retry, revoke, terminate, worker control, CLI."""

from __future__ import annotations

import io
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import WorkerProcess, wait_for
from lazycelery.cli import main
from lazycelery.config import Settings
from lazycelery.core import audit
from lazycelery.core.actions import Actions, RetryPlan

pytestmark = pytest.mark.integration


@pytest.fixture
def audit_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "audit.log"
    monkeypatch.setenv(audit.AUDIT_ENV, str(path))
    return path


@pytest.fixture
def worker(redis_url: str, celery_worker_factory: Callable[..., WorkerProcess]) -> WorkerProcess:
    return celery_worker_factory(redis_url, backend=redis_url)


@pytest.fixture
def client(worker: WorkerProcess) -> Iterator[Any]:
    app = worker.app()
    yield app
    app.close()


def actions_for(worker: WorkerProcess, **kwargs: Any) -> Actions:
    settings = Settings(broker_url=worker.broker, result_backend=worker.backend, env_name="itest",
                        **kwargs)
    return Actions.from_settings(settings, timeout=3.0)


def inspect(client: Any, worker: WorkerProcess) -> Any:
    return client.control.inspect(destination=[worker.hostname], timeout=3.0)


def _marker(token: str) -> Path:
    return Path(tempfile.gettempdir()) / f"lc-fail-once-{token}"


# --------------------------------------------------------------------------- retry


def test_retry_resends_a_failed_task_with_its_real_args(
    worker: WorkerProcess, client: Any, audit_log: Path
) -> None:
    token = uuid.uuid4().hex
    try:
        first = client.send_task("workerapp.fail_once", args=[token, [1, {"deep": [2, 3]}]],
                                 kwargs={"tag": "x"})
        wait_for(lambda: first.state == "FAILURE", timeout=60, what="the first run to fail")
        actions = actions_for(worker)
        batch = actions.plan_retries([first.id])
        [plan] = batch.plans
        assert isinstance(plan, RetryPlan)
        assert plan.source == "result backend" and plan.queue == worker.queue
        assert plan.args == (token, [1, {"deep": [2, 3]}]) and dict(plan.kwargs) == {"tag": "x"}
        result = actions.retry(batch)
        assert result.ok, result.lines()
        new_id = result.created[first.id]
        again = client.AsyncResult(new_id)
        assert again.get(timeout=30) == {"value": [1, {"deep": [2, 3]}], "extra": {"tag": "x"}}
        meta = client.backend.get_task_meta(new_id)
        assert meta["parent_id"] == first.id and meta["queue"] == worker.queue
        assert first.state == "FAILURE"  # the original run is left as it was
        [entry] = audit.read(audit_log)
        assert entry.action == "retry" and entry.targets == [first.id]
        assert entry.environment == "itest" and entry.result["created"] == {first.id: new_id}
    finally:
        _marker(token).unlink(missing_ok=True)


def test_cli_retry_dry_run_then_yes(worker: WorkerProcess, client: Any, audit_log: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    token = uuid.uuid4().hex
    try:
        first = client.send_task("workerapp.fail_once", args=[token, 5])
        wait_for(lambda: first.state == "FAILURE", timeout=60, what="the first run to fail")
        base = ["-b", worker.broker, "--result-backend", str(worker.backend), "task", "retry", first.id]
        assert main([*base, "--dry-run"]) == 0
        out = capsys.readouterr().out
        assert "1 task would be retried, 0 refused" in out and "workerapp.fail_once(" in out
        assert not audit_log.exists()
        assert main([*base, "--yes"]) == 0
        out = capsys.readouterr().out
        assert "retry: 1 of 1 sent" in out and "sent as" in out
        new_id = audit.read(audit_log)[0].result["created"][first.id]
        assert client.AsyncResult(new_id).get(timeout=30) == {"value": 5, "extra": {}}
    finally:
        _marker(token).unlink(missing_ok=True)


def test_cli_takes_a_unique_id_prefix(worker: WorkerProcess, client: Any, audit_log: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    token = uuid.uuid4().hex
    stem = uuid.uuid4().hex[:6]
    try:
        # two finished tasks whose ids share their first 6 characters, one failed
        failed = client.send_task("workerapp.fail_once", args=[token, 1],
                                  task_id=f"{stem}aa-0000-4000-8000-{token[:12]}")
        done = client.send_task("workerapp.add", args=[1, 2],
                                task_id=f"{stem}bb-0000-4000-8000-{token[:12]}")
        wait_for(lambda: failed.state == "FAILURE" and done.state == "SUCCESS", timeout=60,
                 what="both tasks to finish")
        base = ["-b", worker.broker, "--result-backend", str(worker.backend), "task", "retry"]
        assert main([*base, failed.id[:8], "--dry-run"]) == 0
        out, err = capsys.readouterr()
        assert f"{failed.id[:8]} is task {failed.id}" in err
        assert f"retry   {failed.id}  workerapp.fail_once(" in out
        assert main([*base, stem, "--dry-run"]) == 2
        err = capsys.readouterr().err
        assert f"task id prefix '{stem}' is ambiguous: {failed.id}, {done.id}" in err
        queued = client.send_task("workerapp.add", args=[1, 1], queue="lc-nobody-consumes",
                                  task_id=f"{token[:8]}-0000-4000-8000-000000000000")
        assert main(["-b", worker.broker, "--result-backend", str(worker.backend), "task",
                     "revoke", queued.id[:8], "--dry-run"]) == 2
        assert f"no task id starts with '{queued.id[:8]}' in the result backend" in \
            capsys.readouterr().err
    finally:
        _marker(token).unlink(missing_ok=True)


# --------------------------------------------------------------------------- revoke / terminate


def test_revoke_a_scheduled_eta_task(worker: WorkerProcess, client: Any, audit_log: Path) -> None:
    eta = client.send_task("workerapp.add", args=[1, 2], countdown=120)
    wait_for(lambda: any(s["request"]["id"] == eta.id
                         for s in (inspect(client, worker).scheduled() or {}).get(worker.hostname, [])),
             timeout=60, what="the worker to hold the ETA task")
    actions = actions_for(worker)
    placement = actions.locate([eta.id])  # read-only inspect: which worker holds it
    assert placement.holders == {eta.id: worker.hostname} and placement.held_as[eta.id] == "scheduled"
    result = actions.revoke([eta.id], placement=placement)
    assert result.ok, result.lines()
    assert result.replies[worker.hostname].text == f"tasks {{'{eta.id}'}} flagged as revoked"
    assert eta.id in inspect(client, worker).revoked()[worker.hostname]
    wait_for(lambda: eta.state == "REVOKED", timeout=60, what="the backend to say REVOKED")
    assert audit.read(audit_log)[0].action == "revoke"


def test_terminate_a_running_task(worker: WorkerProcess, client: Any, audit_log: Path) -> None:
    running = client.send_task("workerapp.long_running", args=[60])
    wait_for(lambda: running.id in str(inspect(client, worker).active()), timeout=60,
             what="the task to start")
    result = actions_for(worker).terminate([running.id], signal="TERM")
    assert result.ok, result.lines()
    assert result.message.startswith("terminated 1 of 1 with SIGTERM")
    assert result.replies[worker.hostname].text == f"terminate: {running.id}"
    wait_for(lambda: running.state == "REVOKED", timeout=60, what="the task to be revoked")
    assert running.id not in str(inspect(client, worker).active())


def test_cli_revoke_asks_and_refuses_without_a_terminal(
    worker: WorkerProcess, client: Any, audit_log: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    eta = client.send_task("workerapp.add", args=[2, 2], countdown=120)
    wait_for(lambda: eta.id in str(inspect(client, worker).scheduled()), timeout=60,
             what="the worker to hold the ETA task")
    base = ["-b", worker.broker, "task", "revoke", eta.id]
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert main(base) == 2
    assert "stdin is not a terminal (add --yes)" in capsys.readouterr().err

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdin", Tty("\n"))  # Enter = the default, No
    assert main(base) == 1
    captured = capsys.readouterr()
    assert f"revoke {eta.id} at {worker.hostname} (holds it: scheduled)" in captured.out
    assert "[y/N]" in captured.out and "cancelled" in captured.err
    assert not audit_log.exists()
    monkeypatch.setattr(sys, "stdin", Tty("y\n"))
    assert main(base) == 0
    out = capsys.readouterr().out
    assert f"{worker.hostname}  ok     tasks {{'{eta.id}'}} flagged as revoked" in out
    assert [e.action for e in audit.read(audit_log)] == ["revoke"]


def test_read_only_refuses_before_touching_the_cluster(
    worker: WorkerProcess, audit_log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    commands = [["task", "retry", "x"], ["task", "revoke", "x"], ["task", "terminate", "x"],
                ["worker", "shutdown", worker.hostname], ["worker", "pool-grow", worker.hostname],
                ["worker", "autoscale", worker.hostname, "--max", "3", "--min", "1"],
                ["worker", "add-consumer", worker.hostname, "-q", "x"],
                ["worker", "rate-limit", worker.hostname, "-t", "t", "--rate", "1/s"]]
    for command in commands:
        assert main(["-b", worker.broker, "--read-only", *command, "--yes"]) == 3, command
        assert "refused: read-only mode" in capsys.readouterr().err
    assert not audit_log.exists() and worker.ping()


# --------------------------------------------------------------------------- worker control


def test_pool_grow_and_shrink_show_in_stats(worker: WorkerProcess, client: Any, audit_log: Path) -> None:
    def processes() -> int:
        stats = inspect(client, worker).stats()[worker.hostname]
        return len(stats["pool"]["processes"])

    before = processes()
    actions = actions_for(worker)
    grow = actions.pool_grow([worker.hostname], 2)
    assert grow.ok and grow.replies[worker.hostname].text == "pool will grow"
    wait_for(lambda: processes() == before + 2, timeout=60, what="two more pool processes")
    shrink = actions.pool_shrink([worker.hostname], 1)
    assert shrink.ok and shrink.replies[worker.hostname].text == "pool will shrink"
    wait_for(lambda: processes() == before + 1, timeout=60, what="one pool process less")
    assert [e.action for e in audit.read(audit_log)] == ["pool-grow", "pool-shrink"]


def test_add_and_cancel_consumer_show_in_active_queues(
    worker: WorkerProcess, client: Any, audit_log: Path
) -> None:
    extra = f"lcx-{uuid.uuid4().hex[:8]}"

    def queues() -> set[str]:
        return {q["name"] for q in inspect(client, worker).active_queues()[worker.hostname]}

    actions = actions_for(worker)
    added = actions.add_consumer([worker.hostname], extra)
    assert added.ok and added.replies[worker.hostname].text == f"add consumer {extra}"
    wait_for(lambda: extra in queues(), timeout=60, what="the new consumer")
    cancelled = actions.cancel_consumer([worker.hostname], extra)
    assert cancelled.ok and cancelled.replies[worker.hostname].text == f"no longer consuming from {extra}"
    wait_for(lambda: extra not in queues(), timeout=60, what="the consumer to go")
    assert worker.queue in queues()


def test_limits_restart_errors_and_silent_workers(
    worker: WorkerProcess, client: Any, audit_log: Path
) -> None:
    actions = actions_for(worker)
    rate = actions.rate_limit([worker.hostname], "workerapp.add", "10/m")
    assert rate.ok and rate.replies[worker.hostname].text == "new rate limit set successfully"
    limits = actions.time_limit([worker.hostname], "workerapp.add", soft=30, hard=60)
    assert limits.ok and limits.replies[worker.hostname].text == "time limits set successfully"
    unknown = actions.rate_limit([worker.hostname], "no.such.task", "1/s")
    assert not unknown.ok and unknown.replies[worker.hostname].text == "unknown task"
    scale = actions.autoscale([worker.hostname], 4, 1)
    assert not scale.ok and "Autoscale not enabled" in scale.replies[worker.hostname].text
    restart = actions.pool_restart([worker.hostname])
    assert restart.ok and restart.replies[worker.hostname].text == "reload started"
    ghost = "lcw-ghost@nowhere"
    silent = actions.pool_grow([worker.hostname, ghost])
    assert not silent.ok and silent.missing == (ghost,) and silent.replies[worker.hostname].ok
    assert f"1 did not answer: {ghost}" in silent.message
    assert len(audit.read(audit_log)) == 6


def test_cli_clears_a_time_limit(worker: WorkerProcess, client: Any, audit_log: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    def limits() -> str:
        [entry] = [t for t in inspect(client, worker).registered("time_limit", "soft_time_limit")
                   [worker.hostname] if t.startswith("workerapp.add")]
        return str(entry)

    code = main(["-b", worker.broker, "worker", "time-limit", worker.hostname, "-t",
                 "workerapp.add", "--soft", "30", "--hard", "60", "--yes"])
    assert code == 0, capsys.readouterr()
    assert "time_limit=60" in limits() and "soft_time_limit=30" in limits()
    code = main(["-b", worker.broker, "worker", "time-limit", worker.hostname, "-t",
                 "workerapp.add", "--clear", "--yes"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "time-limit workerapp.add soft=none hard=none on:" in out
    assert limits() == "workerapp.add"  # no per-task limit left
    code = main(["-b", worker.broker, "worker", "time-limit", worker.hostname, "-t",
                 "workerapp.add", "--hard", "0", "--yes"])
    assert code == 0 and limits() == "workerapp.add"


def test_cli_worker_commands_print_each_reply(
    worker: WorkerProcess, audit_log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    short = worker.hostname.split("@")[0]
    code = main(["-b", worker.broker, "worker", "pool-grow", short, "-n", "1", "--yes"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"pool-grow by 1 on: {worker.hostname}" in out
    assert f"{worker.hostname}  ok     pool will grow" in out
    code = main(["-b", worker.broker, "worker", "autoscale", worker.hostname, "--max", "3",
                 "--min", "1", "--yes"])
    out = capsys.readouterr().out
    assert code == 1 and "error  ValueError('Autoscale not enabled')" in out
    code = main(["-b", worker.broker, "worker", "pool-grow", "lcw-ghost@nowhere", "--yes"])
    assert code == 1 and "did not answer ping" in capsys.readouterr().err


def test_shutdown_stops_the_worker(redis_url: str, celery_worker_factory: Callable[..., WorkerProcess],
                                   audit_log: Path) -> None:
    worker = celery_worker_factory(redis_url)
    result = actions_for(worker).shutdown([worker.hostname])
    assert result.ok and result.replies[worker.hostname].ok
    wait_for(lambda: worker.proc.poll() is not None, timeout=60, what="the worker to exit")
    assert audit.read(audit_log)[0].action == "shutdown"


def test_autoscale_on_an_autoscaling_worker(
    redis_url: str, celery_worker_factory: Callable[..., WorkerProcess], audit_log: Path
) -> None:
    worker = celery_worker_factory(redis_url, extra_args=("--autoscale", "3,1"))
    result = actions_for(worker).autoscale([worker.hostname], 5, 2)
    assert result.ok and result.replies[worker.hostname].text == "autoscale now max=5 min=2"


def test_worker_control_over_rabbitmq(
    amqp_url: str, celery_worker_factory: Callable[..., WorkerProcess], audit_log: Path
) -> None:
    worker = celery_worker_factory(amqp_url)
    app = worker.app()
    try:
        extra = f"lcx-{uuid.uuid4().hex[:8]}"
        actions = actions_for(worker)
        assert actions.add_consumer([worker.hostname], extra).ok
        wait_for(lambda: extra in str(inspect(app, worker).active_queues()), timeout=60,
                 what="the new consumer")
        eta = app.send_task("workerapp.add", args=[1, 1], countdown=120)
        wait_for(lambda: eta.id in str(inspect(app, worker).scheduled()), timeout=60,
                 what="the worker to hold the ETA task")
        revoked = actions.revoke([eta.id])
        assert revoked.ok and eta.id in revoked.replies[worker.hostname].text
        refusal = actions.plan_retries([eta.id]).refusals[0]
        assert "no result backend configured" in refusal.reason
    finally:
        app.close()

