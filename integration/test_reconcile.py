"""Reconciliation with real workers: tasks that finished while we were not listening."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from conftest import RedisServer, WorkerProcess, wait_for
from lazycelery.config import Settings
from lazycelery.core.index import TaskIndex
from lazycelery.core.ingest import CONNECTED, Ingestor, IngestStatus
from lazycelery.core.reconcile import Reconciler, ReconcileReport

pytestmark = pytest.mark.integration


def states(index: TaskIndex, ids: list[str]) -> list[str | None]:
    return [getattr(index.get(i), "state", None) for i in ids]


def test_tasks_that_finished_while_we_ignored_events_are_corrected(
    redis_url: str, celery_worker_factory: Callable[..., WorkerProcess]
) -> None:
    worker = celery_worker_factory(redis_url, backend=redis_url, concurrency=4)
    client = worker.app()
    index = TaskIndex()
    ingestor = Ingestor(redis_url, index, mode="auto")
    ingestor.start()
    try:
        wait_for(lambda: ingestor.status.state == CONNECTED, timeout=60, what="the ingestor")
        short = [client.send_task("workerapp.long_running", args=[2.0]).id for _ in range(2)]
        failing = client.send_task("workerapp.always_fail", args=["x"], countdown=5).id
        still = client.send_task("workerapp.long_running", args=[60]).id
        wait_for(lambda: states(index, [*short, still]) == ["STARTED"] * 3, timeout=60,
                 what="the tasks to start")
        wait_for(lambda: states(index, [failing]) == ["RECEIVED"], timeout=60, what="the ETA task")
        ingestor.stop()  # from here on we hear nothing
        backend = client.backend
        wait_for(lambda: [backend.get_task_meta(i)["status"] for i in [*short, failing]]
                 == ["SUCCESS", "SUCCESS", "FAILURE"], timeout=60, what="the tasks to finish")
        assert states(index, [*short, failing, still]) == ["STARTED", "STARTED", "RECEIVED", "STARTED"]

        app = Settings(broker_url=redis_url, result_backend=redis_url).celery_app()
        report = Reconciler(index, app, timeout=3.0).run()
        assert report.checked == 4 and report.running == 1 and not report.unknown, report
        assert {c.uuid: c.state for c in report.corrected} == {
            short[0]: "SUCCESS", short[1]: "SUCCESS", failing: "FAILURE"}
        assert states(index, [*short, failing, still]) == ["SUCCESS", "SUCCESS", "FAILURE", "STARTED"]
        for task_id in [*short, failing]:
            record = index.get(task_id)
            assert record is not None and record.reconciled
        failed = index.get(failing)
        assert failed is not None and failed.exception == "ValueError(\"bad payload: 'x'\")"
        short_rec = index.get(short[0])
        assert short_rec is not None and short_rec.result == "2.0" and short_rec.succeeded
    finally:
        ingestor.stop()
        client.close()


def test_without_a_backend_vanished_tasks_are_flagged_unknown(
    redis_url: str, celery_worker_factory: Callable[..., WorkerProcess]
) -> None:
    worker = celery_worker_factory(redis_url)
    client = worker.app()
    index = TaskIndex()
    ingestor = Ingestor(redis_url, index, mode="auto")
    ingestor.start()
    try:
        wait_for(lambda: ingestor.status.state == CONNECTED, timeout=60, what="the ingestor")
        done = client.send_task("workerapp.long_running", args=[1.5]).id
        still = client.send_task("workerapp.long_running", args=[60]).id
        wait_for(lambda: states(index, [done, still]) == ["STARTED"] * 2, timeout=60,
                 what="the tasks to start")
        lost_at = time.time()
        ingestor.stop()
        time.sleep(3)  # `done` finishes unheard
        app = Settings(broker_url=redis_url).celery_app()
        report = Reconciler(index, app, timeout=3.0).run(trigger="reconnect", gap=(lost_at, time.time()))
        assert [(c.uuid, c.state, c.unknown_since) for c in report.unknown] == [(done, "STARTED", lost_at)]
        assert report.running == 1 and not report.corrected
        assert "no result backend" in report.unknown[0].source
    finally:
        ingestor.stop()
        client.close()


def test_after_a_broker_restart_tasks_that_finished_in_the_gap_are_finished(
    redis_url: str,
    redis_server_factory: Callable[[], RedisServer],
    celery_worker_factory: Callable[..., WorkerProcess],
) -> None:
    broker = redis_server_factory()
    broker_url = f"{broker.url}/0"
    worker = celery_worker_factory(broker_url, backend=redis_url, concurrency=3)
    client = worker.app()
    index = TaskIndex()
    reports: list[ReconcileReport] = []
    reconciled = threading.Event()

    def on_report(report: ReconcileReport) -> None:
        reports.append(report)
        if report.corrected:
            reconciled.set()

    app = Settings(broker_url=broker_url, result_backend=redis_url).celery_app()
    reconciler = Reconciler(index, app, interval=120, timeout=3.0, on_report=on_report)
    statuses: list[IngestStatus] = []

    def on_status(status: IngestStatus) -> None:
        statuses.append(status)
        reconciler.on_ingest_status(status)

    ingestor = Ingestor(broker_url, index, mode="auto", on_status=on_status)
    reconciler.start()
    ingestor.start()
    try:
        wait_for(lambda: ingestor.status.state == CONNECTED, timeout=60, what="the ingestor")
        ids = [client.send_task("workerapp.long_running", args=[3.0]).id for _ in range(3)]
        wait_for(lambda: states(index, ids) == ["STARTED"] * 3, timeout=60, what="the tasks to start")
        broker.stop()  # the tasks finish while the broker, and so the event stream, is down
        backend = client.backend
        wait_for(lambda: all(backend.get_task_meta(i)["status"] == "SUCCESS" for i in ids),
                 timeout=60, what="the tasks to finish during the gap")
        assert states(index, ids) == ["STARTED"] * 3
        broker.start()
        assert reconciled.wait(60), (reports, statuses[-3:])
        assert states(index, ids) == ["SUCCESS"] * 3
        gap = ingestor.status.gap
        assert gap is not None and reports[0].trigger == "reconnect"
        assert {c.uuid for r in reports for c in r.corrected} == set(ids)
    finally:
        ingestor.stop()
        reconciler.stop()
        client.close()


def test_a_task_first_seen_without_a_name_is_named_from_the_backend(
    redis_url: str, celery_worker_factory: Callable[..., WorkerProcess]
) -> None:
    # The task starts before we listen: all we hear is its task-succeeded (no name), the same
    # as a running task that a burst evicted and the index forgot.
    worker = celery_worker_factory(redis_url, backend=redis_url)
    client = worker.app()
    index = TaskIndex()
    ingestor = Ingestor(redis_url, index, mode="auto")
    app = Settings(broker_url=redis_url, result_backend=redis_url).celery_app()
    reconciler = Reconciler(index, app, interval=120, timeout=3.0)
    try:
        task = client.send_task("workerapp.long_running", args=[4.0])
        wait_for(lambda: _active(client, worker, task.id), timeout=60, what="the task to start")
        ingestor.start()
        reconciler.start()
        wait_for(lambda: ingestor.status.state == CONNECTED, timeout=60, what="the ingestor")
        # The worker publishes task-started from its event loop, which on a busy machine can
        # come after `inspect active` already lists the task: we may hear it. It carries no
        # name either (only uuid, hostname, pid), so the task is still first seen unnamed.
        first = index.get(task.id)
        assert first is None or first.name is None
        wait_for(lambda: states(index, [task.id]) == ["SUCCESS"], timeout=60,
                 what="its task-succeeded")
        wait_for(lambda: getattr(index.get(task.id), "name", None) == "workerapp.long_running",
                 timeout=60, what="its name from the result backend")
        named = index.get(task.id)
        assert named is not None and named.args == "(4.0,)" and index.by_name == {
            "workerapp.long_running": 1}
    finally:
        ingestor.stop()
        reconciler.stop()
        client.close()


def _active(client: object, worker: WorkerProcess, task_id: str) -> bool:
    replies = client.control.inspect(destination=[worker.hostname],  # type: ignore[attr-defined]
                                     timeout=2.0).active() or {}
    return any(t.get("id") == task_id for tasks in replies.values() for t in tasks or ())
