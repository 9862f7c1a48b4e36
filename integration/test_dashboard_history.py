"""History in the dashboard and in `tail --since`, on real parts: a real `celery worker -E`
(Redis), a real `lazycelery record` into SQLite and PostgreSQL, the headless dashboard with the
real ingest thread, and `lazycelery tail --since` switching from history to live while a
producer keeps sending tasks."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_dashboard_pty import pexpect, terminal
from test_store_record import RecordProcess, _final_metas, _send_until_recorded, _try_open
from test_tail_helpers import TailProcess, assert_no_traceback

from conftest import WorkerProcess, wait_for
from lazycelery.store import Store
from tests.tui_harness import DashboardHarness, SizedOutput, drive, screen_lines

pytestmark = pytest.mark.integration
__all__ = ["terminal"]  # the pseudo-terminal fixture of test_dashboard_pty

Factory = Callable[..., WorkerProcess]


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'history.sqlite3'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def _recorded_final(reader: Store, ids: list[str], metas: dict[str, dict[str, Any]]) -> bool:
    found = reader.fetch_tasks(ids)
    return len(found) == len(ids) and all(rec.state == metas[u]["status"]
                                          for u, (rec, _) in found.items())


def test_evicted_tasks_open_from_the_store_in_the_dashboard(
        redis_url: str, store_url: str, celery_worker_factory: Factory,
        tmp_path: Path) -> None:
    from prompt_toolkit.input import create_pipe_input

    from lazycelery.core.index import FROM_HISTORY, TaskIndex
    from lazycelery.core.ingest import Ingestor
    from lazycelery.tui.app import Dashboard
    from lazycelery.tui.screen.history import HistorySource
    from lazycelery.tui.screen.sources import DashboardInfo

    worker = celery_worker_factory(redis_url, backend=redis_url, concurrency=2)
    app = worker.app()
    recorder = RecordProcess(redis_url, store_url, tmp_path)
    reader: Store | None = None
    try:
        reader = wait_for(lambda: _try_open(store_url), timeout=60, what="the store")
        _send_until_recorded(app, reader)
        ids = [str(app.send_task("workerapp.add", args=(i, i)).id) for i in range(12)]
        ids += [str(app.send_task("workerapp.always_fail", args=(f"p{i}",)).id) for i in range(3)]
        metas: dict[str, dict[str, Any]] = wait_for(
            lambda: _final_metas(app.backend, ids), timeout=90, what="every task to finish")
        wait_for(lambda: _recorded_final(reader, ids, metas), timeout=60,
                 what="every final state in the store")

        index = TaskIndex(max_tasks=5)  # most of the recorded tasks cannot be in memory
        history = HistorySource(store_url, index)
        with create_pipe_input() as inp:
            d = Dashboard(index, info=DashboardInfo(broker=redis_url), input=inp,
                          output=SizedOutput(40, 160), refresh_interval=None, history=history)
            ingestor = Ingestor(redis_url, index, on_batch=d.on_batch, on_status=d.on_status,
                                wakeup=False)
            d.attach(ingestor)
            h = DashboardHarness(d, inp)

            async def scenario(h: DashboardHarness) -> None:
                await h.until(lambda: history.state == "on" and len(d.tasks) == 5, 30)
                assert all(index.mark(r.uuid) & FROM_HISTORY for r in index.snapshot())
                assert "history: 5 tasks" in "\n".join(screen_lines(d))
                # live tasks come in on top and push the history records out
                await h.until(lambda: ingestor.status.state == "connected", 30)
                live: list[str] = []

                def live_done() -> bool:
                    live.append(str(app.send_task("workerapp.add", args=(7, 7)).id))
                    return sum(1 for u in live if (r := index.get(u)) is not None
                               and r.state == "SUCCESS") >= 3
                while not live_done():  # PUB/SUB: the first may predate the subscription
                    await asyncio.sleep(0.5)
                await h.until(lambda: d.tasks.row(0).uuid in live)
                evicted = [u for u in ids if index.get(u) is None]
                assert len(evicted) >= 12
                # a task memory does not hold opens from the store, as recorded
                target = next(u for u in evicted if metas[u]["status"] == "FAILURE")
                assert d.screen.open_from_history(target)
                await h.until(lambda: d.detail.record is not None
                              and d.detail.record.uuid == target
                              and d.detail.record.name == "workerapp.always_fail", 30)
                rec = d.detail.record
                assert rec.state == "FAILURE" and "bad payload" in (rec.exception or "")
                screen_lines(d)  # a render builds the detail lines
                detail = "\n".join(line.text for line in d.detail.current)
                assert "from history" in detail and "Traceback" in detail
                h.inp.send_text("\x1b")
                await h.until(lambda: not d.ui.detail_stack)
                # since: reaches past memory: every recorded task is listed, in its state
                d.ui.pane = "tasks"
                d.screen.apply_filter("since:1h")
                await h.until(lambda: d.screen.history_query.startswith("+"), 30)
                shown = {d.tasks.row(i).uuid: d.tasks.row(i) for i in range(len(d.tasks))}
                assert set(ids) <= set(shown)
                for uuid in ids:
                    assert shown[uuid].state == metas[uuid]["status"], uuid
                assert d.tasks.history_count >= len(evicted)
                assert "from history" in "\n".join(screen_lines(d))

            drive(h, scenario)
        assert recorder.terminate() == 0
        assert_no_traceback(recorder.stderr())
    finally:
        recorder.close()
        if reader is not None:
            reader.close()
        app.close()


def test_tail_since_switches_to_live_with_nothing_lost_or_twice(
        redis_url: str, celery_worker_factory: Factory, tmp_path: Path) -> None:
    """A producer sends tasks all along; tail starts in the middle. Every event the recorder
    stored is printed exactly once (from history before the switch, live after)."""
    store_url = f"sqlite:///{tmp_path / 'history.sqlite3'}"
    worker = celery_worker_factory(redis_url, backend=redis_url, concurrency=2)
    app = worker.app()
    recorder = RecordProcess(redis_url, store_url, tmp_path)
    reader: Store | None = None
    tail: TailProcess | None = None
    stop = threading.Event()
    sent: list[str] = []

    def produce() -> None:
        while not stop.wait(0.02):  # a steady workload, ~50 tasks/s
            sent.append(str(app.send_task("workerapp.add", args=(1, 2)).id))

    producer = threading.Thread(target=produce, daemon=True)
    try:
        reader = wait_for(lambda: _try_open(store_url), timeout=60, what="the store")
        _send_until_recorded(app, reader)
        producer.start()
        wait_for(lambda: len(reader.fetch_tasks(sent[:50])) >= 50, timeout=60,
                 what="the first produced tasks in the store")
        tail = TailProcess(redis_url, "--json", "--since", "1h", "--store", store_url)
        live_lines = tail.wait_until(
            lambda: [d for d in tail.docs() if "history" not in d][50:], timeout=60,
            what="live lines after the switch")
        assert live_lines
        stop.set()
        producer.join(10)
        metas = wait_for(lambda: _final_metas(app.backend, list(sent)), timeout=90,
                         what="every produced task to finish")
        wait_for(lambda: _recorded_final(reader, list(sent), metas), timeout=60,
                 what="every produced task in the store")
        last = sent[-1]
        tail.wait_until(lambda: any(d["uuid"] == last and d["type"] == "task-succeeded"
                                    for d in tail.docs() if "uuid" in d), timeout=30,
                        what="the last task's success in tail")
        stored = {(str(u), str(t), float(at)) for u, t, at in
                  reader.query("SELECT uuid, type, time FROM transitions")}
        wait_for(lambda: len([d for d in tail.docs() if d["type"].startswith("task-")])
                 >= len(stored), timeout=60, what="tail to print every stored event")
        docs = [d for d in tail.docs() if d["type"].startswith("task-")]
        keys = [(d["uuid"], d["type"], d["timestamp"]) for d in docs]
        assert len(keys) == len(set(keys)), "an event printed twice across the switch"
        assert set(keys) == stored, (
            f"missing from tail: {sorted(stored - set(keys))[:5]}, "
            f"not in the store: {sorted(set(keys) - stored)[:5]}")
        history = [d for d in docs if d.get("history")]
        live = [d for d in docs if not d.get("history")]
        assert len(history) > 100 and len(live) > 50
        # each produced task is complete, its lines from either side of the switch
        by_task: dict[str, set[str]] = {}
        for d in docs:
            by_task.setdefault(d["uuid"], set()).add(d["type"])
        for uuid in sent:
            assert {"task-sent", "task-received", "task-started", "task-succeeded"} <= \
                by_task[uuid], uuid
        assert_no_traceback(tail.stderr())
    finally:
        stop.set()
        recorder.close()
        if tail is not None:
            tail.close()
        if reader is not None:
            reader.close()
        app.close()


def test_lazycelery_store_in_a_real_terminal(
        redis_url: str, celery_worker_factory: Factory, terminal: Callable[..., Any],
        tmp_path: Path) -> None:
    """The real `lazycelery --store URL --max-tasks 5` in a pseudo-terminal: it opens with the
    recorded tasks marked H, `since:` lists the rest from the store; an unreachable store
    leaves the live view working and says why in the header."""
    store_url = f"sqlite:///{tmp_path / 'history.sqlite3'}"
    worker = celery_worker_factory(redis_url, backend=redis_url, concurrency=2)
    app = worker.app()
    recorder = RecordProcess(redis_url, store_url, tmp_path)
    reader: Store | None = None
    try:
        reader = wait_for(lambda: _try_open(store_url), timeout=60, what="the store")
        _send_until_recorded(app, reader)
        ids = [str(app.send_task("workerapp.add", args=(i, 1000)).id) for i in range(12)]
        metas = wait_for(lambda: _final_metas(app.backend, ids), timeout=90,
                         what="every task to finish")
        wait_for(lambda: _recorded_final(reader, ids, metas), timeout=60,
                 what="every task in the store")
        assert recorder.terminate() == 0

        term = terminal("--broker", redis_url, "--store", store_url, "--max-tasks", "5")
        screen = term.wait_for(lambda s: "history: 5 tasks" in s and "H " in s, 60,
                               "the tasks from history")
        assert "● connected" in screen or "connecting" in screen
        term.press("/since:1h\r")
        screen = term.wait_for(lambda s: re.search(r"\+\d+ from history", s) is not None, 60,
                               "the range read from the store")
        found = int(re.search(r"\+(\d+) from history", screen).group(1))  # type: ignore[union-attr]
        assert found >= len(ids) - 5
        term.press("q")
        term.child.expect(pexpect.EOF, timeout=60)

        down = terminal("--broker", redis_url, "--store",
                        "postgresql://lc:s3cret@127.0.0.1:1/nowhere")
        screen = down.wait_for(lambda s: "history off" in s, 60, "the history-off line")
        assert "postgresql://lc:********@127.0.0.1:1/nowhere" in screen
        assert "s3cret" not in screen
        down.wait_for(lambda s: "● connected" in s, 60, "the live stream")

        def live_task_shown() -> bool:  # PUB/SUB: a task sent before the subscription is lost
            app.send_task("workerapp.add", args=(1, 1))
            try:
                down.wait_for(lambda s: "workerapp.add" in s, 2, "a live task")
            except AssertionError:
                return False
            return True

        wait_for(live_task_shown, timeout=60, interval=0, what="a live task despite the store")
        down.press("q")
        down.child.expect(pexpect.EOF, timeout=60)
    finally:
        recorder.close()
        if reader is not None:
            reader.close()
        app.close()
