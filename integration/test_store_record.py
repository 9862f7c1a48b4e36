"""`lazycelery record` as a real subprocess on a real `celery worker -E` (Redis), into SQLite
and PostgreSQL; then every task is in the store in its true final state (the result backend
says which) and `lazycelery tail --since` prints them back."""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_tail_helpers import TailProcess, assert_no_traceback

from conftest import ROOT, WorkerProcess, wait_for
from lazycelery.store import Store, open_store

pytestmark = pytest.mark.integration

Factory = Callable[..., WorkerProcess]


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'history.sqlite3'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


class RecordProcess:
    """``lazycelery record`` with stderr in a file (read after it stops)."""

    def __init__(self, broker: str, store: str, tmp_path: Path, *args: str,
                 name: str = "record") -> None:
        self.err_path = tmp_path / f"{name}.stderr"
        env = dict(os.environ)
        env.pop("LAZYCELERY_STORE", None)
        with self.err_path.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "lazycelery", "record", "--broker", broker,
                 "--store", store, "--status-every", "0", *args],
                cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=err, start_new_session=True)

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def terminate(self, timeout: float = 30.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def _send_until_recorded(app: Any, reader: Store) -> str:
    """Redis PUB/SUB keeps nothing for a subscriber that is not there yet: send probes until
    one is in the store (the recorder is then subscribed and writing)."""
    sent: list[str] = []

    def recorded() -> str | None:
        sent.append(str(app.send_task("workerapp.add", args=(0, 0)).id))
        found = reader.fetch_tasks(sent)
        return next((u for u, (rec, _) in found.items() if rec.state == "SUCCESS"), None)

    found: str = wait_for(recorded, timeout=60, interval=1.0, what="a probe task in the store")
    return found


def _scenario(app: Any) -> dict[str, list[str]]:
    ids: dict[str, list[str]] = {
        "add": [str(app.send_task("workerapp.add", args=(i, i)).id) for i in range(30)],
        "fail": [str(app.send_task("workerapp.always_fail", args=(f"p{i}",)).id) for i in range(4)],
        "flaky": [str(app.send_task("workerapp.flaky", args=(i,), kwargs={"fail_for": 1}).id)
                  for i in range(4)],
        "echo": [str(app.send_task("workerapp.echo", args=(1, "two"), kwargs={"k": [3]}).id)],
    }
    return ids


def _assert_matches_backend(rec: Any, meta: dict[str, Any]) -> None:
    assert rec.state == meta["status"], (rec.uuid, rec.state, meta["status"])
    assert rec.name == meta["name"] and rec.worker == meta["worker"]
    assert rec.retries == meta["retries"]
    if meta["status"] == "SUCCESS":
        assert rec.result is not None and ast.literal_eval(rec.result) == meta["result"]
        assert rec.args is not None and ast.literal_eval(rec.args) == tuple(meta["args"])
    else:
        assert rec.exception == repr(meta["result"])  # the worker's exception, as celery shows it
        assert rec.traceback and "ValueError" in rec.traceback


def test_record_keeps_every_task_in_its_final_state_and_tail_since_prints_them(
        redis_url: str, store_url: str, celery_worker_factory: Factory,
        tmp_path: Path) -> None:
    worker = celery_worker_factory(redis_url, backend=redis_url, concurrency=2)
    app = worker.app()
    recorder = RecordProcess(redis_url, store_url, tmp_path)
    reader: Store | None = None
    tail: TailProcess | None = None
    try:
        reader = wait_for(lambda: _try_open(store_url), timeout=60, what="the store")
        probe = _send_until_recorded(app, reader)
        ids = _scenario(app)
        every = [probe, *(i for group in ids.values() for i in group)]
        backend = app.backend
        metas: dict[str, dict[str, Any]] = wait_for(
            lambda: _final_metas(backend, every), timeout=90, what="every task to finish")
        # the events trail the results: wait until the recorder has written the last ones
        wait_for(lambda: all(rec.state == metas[u]["status"] for u, (rec, _) in
                             reader.fetch_tasks(every).items()) and
                 len(reader.fetch_tasks(every)) == len(every),
                 timeout=60, what="every final state in the store")
        assert recorder.terminate() == 0
        err = recorder.stderr()
        assert_no_traceback(err)
        assert err.splitlines()[-1].startswith("lazycelery: stopped: ")
        assert ", 0 lost" in err.splitlines()[-1]

        stored = reader.fetch_tasks(every)
        # the probe's first events may predate the subscription: only its state is certain
        assert stored[probe][0].state == "SUCCESS"
        for uuid in every[1:]:
            rec, backfilled = stored[uuid]
            assert not backfilled
            _assert_matches_backend(rec, metas[uuid])
        for uuid in ids["flaky"]:
            kinds = [t.type for t in reader.transitions_of(uuid)]
            assert kinds.count("task-retried") == 1 and kinds.count("task-started") == 2
        # queue depths, sampled when the recorder started and every 10 s
        sampled = reader.query("SELECT DISTINCT queue FROM queue_samples WHERE priority IS NULL")
        assert (worker.queue,) in [tuple(row) for row in sampled]

        tail = TailProcess(redis_url, "--json", "--since", "1h", "--store", store_url,
                           "--timeout", "3")
        assert tail.wait_exit(60) == 0
        assert_no_traceback(tail.stderr())
        docs = [d for d in tail.docs() if d.get("history") is True]
        assert len(docs) == reader.count("transitions")  # every stored event, probes included
        last: dict[str, dict[str, Any]] = {}
        for doc in docs:
            if doc["uuid"] in stored:
                last[doc["uuid"]] = doc
        assert set(last) == set(every)
        for uuid in every:
            assert last[uuid]["state"] == metas[uuid]["status"], last[uuid]
        failed = next(d for d in docs if d["uuid"] == ids["fail"][0] and d["type"] == "task-failed")
        assert failed["name"] == "workerapp.always_fail" and "bad payload" in failed["exception"]
        assert json.loads(json.dumps(failed)) == failed
    finally:
        recorder.close()
        if tail is not None:
            tail.close()
        if reader is not None:
            reader.close()
        app.close()


def _try_open(url: str) -> Store | None:
    from lazycelery.store import StoreError

    try:
        return open_store(url, create=False, writer=False)
    except StoreError:
        return None  # the recorder has not created it yet


def _final_metas(backend: Any, ids: list[str]) -> dict[str, dict[str, Any]] | None:
    metas = {i: backend.get_task_meta(i) for i in ids}
    if all(m["status"] in ("SUCCESS", "FAILURE") for m in metas.values()):
        return metas
    return None


def _wait_recorded(reader: Store, ids: list[str], metas: dict[str, dict[str, Any]]) -> None:
    def done() -> bool:
        found = reader.fetch_tasks(ids)
        return len(found) == len(ids) and all(
            rec.state == metas[u]["status"] for u, (rec, _) in found.items())

    wait_for(done, timeout=60, what="the tasks' final states in the store")


def test_a_recorder_killed_and_restarted_ends_with_every_task_in_its_final_state(
        redis_url: str, store_url: str, celery_worker_factory: Factory,
        tmp_path: Path) -> None:
    """kill -9 mid-workload; the tasks that finished while no recorder ran are backfilled from
    the result backend at restart, and the gap is recorded with its cause."""
    worker = celery_worker_factory(redis_url, backend=redis_url, concurrency=2)
    app = worker.app()
    backend = app.backend
    first = RecordProcess(redis_url, store_url, tmp_path, "--result-backend", redis_url,
                          name="first")
    second: RecordProcess | None = None
    reader: Store | None = None
    try:
        reader = wait_for(lambda: _try_open(store_url), timeout=60, what="the store")
        _send_until_recorded(app, reader)
        before = [str(app.send_task("workerapp.add", args=(i, 1)).id) for i in range(20)]
        metas = wait_for(lambda: _final_metas(backend, before), timeout=60, what="batch 1")
        _wait_recorded(reader, before, metas)
        # in flight at the kill: received (maybe started) by the worker, finished in the gap
        crossing = [str(app.send_task("workerapp.sleepy", args=(1.5,)).id) for _ in range(2)]
        wait_for(lambda: len(reader.fetch_tasks(crossing)) == 2, timeout=60,
                 what="the sleepy tasks in the store")
        first.proc.kill()  # SIGKILL: no flush, no clean stop
        first.proc.wait(10)
        during = [str(app.send_task("workerapp.add", args=(i, 2)).id) for i in range(20)]
        during += [str(app.send_task("workerapp.always_fail", args=(f"gap{i}",)).id)
                   for i in range(2)]
        metas.update(wait_for(lambda: _final_metas(backend, during + crossing), timeout=60,
                              what="the tasks sent while no recorder ran"))

        second = RecordProcess(redis_url, store_url, tmp_path, "--result-backend", redis_url,
                               name="second")
        wait_for(lambda: "backfill: " in second.stderr(), timeout=60, what="the backfill line")
        after = [str(app.send_task("workerapp.add", args=(i, 3)).id) for i in range(10)]
        metas.update(wait_for(lambda: _final_metas(backend, after), timeout=60, what="batch 3"))
        everything = before + crossing + during + after
        _wait_recorded(reader, everything, metas)
        assert second.terminate() == 0
        err = second.stderr()
        assert_no_traceback(err)
        assert "ended without stopping: killed?" in err

        stored = reader.fetch_tasks(everything)
        for uuid in everything:
            rec, backfilled = stored[uuid]
            _assert_matches_backend(rec, metas[uuid])
            if uuid in during:
                assert backfilled, uuid
                assert [t.type for t in reader.transitions_of(uuid)] == [
                    "task-succeeded" if metas[uuid]["status"] == "SUCCESS" else "task-failed"]
            elif uuid in before or uuid in after:
                assert not backfilled, uuid
        gaps = [g for g in reader.gaps() if g.source == "recorder"]
        assert len(gaps) == 1 and "killed?" in gaps[0].cause
        assert gaps[0].backfilled_tasks is not None and gaps[0].backfilled_tasks >= len(during)
    finally:
        for process in (first, second):
            if process is not None:
                process.close()
        if reader is not None:
            reader.close()
        app.close()
