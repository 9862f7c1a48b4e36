"""Auto-retry policies in a real `lazycelery record` on a real worker (Redis): a task failing
once is retried by its rule and then succeeds with the same args (the result backend says so);
a task that always fails is retried max_attempts times and then left alone; with the kill
switch thrown (`lazycelery policies pause`) a new failure is not retried. Every policy action
is in the audit log under the rule's name."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import ROOT, WorkerProcess, wait_for
from lazycelery.core import audit

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def config_text(queue: str) -> str:
    return f"""
[policies]
rate = "50/s"

[[policies.retry]]
name = "once"
task = "workerapp.fail_once"
exception = "RuntimeError"
max_attempts = 3
backoff = "200ms"

[[policies.retry]]
name = "doomed"
task = "workerapp.always_fail"
exception = "ValueError"
max_attempts = 2
backoff = "100ms"

[[policies.route]]
task = "workerapp.*"
queue = "{queue}"
"""


def policy_entries(log: Path, action: str, user: str) -> list[audit.AuditEntry]:
    return [e for e in audit.read(log) if e.action == action and e.user.startswith(user)]


def test_record_retries_by_rule_stops_at_max_attempts_and_obeys_the_kill_switch(
        redis_url: str, celery_worker_factory: Callable[..., WorkerProcess],
        tmp_path: Path) -> None:
    worker = celery_worker_factory(redis_url, backend=redis_url)
    config = tmp_path / "config.toml"
    config.write_text(config_text(worker.queue))
    log = tmp_path / "audit.log"
    env = dict(os.environ, LAZYCELERY_CONFIG=str(config), LAZYCELERY_AUDIT_LOG=str(log),
               LAZYCELERY_POLICIES_STATE=str(tmp_path / "policies.json"))
    env.pop("LAZYCELERY_STORE", None)
    err = tmp_path / "record.stderr"
    with err.open("wb") as out:
        recorder = subprocess.Popen(
            [sys.executable, "-m", "lazycelery", "record", "--broker", redis_url,
             "--result-backend", redis_url, "--store", f"sqlite:///{tmp_path / 'h.sqlite3'}",
             "--status-every", "0"], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=out, start_new_session=True)
    try:
        app = worker.app()
        wait_for(lambda: "policies: 2 retry rules, 0 requeue rules (acting" in err.read_text(), timeout=60,
                 what="the recorder to start its policies")
        # PUB/SUB keeps nothing for a subscriber not there yet: fail until one is retried
        token = uuid.uuid4().hex

        def retried_once() -> list[audit.AuditEntry]:
            if not policy_entries(log, "retry", "policy:once"):
                app.send_task("workerapp.fail_once", args=(f"{token}-{uuid.uuid4().hex}", 42),
                              kwargs={"k": "v"})
            return policy_entries(log, "retry", "policy:once")

        (retry,) = wait_for(retried_once, timeout=60, interval=1.0, what="a policy retry")
        (failed_id, new_id), = retry.result["created"].items()
        # the retry ran on the worker with the same args and kwargs, and succeeded
        assert app.AsyncResult(new_id).get(timeout=30) == {"value": 42, "extra": {"k": "v"}}
        assert app.AsyncResult(failed_id).state == "FAILURE"

        # always failing: max_attempts (2) retries, then left alone
        doomed = str(app.send_task("workerapp.always_fail", args=("boom",)).id)
        wait_for(lambda: f"failed after 2 retries (first failure {doomed})" in err.read_text(),
                 timeout=60, what="the doomed task to exhaust its retries")
        chain = [e for e in policy_entries(log, "policy-retry", "policy:doomed")
                 if e.result["origin"] == doomed]
        assert [e.result["attempt"] for e in chain] == [1, 2]
        assert len(policy_entries(log, "retry", "policy:doomed")) == 2

        # the kill switch: a new failure is not retried while paused
        paused = subprocess.run([sys.executable, "-m", "lazycelery", "policies", "pause",
                                 "--for", "10m"], cwd=ROOT, env=env, capture_output=True,
                                text=True, timeout=60)
        assert paused.returncode == 0 and "paused by" in paused.stdout, paused.stderr
        skipped = str(app.send_task("workerapp.always_fail", args=("paused",)).id)
        wait_for(lambda: f"due retries are skipped (first: {skipped}" in err.read_text(),
                 timeout=60, what="the paused recorder to skip the retry")
        assert not [e for e in policy_entries(log, "policy-retry", "policy:doomed")
                    if e.result["origin"] == skipped]
        listing = subprocess.run([sys.executable, "-m", "lazycelery", "policies"], cwd=ROOT,
                                 env=env, capture_output=True, text=True, timeout=60)
        assert "paused by" in listing.stdout and "retry doomed:" in listing.stdout
        assert any(e.action == "policies-pause" for e in audit.read(log))
    finally:
        if recorder.poll() is None:
            recorder.terminate()
            try:
                recorder.wait(30)
            except subprocess.TimeoutExpired:
                recorder.kill()
                recorder.wait(10)
    text = err.read_text()
    assert "Traceback" not in text, text
    assert audit.verify(log).ok


def test_record_requeues_dead_letters_once_their_queue_is_consumed_again(
        redis_url: str, celery_worker_factory: Callable[..., WorkerProcess],
        tmp_path: Path) -> None:
    """Redis, the application's `<queue>.dlq` convention: while nobody consumes the queue the
    rule waits (and says so once); when a worker consumes it, the dead letters go back and the
    worker runs them; audited as the rule."""
    queue = f"work-{uuid.uuid4().hex[:8]}"
    config = tmp_path / "config.toml"
    config.write_text(f"""
