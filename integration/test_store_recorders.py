"""Several recorders, one PostgreSQL store (issue 11, "Past one machine"): concurrent merges lose
no update; two real `lazycelery record` processes (Redis: --shard 0/2 and 1/2; RabbitMQ: one
--shared-queue, one recorder on each ingest path) with a real worker running a few hundred
tasks agree task by task with the result backend, also after one of them is killed with -9 and
restarted mid-workload."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_store_record import RecordProcess, _assert_matches_backend, _final_metas, _try_open
from test_tail_helpers import assert_no_traceback

from conftest import WorkerProcess, wait_for
from lazycelery.store import Store, WriteBatch, open_store
from lazycelery.store.schema import MIGRATIONS

pytestmark = pytest.mark.integration

Factory = Callable[..., WorkerProcess]


# --------------------------------------------------------------------------- concurrent merges


def _records(events: list[dict[str, Any]]) -> list[Any]:
    from lazycelery.core.index import TaskIndex

    index = TaskIndex(max_tasks=100_000)
    index.apply_batch(events)
    return [index.get(e["uuid"]) for e in events]


def _event(kind: str, task_id: str, at: float, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "uuid": task_id, "timestamp": at, "local_received": at,
            "hostname": "w1@host", "clock": 1, "pid": 1, "utcoffset": 0, **fields}


def test_two_writers_merging_the_same_tasks_at_once_lose_no_update(postgres_url: str) -> None:
    """One writer has each task's task-received (name, args, worker), the other its
    task-succeeded (result), in the same order, transaction for transaction, at the same time:
    every stored task must hold both halves. A read-merge-write without row locks loses one
    half whenever the two transactions overlap. The first 1,500 tasks are stored before (their
    task-sent): both writers then update existing rows; the others are new to both."""
    now = time.time()
    ids = [str(uuid.uuid4()) for _ in range(3000)]
    sent = _records([_event("task-sent", u, now - 1, name="app.add", args="(1, 2)",
                            kwargs="{}", retries=0, queue="q1") for u in ids[:1500]])
    received = _records([_event("task-received", u, now, name="app.add", args="(1, 2)",
                                kwargs="{}", retries=0) for u in ids])
    succeeded = _records([_event("task-succeeded", u, now + 1, result="3", runtime=0.01)
                          for u in ids])
    stores = [open_store(postgres_url), open_store(postgres_url)]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def write(store: Store, records: list[Any]) -> None:
        try:
            for start in range(0, len(records), 100):
                barrier.wait(30)
                store.write(WriteBatch(tasks=records[start:start + 100]))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=write, args=(store, recs))
               for store, recs in zip(stores, (received, succeeded), strict=True)]
    try:
        stores[0].write(WriteBatch(tasks=sent))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert not errors, errors
        stored = stores[0].fetch_tasks(ids)
        assert len(stored) == len(ids)
        broken = [u for u, (rec, _) in stored.items()
                  if (rec.state, rec.name, rec.args, rec.result) != ("SUCCESS", "app.add",
                                                                     "(1, 2)", "3")
                  or rec.received is None or rec.succeeded is None]
        broken += [u for u in ids[:1500] if stored[u][0].sent is None
                   or stored[u][0].queue != "q1"]
        assert broken == [], f"{len(broken)} tasks lost an update, e.g. {stored[broken[0]]}"
        assert stores[0].count("tasks") == len(ids)
    finally:
        for store in stores:
            store.close()


def test_recorders_starting_at_once_on_a_new_database_all_open_it(postgres_url: str) -> None:
    """Each creates the tables if they are missing: one does, the others wait and find them."""
    barrier = threading.Barrier(4)
    opened: list[Store] = []
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            barrier.wait(30)
            opened.append(open_store(postgres_url))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == [] and len(opened) == 4
        assert [tuple(r) for r in opened[0].query("SELECT version FROM lazycelery_schema")] == [
            (m.version,) for m in MIGRATIONS]
    finally:
        for store in opened:
            store.close()


# --------------------------------------------------------------------------- real recorders


def _workload(app: Any, n: int, tag: str) -> list[str]:
    """``n`` tasks: successes, failures and retried ones (same id, retries 1)."""
    ids = []
    for i in range(n):
        if i % 10 == 3:
            ids.append(str(app.send_task("workerapp.always_fail", args=(f"{tag}{i}",)).id))
        elif i % 10 == 7:
            ids.append(str(app.send_task("workerapp.flaky", args=(i,),
                                         kwargs={"fail_for": 1}).id))
        else:
            ids.append(str(app.send_task("workerapp.add", args=(i, len(tag))).id))
    return ids


def _wait_all(reader: Store, ids: list[str], metas: dict[str, dict[str, Any]],
              timeout: float = 120) -> dict[str, tuple[Any, bool]]:
    def done() -> dict[str, tuple[Any, bool]] | None:
        found = reader.fetch_tasks(ids)
        if len(found) == len(ids) and all(rec.state == metas[u]["status"]
                                          for u, (rec, _) in found.items()):
            return found
        return None

    def missing() -> str:
        found = reader.fetch_tasks(ids)
        wrong = [(u, found[u][0].state if u in found else None, metas[u]["status"])
                 for u in ids if u not in found or found[u][0].state != metas[u]["status"]]
        return f"{len(wrong)} tasks not in their final state, e.g. {wrong[:3]}"

    try:
        result: dict[str, tuple[Any, bool]] = wait_for(done, timeout=timeout,
                                                       what="every task's final state")
    except AssertionError:
        raise AssertionError(missing()) from None
    return result


def _probe_until_recorded(app: Any, reader: Store, sharded: bool) -> None:
    """Pub/sub and fresh queues keep nothing from before a subscription: send probes until
    one is written (sharded: one of each shard, so both recorders read and write)."""
    from lazycelery.store.topology import shard_of

    sent: list[str] = []

    def ready() -> bool:
        sent.extend(str(app.send_task("workerapp.add", args=(0, 0)).id) for _ in range(4))
        done = {u for u, (rec, _) in reader.fetch_tasks(sent).items() if rec.state == "SUCCESS"}
        return {shard_of(u, 2) for u in done} == {0, 1} if sharded else bool(done)

    wait_for(ready, timeout=60, interval=1.0, what="probe tasks in the store")


def _run_two_recorders(app: Any, backend: Any, store_url: str,
                       start: Callable[[str], RecordProcess], names: tuple[str, str],
                       ) -> tuple[Store, list[RecordProcess], list[str],
                                  dict[str, dict[str, Any]], list[str]]:
    """Both recorders, a workload, a kill -9 of the second mid-workload, its restart, more
    workload; returns the reader, the processes, every task id and its result meta, and the
    ids sent while the second was down."""
    procs = [start(names[0]), start(names[1])]
    reader = wait_for(lambda: _try_open(store_url), timeout=60, what="the store")
    _probe_until_recorded(app, reader, names[0].startswith("shard"))
    ids = _workload(app, 150, "a")
    # kill -9 mid-workload: the second recorder dies with events read but not written
    wait_for(lambda: len(reader.fetch_tasks(ids)) >= 30, timeout=60, what="the first tasks")
    procs[1].proc.kill()
    procs[1].proc.wait(10)
    down = _workload(app, 100, "b")
    ids += down
    metas: dict[str, dict[str, Any]] = wait_for(lambda: _final_metas(backend, ids),
                                                timeout=120, what="the tasks to finish")
    procs.append(start(names[1] + "-again"))
    wait_for(lambda: "backfill: " in procs[2].stderr() or procs[2].proc.poll() is not None,
             timeout=90, what="the restarted recorder's backfill line")
    after = _workload(app, 60, "c")
    metas.update(wait_for(lambda: _final_metas(backend, after), timeout=120,
                          what="the last tasks to finish"))
    ids += after
    return reader, procs, ids, metas, down


def _check_against_backend(reader: Store, ids: list[str],
                           metas: dict[str, dict[str, Any]]) -> None:
    stored = _wait_all(reader, ids, metas)
    for task_id in ids:  # the worker runs with result_extended: backfilled ones have names too
        _assert_matches_backend(stored[task_id][0], metas[task_id])


def _stop_all(procs: list[RecordProcess]) -> list[str]:
    errs = []
    for proc in procs:
        if proc.proc.poll() is None:
            assert proc.terminate() == 0, proc.stderr()
        err = proc.stderr()
        assert_no_traceback(err)
        errs.append(err)
    return errs


def _recorded(err: str) -> int:
    """Events written, from the ``stopped: N events recorded`` line."""
    line = next(x for x in err.splitlines() if "lazycelery: stopped: " in x)
    return int(line.split("stopped: ")[1].split(" events")[0].replace(",", ""))


def test_two_redis_shards_agree_with_the_result_backend_through_a_kill(
        redis_url: str, postgres_url: str, celery_worker_factory: Factory,
        tmp_path: Path) -> None:
    worker = celery_worker_factory(redis_url, backend=redis_url, concurrency=4)
    app = worker.app()
    procs: list[RecordProcess] = []
    reader: Store | None = None

    def start(name: str) -> RecordProcess:
        shard = "0/2" if name.startswith("shard0") else "1/2"
        proc = RecordProcess(redis_url, postgres_url, tmp_path, "--shard", shard,
                             "--result-backend", redis_url, name=name)
        procs.append(proc)
        return proc

    try:
        reader, _, ids, metas, down = _run_two_recorders(
            app, app.backend, postgres_url, start, ("shard0", "shard1"))
        _check_against_backend(reader, ids, metas)
        errs = _stop_all(procs)
        # each shard wrote its own tasks' events: every event once
        from lazycelery.store.topology import shard_of

        for task_id in ids[:150]:
            kinds = [t.type for t in reader.transitions_of(task_id)]
            assert kinds.count("task-succeeded") + kinds.count("task-failed") == 1, kinds
        # what shard 1 missed while it was down was backfilled, only its own tasks
        backfilled = {u for u, (_, flag) in reader.fetch_tasks(ids).items() if flag}
        assert backfilled and all(shard_of(u, 2) == 1 for u in backfilled)
        assert backfilled <= set(down) | set(ids[:150])
        assert "shard 1/2" in errs[2] and "ended without stopping: killed?" in errs[2]
        gaps = [g for g in reader.gaps() if g.source == "recorder"]
        assert len(gaps) == 1 and "[shard 1/2]" in gaps[0].cause
        # the recorders table names the shards
        brokers = sorted(r[0].rsplit(" (", 1)[1] for r in reader.query(
            "SELECT broker FROM recorders"))
        assert brokers == ["shard 0/2)", "shard 1/2)", "shard 1/2)"]
        assert _recorded(errs[0]) > 0 and _recorded(errs[2]) > 0
    finally:
        for proc in procs:
            proc.close()
        if reader is not None:
            reader.close()
        app.close()


def test_two_recorders_sharing_a_rabbitmq_queue_agree_with_the_result_backend_through_a_kill(
        amqp_url: str, redis_url: str, postgres_url: str, celery_worker_factory: Factory,
        tmp_path: Path) -> None:
    """One recorder on the AMQP fast path, the other on kombu's Receiver, one durable queue."""
    worker = celery_worker_factory(amqp_url, backend=redis_url, concurrency=4)
    app = worker.app()
    queue = f"lc.rec.{uuid.uuid4().hex[:8]}"
    procs: list[RecordProcess] = []
    reader: Store | None = None

    def start(name: str) -> RecordProcess:
        path = "fast" if name.startswith("fast") else "kombu"
        proc = RecordProcess(amqp_url, postgres_url, tmp_path, "--shared-queue", queue,
                             "--ingest", path, "--result-backend", redis_url, name=name)
        procs.append(proc)
        return proc

    try:
        reader, _, ids, metas, _down = _run_two_recorders(
            app, app.backend, postgres_url, start, ("fast", "kombu"))
        _check_against_backend(reader, ids, metas)
        # one durable queue, consumed by both (competing consumers)
        with app.connection_for_write() as conn:
            ok = conn.default_channel.queue_declare(queue=queue, passive=True)
            assert ok.consumer_count == 2
        errs = _stop_all(procs)
        assert "(fast path, shared queue " in errs[0] and "(kombu path, shared queue " in errs[1]
        assert _recorded(errs[0]) > 0 and _recorded(errs[2]) > 0  # both took events
        # each event reached one recorder: no task has a duplicated terminal event
        for task_id in ids[:150]:
            kinds = [t.type for t in reader.transitions_of(task_id)]
            assert kinds.count("task-succeeded") + kinds.count("task-failed") <= 1, kinds
        assert "ended without stopping (killed?)" in errs[2]
        with app.connection_for_write() as conn:
            conn.default_channel.queue_delete(queue)
    finally:
        for proc in procs:
            proc.close()
        if reader is not None:
            reader.close()
        app.close()


def test_shard_and_shared_queue_refuse_a_sqlite_store_and_a_wrong_broker(
        redis_url: str, tmp_path: Path) -> None:
    import subprocess
    import sys

    from conftest import ROOT

    sqlite = f"sqlite:///{tmp_path / 'h.sqlite3'}"
    cases = [
        (["--shard", "0/2", "--store", sqlite], "several recorders need a PostgreSQL store"),
        (["--shared-queue", "q", "--store", "postgresql://127.0.0.1/x"],
         "--shared-queue needs a RabbitMQ (amqp://) broker"),
        (["--shard", "2/2", "--store", "postgresql://127.0.0.1/x"], "I must be from 0 to N-1"),
    ]
    for args, expected in cases:
        done = subprocess.run([sys.executable, "-m", "lazycelery", "record", "--broker",
                               redis_url, *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 2, done
        assert expected in done.stderr and len(done.stderr.strip().splitlines()) == 1, done
        assert not Path(tmp_path / "h.sqlite3").exists()
