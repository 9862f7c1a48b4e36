"""Benchmark 11: reading a big history store. Fills a SQLite and a PostgreSQL store with N tasks
(default 10 million; a mix of names, states, workers and queues over 30 days, with their
transitions and worker samples), then measures what the dashboard and the CLI ask of it
through ``lazycelery.store.query``:

- a filtered page: state + name + time range, 100 tasks, newest first (first and next page);
- a lookup by id (the record and its transitions);
- the dashboard's first screen (the most recent tasks, each worker's latest sample, gaps),
  with the OS page cache dropped first when this runs as root (a cold start), then warm;
- bytes on disk per task (with its transitions and every index).

Reference in the same run: the same filtered pages with schema 1's indexes only (the
state + name + time index of migration 2 dropped).

The fill is a bulk load (secondary indexes dropped and rebuilt, executemany / COPY in big
transactions), not the recorder's path: bench_store.py measures that.

    python bench/bench_store_query.py [--tasks N] [--only sqlite,postgresql] [--dir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

from common import log

DAY = 86400.0
DAYS = 30
WORKERS = [f"celery@worker-{i:02d}" for i in range(20)]
QUEUES = ["celery", "default", "emails", "reports", "billing", "media"]
CHUNK = 100_000
# 40 task names, Zipf-like weights: a few very common, a long tail of rare ones
NAMES = [f"app.{mod}.{verb}" for mod in ("orders", "users", "emails", "reports", "billing",
                                          "media", "search", "sync")
         for verb in ("process", "notify", "refresh", "export", "cleanup")]
NAME_WEIGHTS = [1.0 / (i + 1) for i in range(len(NAMES))]
NAME_QUEUE = {name: QUEUES[i % len(QUEUES)] for i, name in enumerate(NAMES)}
TRACEBACK = ("Traceback (most recent call last):\n"
             '  File "/app/.venv/lib/python3.12/site-packages/celery/app/trace.py", line 453, '
             "in trace_task\n    R = retval = fun(*args, **kwargs)\n"
             '  File "/app/.venv/lib/python3.12/site-packages/celery/app/trace.py", line 736, '
             "in __protected_call__\n    return self.run(*args, **kwargs)\n"
             '  File "/app/tasks/{mod}.py", line {line}, in {verb}\n'
             "    raise {exc}\n{exc}\n")
EXCEPTIONS = ["ValueError('bad payload')", "ConnectionError('upstream timed out')",
              "KeyError('customer_id')", "RuntimeError('quota exceeded')"]


# ---------------------------------------------------------------------------- data


def _columns() -> tuple[tuple[str, ...], dict[str, int]]:
    from lazycelery.store.rows import TASK_COLUMNS

    return TASK_COLUMNS, {c: i for i, c in enumerate(TASK_COLUMNS)}


def generate(n: int, end: float, seed: int = 11) -> Iterator[tuple[list[tuple[Any, ...]],
                                                              list[tuple[Any, ...]]]]:
    """Chunks of (task rows, transition rows), oldest first: ``n`` tasks spread over 30 days
    ending at ``end``. States: ~93% success, ~4% failure (a third after retries), ~2% success
    after a retry, ~1% revoked; the last minutes hold unfinished ones. Half the tasks have a
    task-sent event (apps with ``task_send_sent_event``)."""
    rng = random.Random(seed)
    cols, at = _columns()
    cum = list(_cumulative(NAME_WEIGHTS))
    total_w = cum[-1]
    start = end - DAYS * DAY
    step = DAYS * DAY / n
    bools = [at[c] for c in ("terminated", "expired", "requeue", "reconciled", "backfilled")]
    base: list[Any] = [None] * len(cols)
    for i in bools:
        base[i] = False
    for c in ("retries", "n_started", "n_retried", "sent_attempt", "received_attempt"):
        base[at[c]] = 0
    rnd = rng.random
    for first in range(0, n, CHUNK):
        tasks: list[tuple[Any, ...]] = []
        trans: list[tuple[Any, ...]] = []
        for k in range(first, min(n, first + CHUNK)):
            row = base.copy()
            uid = f"{rng.getrandbits(128):032x}"
            uid = f"{uid[:8]}-{uid[8:12]}-4{uid[13:16]}-a{uid[17:20]}-{uid[20:]}"
            name = NAMES[bisect.bisect_left(cum, rnd() * total_w)]
            host = WORKERS[int(rnd() * len(WORKERS))]
            t = start + k * step + rnd() * step
            sent = t if rnd() < 0.5 else None
            received = t + 0.002
            started = received + rnd() * 0.05
            runtime = rng.lognormvariate(-2.0, 1.2)
            fate = rnd()
            row[at["uuid"]] = uid
            row[at["name"]] = name
            row[at["worker"]] = host
            row[at["queue"]] = NAME_QUEUE[name]
            row[at["exchange"]] = ""
            row[at["routing_key"]] = NAME_QUEUE[name]
            row[at["args"]] = f"({int(rnd() * 100000)}, '{name.rsplit('.', 1)[1]}')"
            row[at["kwargs"]] = "{}" if rnd() < 0.7 else "{'force': True, 'priority': 5}"
            row[at["sent"]] = sent
            row[at["received"]] = received
            row[at["started"]] = started
            row[at["n_started"]] = 1
            row[at["received_attempt"]] = 0
            if sent is not None:
                trans.append((uid, "task-sent", sent, None, 0, False))
            trans.append((uid, "task-received", received, host, 0, False))
            trans.append((uid, "task-started", started, host, 0, False))
            retries = 0
            if 0.93 <= fate < 0.97:  # retried once, then success or failure
                retries = 1
                retried = started + runtime
                exc = EXCEPTIONS[int(rnd() * len(EXCEPTIONS))]
                trans.append((uid, "task-retried", retried, host, 0, False))
                started = retried + 1.0
                trans.append((uid, "task-received", started - 0.01, host, 1, False))
                trans.append((uid, "task-started", started, host, 1, False))
                row[at["retried"]] = retried
                row[at["retries"]] = row[at["n_retried"]] = 1
                row[at["n_started"]] = 2
                row[at["received_attempt"]] = 1
                row[at["started"]] = started
            done = started + runtime
            if t > end - 120 and fate < 0.5:  # still running
                row[at["state"]] = "STARTED"
                last = started
            elif fate < 0.93 or 0.95 <= fate < 0.97:
                row[at["state"]] = "SUCCESS"
                row[at["succeeded"]] = done
                row[at["runtime"]] = runtime
                row[at["result"]] = repr({"ok": True, "items": int(rnd() * 500)})
                trans.append((uid, "task-succeeded", done, host, retries, False))
                last = done
            elif fate < 0.99:
                exc = EXCEPTIONS[int(rnd() * len(EXCEPTIONS))]
                mod, verb = name.split(".")[1:]
                row[at["state"]] = "FAILURE"
                row[at["failed"]] = done
                row[at["exception"]] = exc
                row[at["traceback"]] = TRACEBACK.format(mod=mod, verb=verb, exc=exc,
                                                        line=10 + int(rnd() * 200))
                trans.append((uid, "task-failed", done, host, retries, False))
                last = done
            else:
                row[at["state"]] = "REVOKED"
                row[at["revoked"]] = done
                row[at["terminated"]] = rnd() < 0.5
                trans.append((uid, "task-revoked", done, host, retries, False))
                last = done
            row[at["last_seen"]] = last
            row[at["first_time"]] = sent if sent is not None else received
            row[at["last_time"]] = last
            tasks.append(tuple(row))
        yield tasks, trans


def _cumulative(weights: list[float]) -> Iterator[float]:
    acc = 0.0
    for w in weights:
        acc += w
        yield acc


def worker_rows(end: float) -> Iterator[tuple[Any, ...]]:
    """A heartbeat sample per worker per minute for 30 days (what the recorder keeps)."""
    start = end - DAYS * DAY
    for host in WORKERS:
        yield (host, start, "online", None, None, None, None, None, 100, 2.0, "5.7.0")
        processed = 0
        t = start + 60.0
        while t < end:
            processed += 230
            yield (host, t, "heartbeat", 2, processed, 0.8, 0.7, 0.6, 100, 2.0, "5.7.0")
            t += 60.0


def gap_rows(end: float) -> list[tuple[Any, ...]]:
    start = end - DAYS * DAY
    return [(start + d * DAY + 3600.0, start + d * DAY + 3630.0, "broker connection lost",
             "ingest", None, start + d * DAY + 3631.0) for d in range(0, DAYS, 3)]


# ---------------------------------------------------------------------------- stores


@contextlib.contextmanager
def sqlite_url(directory: str | None, keep: bool) -> Iterator[str]:
    tmp = tempfile.mkdtemp(prefix="lc-bench-query-", dir=directory)
    path = Path(tmp) / "history.sqlite3"
    try:
        yield f"sqlite:///{path}"
    finally:
        if not keep:
            for suffix in ("", "-wal", "-shm", "-journal"):
                with contextlib.suppress(FileNotFoundError):
                    (path.parent / (path.name + suffix)).unlink()
            with contextlib.suppress(OSError):
                Path(tmp).rmdir()


@contextlib.contextmanager
def postgres_url(keep: bool) -> Iterator[str]:
    import psycopg

    base = os.environ.get("LAZYCELERY_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")
    name = f"lc_bench_query_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{base}/postgres", autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"{base}/{name}"
        finally:
            if not keep:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _index_sql(store: Any) -> list[tuple[str, str]]:
    """(name, CREATE statement) of the secondary indexes of tasks and transitions."""
    if store.dialect.name == "sqlite":
        rows = store.query("SELECT name, sql FROM sqlite_master WHERE type = 'index' "
                           "AND tbl_name IN ('tasks', 'transitions') AND sql IS NOT NULL")
    else:
        rows = store.query("SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN "
                           "('tasks', 'transitions') AND right(indexname, 5) <> '_pkey' "
                           "AND indexname <> 'tasks_uuid_key'")
    return [(str(r[0]), str(r[1])) for r in rows]


def fill(url: str, n: int, end: float) -> dict[str, Any]:
    from lazycelery.store import open_store
    from lazycelery.store.rows import TASK_COLUMNS

    store = open_store(url)
    indexes = _index_sql(store)
    sqlite = store.dialect.name == "sqlite"
    t0 = time.perf_counter()
    for name, _ in indexes:
        store.execute(f"DROP INDEX {name}")
    if sqlite:
        # a bulk load, not the recorder's settings: no journal, no fsync, a 2 GB page cache
        store.execute("PRAGMA journal_mode = OFF")
        store.execute("PRAGMA synchronous = OFF")
        store.execute("PRAGMA cache_size = -2000000")
    else:
        store.execute("ALTER TABLE tasks DROP CONSTRAINT tasks_uuid_key")
    task_cols = ", ".join(TASK_COLUMNS)
    trans_cols = "uuid, type, time, hostname, retries, backfilled"
    worker_cols = ("hostname, time, kind, active, processed, load1, load5, load15, pid, freq, "
                   "sw_ver")
    gap_cols = "gap_start, gap_end, cause, source, lost_events, recorded_at"
    tasks = transitions = 0
    sample: list[str] = []
    rng = random.Random(5)
    for task_rows, trans_rows in generate(n, end):
        with store.transaction():
            store.insert_rows("tasks", task_cols, task_rows)
            store.insert_rows("transitions", trans_cols, trans_rows)
        tasks += len(task_rows)
        transitions += len(trans_rows)
        sample.extend(r[0] for r in rng.sample(task_rows, min(100, len(task_rows))))
        if tasks % 1_000_000 == 0:
            log(f"  {tasks:,} tasks, {transitions:,} transitions "
                f"({time.perf_counter() - t0:.0f} s)")
    workers = list(worker_rows(end))
    with store.transaction():
        store.insert_rows("worker_samples", worker_cols, workers)
        store.insert_rows("gaps", gap_cols, gap_rows(end))
    loaded = time.perf_counter() - t0
    log(f"  loaded in {loaded:.0f} s; building indexes")
    if not sqlite:
        store.execute("ALTER TABLE tasks ADD CONSTRAINT tasks_uuid_key UNIQUE (uuid)")
    for _, sql in indexes:
        store.execute(sql)
    if not sqlite:  # autovacuum analyzes a big table; SQLite has no statistics by itself
        store.execute("ANALYZE")
    if sqlite:
        store.execute("PRAGMA journal_mode = WAL")
        store.execute("PRAGMA synchronous = NORMAL")
    filled = time.perf_counter() - t0
    size = store.size_bytes() or 0
    other = 0
    if not sqlite:
        rows = store.query("SELECT pg_total_relation_size('worker_samples') + "
                           "pg_total_relation_size('gaps')")
        other = int(rows[0][0])
        size -= other
    store.close()
    return {"tasks": tasks, "transitions": transitions, "worker_samples": len(workers),
            "load_s": loaded, "fill_s": filled, "bytes": size, "bytes_other": other,
            "bytes_per_task": size / tasks, "sample_ids": sample}


# ---------------------------------------------------------------------------- measuring


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return (time.perf_counter() - t0) * 1000.0, out


def _stats(ms: list[float]) -> dict[str, float]:
    ordered = sorted(ms)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"n": len(ms), "median_ms": statistics.median(ms), "p95_ms": p95,
            "max_ms": ordered[-1]}


def _page_queries(end: float, count: int, seed: int = 7) -> list[Any]:
    from lazycelery.store.query import TaskFilter

    rng = random.Random(seed)
    out = []
    for _ in range(count):
        state = rng.choices(["SUCCESS", "FAILURE", "REVOKED", "STARTED"], [50, 40, 8, 2])[0]
        name = rng.choice(NAMES)
        span = rng.choice([3600.0, DAY, 7 * DAY, 30 * DAY])
        until = end - rng.random() * (DAYS * DAY - span)
        out.append(TaskFilter(states=(state,), names=(name,), since=until - span, until=until))
    return out


def _measure_pages(store: Any, filters: list[Any]) -> dict[str, Any]:
    from lazycelery.store.query import page

    first: list[float] = []
    second: list[float] = []
    rows = 0
    for flt in filters:
        ms, got = _timed(lambda f=flt: page(store, f, None, 100))  # type: ignore[misc]
        first.append(ms)
        rows += len(got.tasks)
        if got.next is not None:
            ms, _ = _timed(lambda f=flt, c=got.next: page(store, f, c, 100))  # type: ignore[misc]
            second.append(ms)
    return {"first_page": _stats(first), "next_page": _stats(second) if second else None,
            "mean_rows": rows / len(filters)}


def _drop_caches() -> bool:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("1\n")
        return True
    except OSError:
        return False


def measure(url: str, end: float, ids: list[str], queries: int, keep: bool) -> dict[str, Any]:
    """Cold figures right after dropping the OS page cache (as root), then warm ones."""
    from lazycelery.store import open_store
    from lazycelery.store.query import first_screen, get

    out: dict[str, Any] = {"loadavg_start": os.getloadavg()}
    cold = _drop_caches()
    out["cold"] = cold
    store = open_store(url, writer=False)
    ms, screen = _timed(lambda: first_screen(store, 10_000))
    out["first_screen_10000_first_ms"] = ms
    out["first_screen_tasks"] = len(screen.tasks)
    out["first_screen_workers"] = len(screen.workers)
    out["first_screen_gaps"] = len(screen.gaps)
    for limit in (1_000, 10_000):
        out[f"first_screen_{limit}"] = _stats(
            [_timed(lambda n=limit: first_screen(store, n))[0] for _ in range(10)])  # type: ignore[misc]
    rng = random.Random(3)
    picked = rng.sample(ids, min(1000, len(ids)))
    # first pass: mostly pages not yet read since the cache was dropped; second: warm
    out["get_first_pass"] = _stats([_timed(lambda u=u: get(store, u))[0] for u in picked])  # type: ignore[misc]
    out["get"] = _stats([_timed(lambda u=u: get(store, u))[0] for u in picked])  # type: ignore[misc]
    out["get_missing"] = _stats(
        [_timed(lambda: get(store, str(uuid.uuid4())))[0] for _ in range(200)])
    filters = _page_queries(end, queries)
    out["page_first_pass"] = _measure_pages(store, filters)
    out["page"] = _measure_pages(store, filters)
    store.close()
    # reference: the same pages with schema 1's indexes only (warm: second pass)
    writer = open_store(url)
    writer.execute("DROP INDEX tasks_state_name_time")
    writer.close()
    store = open_store(url, writer=False)
    subset = filters[: max(20, queries // 5)]
    _measure_pages(store, subset)
    out["page_schema1"] = _measure_pages(store, subset)
    store.close()
    if keep:
        from lazycelery.store.schema import MIGRATIONS

        writer = open_store(url)
        writer.execute(next(s for s in MIGRATIONS[1].statements(writer.dialect)
                            if "tasks_state_name_time" in s))
        writer.close()
    out["loadavg_end"] = os.getloadavg()
    return out


def run(n: int, only: tuple[str, ...], directory: str | None, keep: bool,
        queries: int) -> dict[str, Any]:
    end = time.time()
    out: dict[str, Any] = {"tasks": n, "days": DAYS, "workers": len(WORKERS),
                           "names": len(NAMES), "backends": {}}
    for name in only:
        log(f"store-query {name}: filling {n:,} tasks")
        opener = (sqlite_url(directory, keep) if name == "sqlite" else postgres_url(keep))
        with opener as url:
            filled = fill(url, n, end)
            ids = filled.pop("sample_ids")
            log(f"store-query {name}: filled in {filled['fill_s']:.0f} s, "
                f"{filled['bytes_per_task']:,.0f} bytes/task; measuring")
            result = {"fill": filled, **measure(url, end, ids, queries, keep)}
            if keep:
                result["url"] = url
                result["end"] = end
                ids_file = Path(directory or tempfile.gettempdir()) / f"lc-bench-ids-{name}.json"
                ids_file.write_text(json.dumps(ids))
                result["ids_file"] = str(ids_file)
        log(f"store-query {name}: " + json.dumps({k: v for k, v in result.items()
                                                   if k != "fill"}))
        out["backends"][name] = result
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=10_000_000)
    parser.add_argument("--only", default="sqlite,postgresql")
    parser.add_argument("--dir", default=None, help="where the SQLite file goes (default: tmp)")
    parser.add_argument("--queries", type=int, default=300, help="filtered pages to time")
    parser.add_argument("--keep", action="store_true", help="keep the stores (prints their URL)")
    parser.add_argument("--measure", metavar="URL",
                        help="measure a store kept by --keep again (no fill; give --end and "
                             "--ids from that run's JSON)")
    parser.add_argument("--end", type=float, help="with --measure: the fill's end time")
    parser.add_argument("--ids", help="with --measure: a JSON file of task ids to look up")
    args = parser.parse_args()
    only = tuple(x.strip() for x in args.only.split(",") if x.strip())
    if args.measure:
        ids = json.loads(Path(args.ids).read_text())
        print(json.dumps(measure(args.measure, args.end, ids, args.queries, True), indent=1))
        return 0
    result = run(args.tasks, only, args.dir, args.keep, args.queries)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
