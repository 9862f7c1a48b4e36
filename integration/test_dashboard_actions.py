"""Operator actions from the dashboard's keys, headless (pipe input) but against a real Redis and a
real `celery worker`: retry a failed task and see the new run succeed, revoke a queued ETA task,
purge a queue (its count shown first, then 0). Every action lands in the audit log."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prompt_toolkit.input import PipeInput, create_pipe_input

from conftest import RedisServer, WorkerProcess, wait_for
from lazycelery.broker import open_inspector
from lazycelery.broker.monitor import QueueMonitor
from lazycelery.config import Settings
from lazycelery.core import audit
from lazycelery.core.index import TaskIndex
from lazycelery.core.ingest import CONNECTED, Ingestor
from lazycelery.core.model import TaskRecord
from lazycelery.tui.app import Dashboard
from lazycelery.tui.run import connect_operator
from lazycelery.tui.screen.sources import DashboardInfo
from tests.tui_harness import SizedOutput, screen_lines

pytestmark = pytest.mark.integration

ESC, TAB, ENTER = "\x1b", "\t", "\r"


def screen_text(d: Dashboard) -> str:
    return "\n".join(screen_lines(d))


@dataclass
class Live:
    d: Dashboard
    inp: PipeInput
    index: TaskIndex
    ingestor: Ingestor
    monitor: QueueMonitor

    async def keys(self, text: str) -> None:
        self.inp.send_text(text)
        await asyncio.sleep(0.1 + (0.1 if ESC in text else 0.0))

    async def until(self, cond: Callable[[], object], timeout: float = 30.0,
                    what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; screen:\n"
                                     f"{screen_text(self.d)}")
            await asyncio.sleep(0.05)

    def messages(self) -> str:
        return "\n".join(f"{m.headline}\n" + "\n".join("".join(t for _, t, *_ in line)
                                                       for line in m.lines)
                         for m in self.d.operator.board.visible())

    async def confirm(self, title: str) -> str:
        """Wait for the dialog, check Cancel is focused, then tab to the action and press it;
        returns what the dialog said."""
        await self.until(lambda: self.d.operator.dialog is not None
                         and self.d.operator.dialog.title == title, what=f"dialog {title!r}")
        dialog = self.d.operator.dialog
        assert dialog is not None and dialog.focus == 0  # Cancel
        assert dialog.title in screen_text(self.d)
        shown = "\n".join("".join(t for _, t, *_ in line) for line in dialog.lines)
        await self.keys(TAB + ENTER)
        await self.until(lambda: self.d.operator.dialog is None, what="the dialog to close")
        return shown

    async def open_task(self, task_id: str) -> None:
        """Select a task with keys: filter on its id."""
        await self.keys("3/\x15id:" + task_id[:13] + ENTER)
        await self.until(lambda: self.d.tasks.selected is not None
                         and self.d.tasks.selected.uuid == task_id, what=f"task {task_id}")


@contextmanager
def live_dashboard(broker: str, backend: str | None, queues: tuple[str, ...] = ()
                   ) -> Iterator[Live]:
    settings = Settings(broker_url=broker, result_backend=backend, env_name="itest",
                        queues=queues)
    index = TaskIndex()
    with create_pipe_input() as inp:
        d = Dashboard(index, info=DashboardInfo(broker=settings.masked_broker(),
                                                env_name="itest"),
                      input=inp, output=SizedOutput(rows=40, columns=140), refresh_interval=None)
        monitor = QueueMonitor(open_inspector(broker, {}, queues), interval=0.5)
        ingestor = Ingestor(broker, index, on_batch=d.on_batch, on_status=d.on_status,
                            wakeup=False)
        d.attach(ingestor, monitor)
        connect_operator(d, settings, monitor)
        assert d.operator.actions is not None and d.operator.queue_ops is not None
        yield Live(d, inp, index, ingestor, monitor)


def drive(live: Live, scenario: Callable[[Live], Any]) -> None:
    async def main() -> None:
        task = asyncio.ensure_future(live.d.app.run_async(pre_run=live.d.start))
        await live.until(lambda: live.d.app.is_running, what="the app")
        try:
            await live.until(lambda: live.ingestor.status.state == CONNECTED, what="events")
            await scenario(live)
        finally:
            if live.d.app.is_running:
                live.d.app.exit(result=0)
            assert await asyncio.wait_for(task, 60) == 0
            live.d.shutdown()

    asyncio.run(main())


@pytest.fixture
def audit_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "audit.log"
    monkeypatch.setenv(audit.AUDIT_ENV, str(path))
    return path


def _child_of(index: TaskIndex, parent: str) -> TaskRecord | None:
    for child in index.children_of(parent):
        rec = index.get(child)
        if rec is not None:
            return rec
    return None


def test_retry_a_failed_task_and_revoke_an_eta_task_with_keys(
    redis_url: str, celery_worker_factory: Callable[..., WorkerProcess], tmp_path: Path,
    audit_log: Path,
) -> None:
    worker = celery_worker_factory(redis_url, backend=redis_url,
                                   env={"LC_STATE_DIR": str(tmp_path)})
    client = worker.app()
    token = uuid.uuid4().hex

    async def scenario(live: Live) -> None:
        d, index = live.d, live.index
        await live.until(lambda: any(w.hostname == worker.hostname and w.status == "online"
                                     for w in d.workers.items), what="the worker's heartbeat")
        first = client.send_task("workerapp.fail_once", args=[token, {"order": 42}],
                                 kwargs={"notify": True})
        await live.until(lambda: getattr(index.get(first.id), "state", None) == "FAILURE",
                         what="the first run to fail")

        # retry: r, the dry run names the real args, Cancel is focused; tab + enter sends it
        await live.open_task(first.id)
        await live.keys("r")
        shown = await live.confirm("Retry 1 task")
        assert "1 task would be retried, 0 refused" in shown
        assert "workerapp.fail_once(" in shown and "args from result backend" in shown
        await live.until(lambda: "retry: 1 of 1 sent" in live.messages(), what="the result")
        await live.until(lambda: getattr(_child_of(index, first.id), "state", None) == "SUCCESS",
                         what="the new run to succeed")
        again = _child_of(index, first.id)
        assert again is not None and again.uuid != first.id
        assert again.result is not None and "'order': 42" in again.result
        assert f"sent as {again.uuid}" in live.messages()
        record = index.get(first.id)
        assert record is not None and record.state == "FAILURE"  # the original stays

        # revoke: an ETA task the worker holds (scheduled)
        eta = client.send_task("workerapp.add", args=[1, 2], countdown=300)
        await live.until(lambda: getattr(index.get(eta.id), "state", None) == "RECEIVED",
                         what="the worker to receive the ETA task")
        await live.keys(ESC)
        await live.open_task(eta.id)
        await live.keys("x")
        shown = await live.confirm("Revoke 1 task")
        assert eta.id in shown and f"at {worker.hostname} (holds it: RECEIVED)" in shown
        await live.until(lambda: "revoke: 1 ok" in live.messages(), what="the revoke reply")
        assert f"{worker.hostname}  ok" in live.messages()
        revoked = client.control.inspect(destination=[worker.hostname], timeout=3.0).revoked()
        assert eta.id in (revoked or {}).get(worker.hostname, [])

    try:
        with live_dashboard(redis_url, redis_url) as live:
            drive(live, scenario)
    finally:
        client.close()
        (tmp_path / f"lc-fail-once-{token}").unlink(missing_ok=True)
    actions = [(e.action, e.environment) for e in audit.read(audit_log)]
    assert actions == [("retry", "itest"), ("revoke", "itest")]


def test_purge_a_queue_shows_the_count_then_zero(redis_url: str, audit_log: Path) -> None:
    from celery import Celery

    queue = f"lc-purge-{uuid.uuid4().hex[:8]}"
    client = Celery("lc-client", broker=redis_url, set_as_current=False)
    try:
        for i in range(7):
            client.send_task("workerapp.add", args=[i, i], queue=queue)

        def depth(live: Live) -> int | None:
            stats = live.monitor.snapshot.get(queue)
            return stats.ready if stats is not None else None

        async def scenario(live: Live) -> None:
            d = live.d
            await live.until(lambda: depth(live) == 7, what="the queue depth")
            await live.keys("2")
            for _ in range(len(d.queues)):
                if d.queues.selected is not None and d.queues.selected.name == queue:
                    break
                await live.keys("j")
            assert d.queues.selected is not None and d.queues.selected.name == queue
            await live.keys("P")
            shown = await live.confirm(f"Purge queue {queue}")
            assert f"7 waiting messages will be deleted from queue '{queue}'" in shown
            await live.until(lambda: "7 messages removed" in live.messages(), what="the purge")
            await live.until(lambda: depth(live) == 0, what="the depth to drop to 0")
            assert f"{queue}" in screen_text(d)

        with live_dashboard(redis_url, None, queues=(queue,)) as live:
            drive(live, scenario)
        wait_for(lambda: audit.read(audit_log), timeout=60, what="the audit line")
        [entry] = audit.read(audit_log)
        assert entry.action == "purge" and entry.targets == [queue]
    finally:
        client.close()


def test_tasks_finished_during_a_broker_restart_are_reconciled_in_the_dashboard(
    redis_url: str, redis_server_factory: Callable[[], RedisServer],
    celery_worker_factory: Callable[..., WorkerProcess],
) -> None:
    broker = redis_server_factory()
    broker_url = f"{broker.url}/0"
    worker = celery_worker_factory(broker_url, backend=redis_url, concurrency=3)
    client = worker.app()

    async def scenario(live: Live) -> None:
        d, index = live.d, live.index
        ids = [client.send_task("workerapp.long_running", args=[3.0]).id for _ in range(3)]
        await live.until(lambda: all(getattr(index.get(i), "state", None) == "STARTED"
                                     for i in ids), what="the tasks to start")
        await live.keys("/state:started" + ENTER)
        await live.until(lambda: len(d.tasks) == 3, what="the filtered list")
        broker.stop()  # the tasks finish while the event stream is down
        backend = client.backend
        await live.until(lambda: all(backend.get_task_meta(i)["status"] == "SUCCESS"
                                     for i in ids), what="the tasks to finish in the gap")
        assert len(d.tasks) == 3  # nothing heard yet: still shown as started
        broker.start()
        await live.until(lambda: "reconciled 3 tasks after a" in live.messages(), timeout=60,
                         what="the reconciliation message")
        assert "STARTED → SUCCESS  (result backend)" in live.messages()
        await live.until(lambda: len(d.tasks) == 0, what="the tasks to leave `state:started`")
        await live.keys(ESC)
        await live.keys("/state:success" + ENTER)
        await live.until(lambda: {r.uuid for r in d.tasks.rows(0, 10)} >= set(ids),
                         what="the tasks to join `state:success`")

    try:
        with live_dashboard(broker_url, redis_url) as live:
            drive(live, scenario)
    finally:
        client.close()


def test_revoked_and_purged_queued_tasks_do_not_stay_pending(
    redis_url: str, celery_worker_factory: Callable[..., WorkerProcess], audit_log: Path,
) -> None:
    from celery import Celery

    worker = celery_worker_factory(redis_url)
    idle = f"lc-idle-{uuid.uuid4().hex[:8]}"  # nobody consumes it: its tasks wait there
    client = Celery("lc-client", broker=redis_url, set_as_current=False)
    client.conf.task_send_sent_event = True  # the dashboard learns of queued tasks

    ids: list[str] = []

    def state(live: Live, task_id: str) -> str | None:
        return getattr(live.index.get(task_id), "state", None)

    async def scenario(live: Live) -> None:
        d = live.d
        await live.until(lambda: any(w.hostname == worker.hostname and w.status == "online"
                                     for w in d.workers.items), what="the worker's heartbeat")
        ids.extend(client.send_task("workerapp.add", args=[i, i], queue=idle).id
                   for i in range(4))
        await live.until(lambda: all(state(live, i) == "PENDING" for i in ids),
                         what="the task-sent events")
        lonely = ids[0]

        # revoke a queued task: no worker holds it, the online workers confirm the revoke
        await live.open_task(lonely)
        await live.keys("x")
        shown = await live.confirm("Revoke 1 task")
        assert "no worker holds it: queued?" in shown
        await live.until(lambda: "revoke: 1 ok" in live.messages(), what="the revoke reply")
        await live.until(lambda: state(live, lonely) == "REVOKED", what="REVOKED in the list")
        record = live.index.get(lonely)
        assert record is not None and f"confirmed by {worker.hostname}" in (record.note or "")

        # purge the queue: its tasks' messages are gone, they are PURGED, not PENDING forever
        await live.keys(ESC + "2")
        for _ in range(len(d.queues)):
            if d.queues.selected is not None and d.queues.selected.name == idle:
                break
            await live.keys("j")
        await live.keys("P")
        await live.confirm(f"Purge queue {idle}")
        await live.until(lambda: "4 messages removed; 3 tasks marked PURGED" in live.messages(),
                         what="the purge result")
        assert [state(live, i) for i in ids] == ["REVOKED", "PURGED", "PURGED", "PURGED"]
        await live.keys("3/\x15state:purged" + ENTER)
        await live.until(lambda: len(d.tasks) == 3, what="3 PURGED tasks in the filtered list")
        assert "PURGED" in screen_text(d)

    try:
        with live_dashboard(redis_url, None, queues=(idle,)) as live:
            drive(live, scenario)
    finally:
        client.close()
    entries = audit.read(audit_log)
    assert [e.action for e in entries] == ["revoke", "purge"]
    assert sorted(entries[1].result["marked"]) == sorted(ids[1:])


@pytest.mark.timeout(180)
def test_peek_choose_and_delete_on_rabbitmq(amqp_url: str, audit_log: Path) -> None:
    """RabbitMQ cannot be peeked without taking messages: the overlay lists the tasks the
    events show waiting in the queue, and the chosen one is deleted from the real queue."""
    from celery import Celery
    from kombu import Connection

    queue = f"lc-peek-{uuid.uuid4().hex[:8]}"
    with Connection(amqp_url) as conn:
        conn.channel().queue_declare(queue=queue, durable=True, auto_delete=False)
    client = Celery("lc-client", broker=amqp_url, set_as_current=False)
    client.conf.task_send_sent_event = True
    sent: list[str] = []
    try:
        def depth(live: Live) -> int | None:
            stats = live.monitor.snapshot.get(queue)
            return stats.ready if stats is not None else None

        async def scenario(live: Live) -> None:
            d = live.d
            for i in range(3):
                sent.append(client.send_task("workerapp.add", args=[i, i], queue=queue).id)
            await live.until(lambda: all((r := live.index.get(t)) is not None and r.sent
                                         for t in sent), what="the task-sent events")
            await live.until(lambda: depth(live) == 3, what="the queue depth")
            await live.keys("2")
            for _ in range(len(d.queues)):
                if d.queues.selected is not None and d.queues.selected.name == queue:
                    break
                await live.keys("j")
            assert d.queues.selected is not None and d.queues.selected.name == queue
            await live.keys("v")
            await live.until(lambda: d.screen.ui.overlay == "peek", what="the peek overlay")
            assert f"{queue}: 3 tasks waiting per the events (RabbitMQ cannot be peeked)" \
                in screen_text(d)
            assert [m.id for m in d.screen.peek.messages] == sent
            await live.keys("j ")  # choose the second
            await live.keys("d")
            shown = await live.confirm(f"Delete from {queue}")
            assert "1 message" in shown
            await live.until(lambda: "delete: 1 deleted" in live.messages(), what="the delete")
            await live.until(lambda: depth(live) == 2, what="the depth to drop to 2")

        with live_dashboard(amqp_url, None, queues=(queue,)) as live:
            drive(live, scenario)
        wait_for(lambda: audit.read(audit_log), timeout=60, what="the audit line")
        [entry] = audit.read(audit_log)
        assert entry.action == "delete" and entry.targets == [queue]
        assert sent[1] in str(entry.result) and sent[0] not in str(entry.result)
        with Connection(amqp_url) as conn:  # the other two are still there, in order
            channel = conn.channel()
            left = [channel.basic_get(queue, no_ack=True) for _ in range(3)]
            assert [m.headers["id"] for m in left if m is not None] == [sent[0], sent[2]]
    finally:
        client.close()
        with Connection(amqp_url) as conn:
            conn.channel().queue_delete(queue=queue)
