"""The timeline against a real prefork worker on a real Redis: tasks sent to it come back as
bars in the lane of the worker process that ran them (hostname and the pid its events carry),
timed by its own events, failures coloured as failures, a running task drawn until now; per
queue they share the worker's queue lane (screen model level: the model the pane draws)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from conftest import WorkerProcess, wait_for
from lazycelery.core.index import TaskIndex
from lazycelery.core.ingest import Ingestor
from lazycelery.core.timeline import BY_QUEUE, View, render_row
from lazycelery.tui.screen.model import ScreenModel

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture
def worker(redis_url: str, celery_worker_factory: Callable[..., WorkerProcess]) -> WorkerProcess:
    return celery_worker_factory(redis_url, concurrency=2)


@pytest.fixture
def screen(worker: WorkerProcess) -> Iterator[ScreenModel]:
    index = TaskIndex()
    model = ScreenModel(index)
    ingestor = Ingestor(worker.broker, index, on_batch=model.feed.push)
    model.attach(ingestor)
    ingestor.start()
    try:
        yield model
    finally:
        ingestor.stop(timeout=5.0)


@pytest.fixture
def client(worker: WorkerProcess) -> Iterator[Any]:
    app = worker.app()
    yield app
    app.close()


def test_real_tasks_are_bars_in_their_worker_process_lane(
        worker: WorkerProcess, client: Any, screen: ScreenModel) -> None:
    wait_for(lambda: screen.ingest_status is not None and
             screen.ingest_status.state == "connected", timeout=60, what="ingest to connect")
    ok = [client.send_task("workerapp.sleepy", (0.3,), queue=worker.queue) for _ in range(4)]
    bad = client.send_task("workerapp.always_fail", queue=worker.queue)
    running = client.send_task("workerapp.long_running", (30,), queue=worker.queue)
    ids = {r.id for r in ok} | {bad.id}
    timeline = screen.timeline

    def settled() -> bool:
        screen.pull()
        screen.tasks.settle()
        timeline.refresh(force=True)
        finished = all((b := timeline.layout.bar(i)) is not None and b.end is not None
                       for i in ids)
        started = timeline.layout.bar(running.id)
        return finished and started is not None and started.record.started is not None

    wait_for(settled, timeout=60, what="the tasks' bars")
    layout = timeline.layout
    pid = worker.proc.pid  # the worker's main process sends its task events
    assert [lane.key for lane in layout.lanes] == [f"{worker.hostname} [{pid}]"]
    bars = {i: layout.bar(i) for i in ids}
    for r in ok:
        bar = bars[r.id]
        assert bar is not None and bar.state == "SUCCESS" and bar.end is not None
        assert bar.end - bar.start >= 0.25  # it slept 0.3 s, by the worker's own clock
    failed = bars[bad.id]
    assert failed is not None and failed.state == "FAILURE"
    now = time.time()
    live = layout.bar(running.id)
    assert live is not None and live.end is None and live.state == "STARTED"
    # two pool processes: four 0.3 s tasks and a long one overlap in at least two rows
    assert len(layout.rows) >= 2

    timeline.fit()
    drawn = {bar.record.uuid
             for d in range(len(layout.rows))
             for _, _, bar in render_row(layout.row(d), timeline.view, 400, now)}
    assert ids | {running.id} <= drawn
    # the running task reaches now: its bar ends in the column of now
    recent = View(now - 10, 20.0)
    row = layout.row(layout.where[running.id][0])
    (stop,) = [stop for _, stop, bar in render_row(row, recent, 200, now) if bar is live]
    assert stop == pytest.approx(100, abs=1)

    timeline.toggle_grouping()
    assert timeline.grouping == BY_QUEUE
    assert [lane.key for lane in timeline.layout.lanes] == [worker.queue]
    client.control.revoke(running.id, terminate=True, destination=[worker.hostname])
