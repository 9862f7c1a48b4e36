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


#: how long the "short" tasks run: the index must see them STARTED (their events can lag
#: seconds behind on a loaded machine) before they finish, and they must finish in a test
SHORT = 6.0
#: the countdown of the ETA task, seen RECEIVED before it runs
ETA = 12
#: a task started before we listen, whose task-succeeded we must still hear
UNHEARD = 15.0
#: the reconciler's inspect window: with a destination it returns when the worker answers, so
#: this only bounds the wait (a busy worker that answers late is "silent", and proves nothing)
INSPECT = 15.0


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
        # SHORT/ETA leave room for events that lag seconds behind on a loaded machine: the
        # index must show the shorts STARTED and the ETA task RECEIVED before either moves on
        short = [client.send_task("workerapp.long_running", args=[SHORT]).id for _ in range(2)]
        failing = client.send_task("workerapp.always_fail", args=["x"], countdown=ETA).id
        still = client.send_task("workerapp.long_running", args=[60]).id
        wait_for(lambda: states(index, [*short, still]) == ["STARTED"] * 3, timeout=60,
                 what="the tasks to start")
        wait_for(lambda: states(index, [failing]) == ["RECEIVED"], timeout=60, what="the ETA task")
        _wait_worker_seen(index, worker)
        ingestor.stop()  # from here on we hear nothing
        backend = client.backend
        wait_for(lambda: [backend.get_task_meta(i)["status"] for i in [*short, failing]]
                 == ["SUCCESS", "SUCCESS", "FAILURE"], timeout=60, what="the tasks to finish")
        assert states(index, [*short, failing, still]) == ["STARTED", "STARTED", "RECEIVED", "STARTED"]

        app = Settings(broker_url=redis_url, result_backend=redis_url).celery_app()
        report = Reconciler(index, app, timeout=INSPECT).run()
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
        assert short_rec is not None and short_rec.result == str(SHORT) and short_rec.succeeded
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
        done = client.send_task("workerapp.long_running", args=[SHORT]).id
        still = client.send_task("workerapp.long_running", args=[60]).id
        wait_for(lambda: states(index, [done, still]) == ["STARTED"] * 2, timeout=60,
                 what="the tasks to start")
        _wait_worker_seen(index, worker)
        lost_at = time.time()
        ingestor.stop()
        # `done` finishes unheard: observed (the worker no longer has it), not slept for
        wait_for(lambda: _active_ids(client, worker) == {still}, timeout=60,
                 what="`done` to finish while `still` runs")
        app = Settings(broker_url=redis_url).celery_app()
        report = Reconciler(index, app, timeout=INSPECT).run(trigger="reconnect",
                                                             gap=(lost_at, time.time()))
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
    reconciler = Reconciler(index, app, interval=120, timeout=INSPECT, on_report=on_report)
    statuses: list[IngestStatus] = []

    def on_status(status: IngestStatus) -> None:
        statuses.append(status)
        reconciler.on_ingest_status(status)

    ingestor = Ingestor(broker_url, index, mode="auto", on_status=on_status)
    reconciler.start()
    ingestor.start()
    try:
        wait_for(lambda: ingestor.status.state == CONNECTED, timeout=60, what="the ingestor")
        ids = [client.send_task("workerapp.long_running", args=[SHORT]).id for _ in range(3)]
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
    reconciler = Reconciler(index, app, interval=120, timeout=INSPECT)
    try:
        # long enough for the ingestor to connect (seconds on a loaded machine) before the
        # task-succeeded that this test is about is published
        task = client.send_task("workerapp.long_running", args=[UNHEARD])
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
        assert named is not None and named.args == f"({UNHEARD},)" and index.by_name == {
            "workerapp.long_running": 1}
    finally:
        ingestor.stop()
        reconciler.stop()
        client.close()


def _wait_worker_seen(index: TaskIndex, worker: WorkerProcess) -> None:
    """The reconciler asks only workers the index has seen (a heartbeat, which the ingestor's
    wake-up asks for on connect): before one arrives it may call nothing gone or running. On a
    loaded machine that heartbeat can come after the tasks' task-started."""
    wait_for(lambda: worker.hostname in index.workers, timeout=60,
             what="the worker's heartbeat in the index")


def _active_ids(client: object, worker: WorkerProcess) -> set[str] | None:
    """The ids the worker has active, or None when it did not answer in time."""
    replies = client.control.inspect(destination=[worker.hostname],  # type: ignore[attr-defined]
                                     timeout=5.0).active()
    if not replies or worker.hostname not in replies:
        return None
    return {t.get("id") for t in replies[worker.hostname] or ()}


def _active(client: object, worker: WorkerProcess, task_id: str) -> bool:
    replies = client.control.inspect(destination=[worker.hostname],  # type: ignore[attr-defined]
                                     timeout=2.0).active() or {}
    return any(t.get("id") == task_id for tasks in replies.values() for t in tasks or ())
