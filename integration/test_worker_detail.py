"""The worker detail against a real prefork worker on a real Redis and on a real RabbitMQ (its own
vhost): pool size, pids, registered tasks and queues match the worker's own; `lazycelery worker
show` prints them."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import WorkerProcess, wait_for
from lazycelery.cli import main
from lazycelery.core.worker_detail import WorkerNotAnswering, fetch_worker_detail

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture(params=["redis", "amqp"])
def broker_url(request: pytest.FixtureRequest) -> str:
    """Every test runs on both brokers (the amqp fixture skips with its reason without RabbitMQ)."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.fixture
def worker(broker_url: str, celery_worker_factory: Callable[..., WorkerProcess]) -> WorkerProcess:
    return celery_worker_factory(broker_url, concurrency=3)


@pytest.fixture
def client(worker: WorkerProcess) -> Iterator[Any]:
    app = worker.app()
    yield app
    app.close()


def _children(pid: int) -> set[int]:
    """The processes whose parent is ``pid`` (Linux /proc)."""
    out: set[int] = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.add(int(stat.parent.name))
    return out


def _main_pid(worker: WorkerProcess) -> int:
    # the fixture starts `python -m celery ... worker` as the session leader: that is the worker
    return worker.proc.pid


def test_detail_matches_the_real_worker(worker: WorkerProcess, client: Any) -> None:
    detail = fetch_worker_detail(client, worker.hostname, timeout=5.0)
    children = _children(_main_pid(worker))
    assert detail.pid == _main_pid(worker)
    assert detail.pool == "prefork:TaskPool" and detail.pool_size == 3
    assert len(detail.processes) == 3 and set(detail.processes) <= children
    assert [q for q, _, _ in detail.queues] == [worker.queue]
    assert {"workerapp.add", "workerapp.sleepy"} <= set(detail.registered)
    assert detail.utime is not None and detail.maxrss_kib is not None and detail.maxrss_kib > 0
    assert detail.missing == ()


def test_detail_shows_a_running_task_with_its_pool_process(worker: WorkerProcess,
                                                            client: Any) -> None:
    result = client.send_task("workerapp.sleepy", (5,))
    wait_for(lambda: fetch_worker_detail(client, worker.hostname, timeout=5.0).active,
             timeout=60, what="the task to be active")
    detail = fetch_worker_detail(client, worker.hostname, timeout=5.0)
    (task,) = detail.active
    assert task.id == result.id and task.name == "workerapp.sleepy"
    assert task.pid in detail.processes and task.runtime is not None


def test_cli_show_prints_the_same(worker: WorkerProcess, capsys: pytest.CaptureFixture[str]) -> None:
    short = worker.hostname.split("@")[0]
    assert main(["worker", "show", short, "-b", worker.broker, "--json", "--timeout", "5"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["hostname"] == worker.hostname and data["pool_size"] == 3
    assert [q["name"] for q in data["queues"]] == [worker.queue]
    assert main(["worker", "show", worker.hostname, "-b", worker.broker, "--timeout", "5"]) == 0
    out = capsys.readouterr().out
    assert f"  {worker.queue}  exchange {worker.queue}" in out
    assert "workerapp.add" in out and "max rss" in out


def test_a_silent_worker_is_one_line(worker: WorkerProcess, client: Any,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    os.killpg(worker.proc.pid, signal.SIGSTOP)  # alive but not answering
    try:
        with pytest.raises(WorkerNotAnswering, match=r"did not answer inspect stats within 0\.5s"):
            fetch_worker_detail(client, worker.hostname, timeout=0.5)
        assert main(["worker", "show", worker.hostname, "-b", worker.broker,
                     "--timeout", "0.5"]) != 0
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "did not answer" in err
    finally:
        os.killpg(worker.proc.pid, signal.SIGCONT)


def test_dashboard_enter_on_the_worker_shows_its_real_detail(worker: WorkerProcess) -> None:
    """The real dashboard wiring: events from the real worker list it, enter asks it (through
    the settings' app, off the UI thread) and the screen shows its pool processes."""
    import asyncio
    import time

    from prompt_toolkit.input import create_pipe_input

    from lazycelery.broker import open_inspector
    from lazycelery.broker.monitor import QueueMonitor
    from lazycelery.config import Settings
    from lazycelery.core.index import TaskIndex
    from lazycelery.core.ingest import CONNECTED, Ingestor
    from lazycelery.tui.app import Dashboard
    from lazycelery.tui.screen.sources import DashboardInfo
    from tests.tui_harness import SizedOutput, screen_lines

    settings = Settings(broker_url=worker.broker, env_name="itest")
    index = TaskIndex()
    with create_pipe_input() as inp:
        d = Dashboard(index, info=DashboardInfo(broker=settings.masked_broker(), env_name="itest"),
                      input=inp, output=SizedOutput(rows=60, columns=120), settings=settings,
                      refresh_interval=None)
        ingestor = Ingestor(worker.broker, index, on_batch=d.on_batch, on_status=d.on_status,
                            wakeup=False)

        d.attach(ingestor, QueueMonitor(open_inspector(worker.broker, {}, ()), interval=1.0))

        async def until(cond: Callable[[], object], what: str, timeout: float = 30.0) -> None:
            deadline = time.monotonic() + timeout
            while not cond():
                if time.monotonic() > deadline:
                    raise AssertionError(f"timed out waiting for {what}:\n"
                                         + "\n".join(screen_lines(d)))
                await asyncio.sleep(0.05)

        async def main() -> None:
            task = asyncio.ensure_future(d.app.run_async(pre_run=d.start))
            try:
                await until(lambda: d.app.is_running, "the app")
                await until(lambda: ingestor.status.state == CONNECTED, "events")
                await until(lambda: any(w.hostname == worker.hostname for w in d.workers.items),
                            "the worker's heartbeat")
                inp.send_text("1")
                await until(lambda: d.ui.pane == "workers", "the workers pane")
                inp.send_text("\r")
                await until(lambda: d.screen.worker_detail.detail is not None
                            or d.screen.worker_detail.error is not None, "the detail")
                detail = d.screen.worker_detail.detail
                assert detail is not None, d.screen.worker_detail.error
                assert detail.hostname == worker.hostname and detail.pool_size == 3
                assert set(detail.processes) <= _children(worker.proc.pid)
                assert detail.heartbeat_age is not None  # from the worker's real events
                text = "\n".join(screen_lines(d))
                pids = ", ".join(str(p) for p in detail.processes)
                assert f"processes      {pids}" in text and worker.queue in text
            finally:
                if d.app.is_running:
                    d.app.exit(result=0)
                assert await asyncio.wait_for(task, 60) == 0
                d.shutdown()

        asyncio.run(main())