[queues]
dead_letter = "{{queue}}.dlq"

[[policies.requeue]]
name = "back"
queue = "{queue}.dlq"
every = "1s"
""")
    log = tmp_path / "audit.log"
    env = dict(os.environ, LAZYCELERY_CONFIG=str(config), LAZYCELERY_AUDIT_LOG=str(log),
               LAZYCELERY_POLICIES_STATE=str(tmp_path / "policies.json"))
    env.pop("LAZYCELERY_STORE", None)
    from celery import Celery

    client = Celery("lc-requeue", broker=redis_url, backend=redis_url, set_as_current=False)
    dead = [client.send_task("workerapp.add", args=(i, 1), queue=f"{queue}.dlq").id
            for i in range(3)]
    client.send_task("workerapp.add", args=(0, 0), queue=queue)  # the queue itself is known
    err = tmp_path / "record.stderr"
    with err.open("wb") as out:
        recorder = subprocess.Popen(
            [sys.executable, "-m", "lazycelery", "record", "--broker", redis_url,
             "--store", f"sqlite:///{tmp_path / 'h.sqlite3'}", "--status-every", "0"],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=out,
            start_new_session=True)
    try:
        wait_for(lambda: f"back: waiting: 3 in {queue}.dlq, but {queue} has 0 consumers"
                 in err.read_text(), timeout=60, what="the rule to wait for a consumer")
        celery_worker_factory(redis_url, backend=redis_url, queue=queue)
        wait_for(lambda: f"back: {queue}.dlq -> {queue}: 3 requeued" in err.read_text(),
                 timeout=60, what="the dead letters to be requeued")
        wait_for(lambda: all(client.AsyncResult(i).state == "SUCCESS" for i in dead),
                 timeout=60, what="the worker to run them")
        assert [client.AsyncResult(i).get(timeout=10) for i in dead] == [1, 2, 3]
        (entry,) = [e for e in audit.read(log) if e.action == "requeue-dead"]
        assert entry.user.startswith("policy:back") and entry.result["count"] == 3
    finally:
        client.close()
        if recorder.poll() is None:
            recorder.terminate()
            try:
                recorder.wait(30)
            except subprocess.TimeoutExpired:
                recorder.kill()
                recorder.wait(10)
    assert "Traceback" not in err.read_text()
