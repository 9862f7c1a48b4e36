"""Backfill from celery's database result backend: a real worker stores its results with
``db+postgresql+psycopg://`` in a database of its own; a recorder killed with -9 and restarted
fills the gap with a ``date_done`` range query, result_extended fields included."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_store_record import (
    RecordProcess,
    _assert_matches_backend,
    _final_metas,
    _send_until_recorded,
    _try_open,
    _wait_recorded,
)
from test_tail_helpers import assert_no_traceback

from conftest import WorkerProcess, wait_for
from lazycelery.store import Store

pytestmark = pytest.mark.integration

Factory = Callable[..., WorkerProcess]


@pytest.fixture
def db_backend(postgres_url: str) -> str:
    pytest.importorskip("sqlalchemy")
    scheme, rest = postgres_url.split("://", 1)
    return f"db+{scheme}+psycopg://{rest}"


def test_a_gap_is_backfilled_from_the_database_result_backend(
        redis_url: str, db_backend: str, celery_worker_factory: Factory,
        tmp_path: Path) -> None:
    worker = celery_worker_factory(redis_url, backend=db_backend, concurrency=2)
    app = worker.app()
    backend = app.backend
    store = f"sqlite:///{tmp_path / 'history.sqlite3'}"
    args = ("--result-backend", db_backend)
    first = RecordProcess(redis_url, store, tmp_path, *args, name="first")
    second: RecordProcess | None = None
    reader: Store | None = None
    try:
        reader = wait_for(lambda: _try_open(store), timeout=60, what="the store")
        _send_until_recorded(app, reader)
        before = [str(app.send_task("workerapp.add", args=(i, 1)).id) for i in range(10)]
        metas: dict[str, dict[str, Any]] = wait_for(lambda: _final_metas(backend, before),
                                                    timeout=60, what="batch 1")
        _wait_recorded(reader, before, metas)
        first.proc.kill()
        first.proc.wait(10)
        during = [str(app.send_task("workerapp.add", args=(i, 2)).id) for i in range(15)]
        during += [str(app.send_task("workerapp.always_fail", args=(f"gap{i}",)).id)
                   for i in range(3)]
        during += [str(app.send_task("workerapp.flaky", args=(i,), kwargs={"fail_for": 1}).id)
                   for i in range(2)]
        metas.update(wait_for(lambda: _final_metas(backend, during), timeout=60,
                              what="the tasks sent while no recorder ran"))

        second = RecordProcess(redis_url, store, tmp_path, *args, name="second")
        wait_for(lambda: "backfill: " in second.stderr() or second.proc.poll() is not None,
                 timeout=60, what="the backfill line")
        _wait_recorded(reader, before + during, metas)
        assert second.terminate() == 0
        err = second.stderr()
        assert_no_traceback(err)
        assert "backfill off" not in err, err

        stored = reader.fetch_tasks(during)
        for task_id in during:
            rec, backfilled = stored[task_id]
            assert backfilled, task_id
            # result_extended: name, args, worker, retries come from the table too
            _assert_matches_backend(rec, metas[task_id])
            assert rec.queue == worker.queue
        gaps = [g for g in reader.gaps() if g.source == "recorder"]
        assert len(gaps) == 1 and gaps[0].backfilled_tasks is not None
        assert gaps[0].backfilled_tasks >= len(during)
    finally:
        for process in (first, second):
            if process is not None:
                process.close()
        if reader is not None:
            reader.close()
        app.close()


def test_an_unsupported_result_backend_is_said_in_one_line(
        redis_url: str, tmp_path: Path) -> None:
    """``cache+memory://`` cannot be scanned: the recorder says so and goes on recording."""
    store = f"sqlite:///{tmp_path / 'history.sqlite3'}"
    first = RecordProcess(redis_url, store, tmp_path, name="first")
    try:
        wait_for(lambda: "recording " in first.stderr(), timeout=60, what="the first run")
        first.proc.kill()
        first.proc.wait(10)
    finally:
        first.close()
    second = RecordProcess(redis_url, store, tmp_path, "--result-backend", "cache+memory://",
                           name="second")
    try:
        wait_for(lambda: "backfill off: " in second.stderr(), timeout=60, what="the line")
        assert second.terminate() == 0
        err = second.stderr()
        assert_no_traceback(err)
        line = next(x for x in err.splitlines() if "backfill off: " in x)
        assert "backfill not supported for cache+memory" in line, line
    finally:
        second.close()
