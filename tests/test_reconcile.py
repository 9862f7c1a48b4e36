"""Reconciliation without a broker: backend batches, inspect, unknown tasks, triggers, back-off."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from lazycelery.core.index import TaskIndex
from lazycelery.core.model import TaskRecord
from lazycelery.core.reconcile import _UNKNOWN_FIELD, Reconciler, ReconcileReport
from tests.test_actions import FakeApp, FakeControl, ev, heartbeat, new_id, received, store


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def started(index: TaskIndex, host: str, n: int = 1) -> list[str]:
    ids = [new_id() for _ in range(n)]
    index.apply_batch([e for i in ids for e in (received(i, host), ev("task-started", i, host))])
    return ids


def rec(index: TaskIndex, task_id: str) -> TaskRecord:
    found = index.get(task_id)
    assert found is not None
    return found


def test_finished_tasks_are_corrected_from_the_backend_and_stay_corrected() -> None:
    index = TaskIndex()
    app = FakeApp(FakeControl({"w1@h"}), backend="cache+memory://")
    index.apply(heartbeat("w1@h"))
    ok, bad, gone = started(index, "w1@h", 3)
    store(app, ok, "SUCCESS", {"n": 1})
    store(app, bad, "FAILURE", ValueError("boom"))
    store(app, gone, "REVOKED", None)
    report = Reconciler(index, app).run()
    assert report.checked == 3 and len(report.corrected) == 3
    assert {c.uuid: c.state for c in report.corrected} == {ok: "SUCCESS", bad: "FAILURE", gone: "REVOKED"}
    assert rec(index, ok).result == "{'n': 1}" and rec(index, ok).reconciled
    assert rec(index, bad).exception == "ValueError('boom')" and rec(index, bad).traceback
    assert rec(index, gone).revoked is not None
    assert index.by_state == {"SUCCESS": 1, "FAILURE": 1, "REVOKED": 1}
    assert list(index.iter_unfinished()) == []
    # a late event from before the gap must not flip a corrected task back
    index.apply(ev("task-started", ok, "w1@h"))
    index.apply(ev("task-received", bad, "w1@h", retries=0))
    assert rec(index, ok).state == "SUCCESS" and rec(index, bad).state == "FAILURE"
    assert report.corrected[0].to_json()["reconciled"] is True


def test_tasks_held_by_a_worker_are_left_running_or_corrected() -> None:
    index = TaskIndex()
    index.apply(heartbeat("w1@h"))
    [running] = started(index, "w1@h")
    waiting = new_id()
    index.apply(received(waiting, "w1@h"))  # we missed its task-started
    control = FakeControl({"w1@h"}, held={"w1@h": {running: ("active", {}), waiting: ("active", {})}})
    report = Reconciler(index, FakeApp(control)).run()
    assert report.running == 2 and not report.unknown
    assert [(c.uuid, c.old_state, c.state) for c in report.corrected] == [(waiting, "RECEIVED", "STARTED")]
    assert rec(index, waiting).state == "STARTED" and rec(index, running).state == "STARTED"
    # the next real events still apply on top of the correction
    index.apply(ev("task-succeeded", waiting, "w1@h", result="1"))
    assert rec(index, waiting).state == "SUCCESS"
    [(command, call)] = control.calls
    assert command == "inspect.query_task" and call["destination"] == ["w1@h"]


def test_without_a_backend_vanished_tasks_are_unknown_since_the_gap() -> None:
    index = TaskIndex()
    index.apply(heartbeat("w1@h"))
    [lost] = started(index, "w1@h")
    queued = new_id()
    index.apply({"type": "task-sent", "uuid": queued, "name": "t", "timestamp": time.time()})
    reconciler = Reconciler(index, FakeApp(FakeControl({"w1@h"})))
    report = reconciler.run(trigger="reconnect", gap=(100.0, time.time() + 1))
    assert [(c.uuid, c.state, c.unknown_since) for c in report.unknown] == [(lost, "STARTED", 100.0)]
    assert "no result backend" in report.unknown[0].source
    assert rec(index, lost).state == "STARTED" and rec(index, queued).state == "PENDING"
    if _UNKNOWN_FIELD:
        assert getattr(rec(index, lost), "unknown_since", None) == 100.0


def test_nothing_is_called_unknown_when_workers_cannot_be_asked() -> None:
    index = TaskIndex()
    started(index, "w1@h")  # no worker event seen yet
    report = Reconciler(index, FakeApp(FakeControl(set()))).run()
    assert report.checked == 1 and not report.unknown and not report.corrected
    index.apply(heartbeat("w2@h"))
    silent = FakeControl(set())  # w2 is online by heartbeat but does not answer inspect
    report = Reconciler(index, FakeApp(silent)).run()
    assert [c.uuid for c in report.unknown] == [next(iter(index.iter_unfinished())).uuid]


def test_a_task_of_a_silent_worker_is_not_declared_lost() -> None:
    index = TaskIndex()
    index.apply_batch([heartbeat("w1@h"), heartbeat("w2@h")])
    [task] = started(index, "w2@h")
    report = Reconciler(index, FakeApp(FakeControl({"w1@h"}))).run()
    assert not report.unknown and rec(index, task).state == "STARTED"


def test_backend_reads_and_inspect_calls_are_batched(monkeypatch: pytest.MonkeyPatch) -> None:
    index = TaskIndex()
    index.apply(heartbeat("w1@h"))
    ids = started(index, "w1@h", 1200)
    app = FakeApp(FakeControl({"w1@h"}, held={"w1@h": {i: ("active", {}) for i in ids}}),
                  backend="cache+memory://")
    sizes: list[int] = []
    real_mget = app.backend.mget

    def counting_mget(keys: list[str]) -> Any:
        sizes.append(len(keys))
        return real_mget(keys)

    monkeypatch.setattr(app.backend, "mget", counting_mget)
    report = Reconciler(index, app, batch_size=500).run()
    assert sizes == [500, 500, 200]
    assert [len(c[1]["ids"]) for c in app.control.calls] == [1000, 200]
    assert report.running == 1200


def test_periodic_runs_check_only_stale_tasks_and_back_off() -> None:
    clock = Clock()
    index = TaskIndex(clock=clock)
    index.apply(heartbeat("w1@h"))
    [old] = started(index, "w1@h")
    clock.now += 120
    [fresh] = started(index, "w1@h")

    def beat() -> None:
        index.apply(dict(heartbeat("w1@h"), local_received=clock.now))

    beat()
    control = FakeControl({"w1@h"}, held={"w1@h": {old: ("active", {}), fresh: ("active", {})}})
    reconciler = Reconciler(index, FakeApp(control), stale_after=60, clock=clock)
    assert reconciler.run(trigger="periodic", older_than=60).checked == 1
    assert control.calls[-1][1]["ids"] == (old,)
    assert reconciler.run(trigger="periodic", older_than=60).checked == 0  # backing off
    clock.now += 61
    beat()
    assert reconciler.run(trigger="periodic", older_than=60).checked == 2  # fresh is stale now
    clock.now += 61
    beat()
    assert reconciler.run(trigger="periodic", older_than=60).checked == 1  # old waits 120 s now
    assert reconciler.run().checked == 2  # on demand ignores the back-off


def test_an_event_that_finishes_a_task_meanwhile_wins() -> None:
    index = TaskIndex()
    index.apply(heartbeat("w1@h"))
    task = new_id()
    index.apply(received(task, "w1@h"))

    class Racing(FakeControl):
        def inspect(self, destination: list[str] | None = None, timeout: float = 1.0) -> Any:
            index.apply(ev("task-succeeded", task, "w1@h", result="2"))  # arrives while we ask
            return super().inspect(destination, timeout)

    control = Racing({"w1@h"}, held={"w1@h": {task: ("active", {})}})
    report = Reconciler(index, FakeApp(control)).run()
    assert report.corrected == () and rec(index, task).state == "SUCCESS"


def test_a_reconnect_status_triggers_a_run_in_the_background() -> None:
    from lazycelery.core.ingest import Gap, IngestStatus

    index = TaskIndex()
    index.apply(heartbeat("w1@h"))
    [task] = started(index, "w1@h")
    app = FakeApp(FakeControl({"w1@h"}), backend="cache+memory://")
    store(app, task, "SUCCESS", 3)
    reports: list[ReconcileReport] = []
    done = threading.Event()

    def on_report(report: ReconcileReport) -> None:
        reports.append(report)
        done.set()

    reconciler = Reconciler(index, app, interval=60, on_report=on_report)
    reconciler.start()
    try:
        reconciler.on_ingest_status(IngestStatus(state="connecting", path="fast"))
        reconciler.on_ingest_status(IngestStatus(state="connected", path="fast"))
        assert not done.wait(0.3)  # a first connection is no gap
        gap = Gap(start=time.time() - 5, end=time.time(), seconds=5, reason="broker restarted")
        reconciler.on_ingest_status(IngestStatus(state="reconnecting", path="fast", gap=None))
        reconciler.on_ingest_status(IngestStatus(state="connected", path="fast", gap=gap))
        assert done.wait(5)
    finally:
        reconciler.stop()
    [report] = reports
    assert report.trigger == "reconnect" and [c.state for c in report.corrected] == ["SUCCESS"]
    assert "corrected 1" in report.summary()


def test_a_worker_missing_heartbeats_is_still_asked_and_an_offline_one_is_not() -> None:
    clock = Clock()
    index = TaskIndex(clock=clock)
    index.apply_batch([dict(heartbeat("w1@h"), local_received=clock.now),
                       dict(heartbeat("w2@h"), local_received=clock.now)])
    [alive] = started(index, "w1@h")
    [orphan] = started(index, "w2@h")
    index.apply({"type": "worker-offline", "hostname": "w2@h", "local_received": clock.now})
    clock.now += 60  # our stream was down: no heartbeat for a minute, w1 looks lost
    control = FakeControl({"w1@h"}, held={"w1@h": {alive: ("active", {})}})
    report = Reconciler(index, FakeApp(control), clock=clock).run()
    assert control.calls[0][1]["destination"] == ["w1@h"]
    assert report.running == 1 and [c.uuid for c in report.unknown] == [orphan]


def test_tasks_seen_without_a_name_are_named_from_the_backend() -> None:
    # a task that started before we listened (or came back after eviction): its
    # task-succeeded carries no name; the backend's extended meta has it
    index = TaskIndex()
    app = FakeApp(FakeControl({"w1@h"}), backend="cache+memory://")
    named, plain, known = new_id(), new_id(), new_id()
    index.apply(received(known, "w1@h", name="tasks.known"))
    for task_id in (named, plain, known):
        index.apply(ev("task-succeeded", task_id, "w1@h", result="3", runtime=0.1))
    store(app, named, "SUCCESS", 3, name="tasks.add", args=(1, [2]), kwargs={"k": "v"},
          queue="hipri")
    store(app, plain, "SUCCESS", 3, extended=False)  # no result_extended: no name to read
    reports: list[ReconcileReport] = []
    reconciler = Reconciler(index, app, on_report=reports.append)
    report = reconciler.name_unknown()
    assert report is not None and report.checked == 2  # the named one is not asked about
    [correction] = report.corrected
    assert correction.uuid == named and correction.state == correction.old_state == "SUCCESS"
    assert reports == [report]
    got = rec(index, named)
    assert (got.name, got.args, got.kwargs, got.queue) == ("tasks.add", "(1, [2])",
                                                            "{'k': 'v'}", "hipri")
    assert rec(index, plain).name is None
    assert index.by_name == {"tasks.known": 1, "tasks.add": 1}
    assert reconciler.name_unknown() is None  # each id is asked about once
