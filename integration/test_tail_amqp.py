"""`lazycelery tail` as a real subprocess against a real `celery worker -E` on RabbitMQ."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from test_tail_helpers import (
    TailProcess,
    assert_no_traceback,
    finish_filtered,
    probe,
    require_ingest,
    run_scenario,
    send_until,
)

from conftest import WorkerProcess

pytestmark = pytest.mark.integration

Factory = Callable[..., WorkerProcess]


@pytest.fixture(autouse=True)
def _ingest_written() -> None:
    require_ingest()


def test_json_lines_follow_a_real_worker(amqp_url: str, celery_worker_factory: Factory) -> None:
    worker = celery_worker_factory(amqp_url)
    app = worker.app()
    tail = TailProcess(amqp_url, "--json", "--timeout", "60")
    retries = TailProcess(amqp_url, "--json", "--type", "task-retried", "--limit", "1")
    try:
        send_until(tail, probe(app), timeout=90)
        ids = run_scenario(tail, app, worker.hostname)
        assert {d["hostname"] for d in tail.docs() if d["uuid"] in ids.values()} >= {
            worker.hostname}
        finish_filtered([retries], lambda: app.send_task("workerapp.flaky", args=(1,)))
        assert retries.wait_exit() == 0
        (retried,) = retries.docs()
        assert retried["type"] == "task-retried" and retried["name"] == "workerapp.flaky"
        assert retried["exception"].startswith("RuntimeError('transient failure")
        assert tail.interrupt() == 0
        for process in (tail, retries):
            assert_no_traceback(process.stderr())
        assert tail.stderr() == ""
    finally:
        tail.close()
        retries.close()
        app.close()


def test_ctrl_c_exits_0_promptly(amqp_url: str, celery_worker_factory: Factory) -> None:
    """The kombu path (celery's Receiver) stops on SIGINT as promptly and quietly."""
    worker = celery_worker_factory(amqp_url)
    app = worker.app()
    tail = TailProcess(amqp_url, "--json")
    try:
        send_until(tail, probe(app), timeout=90)
        start = time.monotonic()
        assert tail.interrupt() == 0
        assert time.monotonic() - start < 5
        assert_no_traceback(tail.stderr())
        assert tail.stderr() == ""
    finally:
        tail.close()
        app.close()
