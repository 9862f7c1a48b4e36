"""Benchmark: the dashboard's history (SQLite, PostgreSQL) with a store of N tasks: the start-up
load (open the store, take the 5,000 most recent tasks and the workers into the index), a
``since:`` range past memory read page by page (``state:failure since:…``), a task by id.

The range is read twice, alternating: with its ``state:`` pushed down to the store (one index
range, what the dashboard does) and by the previous way, a backward walk of the whole time
range filtered in Python (``HistorySource._range_walk``): the ratio is of the same run.

Reference in the same run: the same 5,000 tasks arriving live (their 20,000 events through
``TaskIndex.apply_batch``), what the start-up load stands in for.

    python bench/bench_dashboard_history.py [--quick] [--only sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

from bench_store import _postgres_url, _sqlite_url
from common import log

RUNS = 5


def _records(n: int, now: float) -> list[Any]:
    from lazycelery.core.model import TaskRecord

    out = []
    for i in range(n):
        t = now - (n - i) * 0.05  # one task every 50 ms, the newest now
        failed = i % 10 == 0
        out.append(TaskRecord(
            uuid=f"{i:08x}-0000-4000-8000-{i:012x}", state="FAILURE" if failed else "SUCCESS",
            name=f"app.task{i % 20}", worker=f"w{i % 4}@host", args=f"({i}, {i})", kwargs="{}",
            result=None if failed else str(2 * i), exception="ValueError('x')" if failed else None,
            runtime=0.01, sent=t, received=t + 0.001, started=t + 0.002,
            succeeded=None if failed else t + 0.012, failed=t + 0.012 if failed else None,
            last_seen=t + 0.013, n_started=1, sent_attempt=0, received_attempt=0))
    return out


def _fill(url: str, n: int, now: float) -> None:
    from lazycelery.store import WriteBatch, open_store

    store = open_store(url)
    try:
        records = _records(n, now)
        for start in range(0, n, 10_000):
            store.write(WriteBatch(tasks=records[start:start + 10_000]))
    finally:
        store.close()


def _wait(cond: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError("history did not answer")
        time.sleep(0.001)


def _preload(url: str) -> float:
    from lazycelery.core.index import TaskIndex
    from lazycelery.tui.screen.history import HistorySource

    index = TaskIndex(max_tasks=100_000)
    # no ingest thread here: the history thread merges at once (writer_wait=0) instead of
    # waiting a second for a writer's batch; the work is the same either way
    source = HistorySource(url, index, writer_wait=0.0)
    t0 = time.perf_counter()
    source.start()
    _wait(lambda: source.loaded > 0 or source.state == "off")
    took = time.perf_counter() - t0
    source.stop()
    assert source.state == "on" and len(index) == 5_000, source.status
    return took


def _range(url: str, since: float, walk: bool = False,
           now: float | None = None) -> tuple[float, float, int]:
    """(seconds to the first page, seconds to the end, matches) of ``state:failure since:``;
    ``walk``: the time range walked and filtered in Python (no push-down)."""
    from lazycelery.core.index import TaskIndex
    from lazycelery.core.query import compile_filter
    from lazycelery.tui.screen.history import CLOCK_SLACK, HistorySource, RangePage

    class Walking(HistorySource):
        def _range(self, store: Any, arg: Any) -> None:
            generation, predicate, lo, hi = arg
            self._range_walk(store, generation, predicate,
                             None if lo is None else lo - CLOCK_SLACK,
                             None if hi is None else hi + CLOCK_SLACK)

    index = TaskIndex(max_tasks=100_000)
    source = (Walking if walk else HistorySource)(url, index, preload=0, writer_wait=0.0)
    source.start()
    _wait(lambda: source.loaded > 0)
    predicate = compile_filter(f"state:failure since:{since:.0f}s", now=now)
    found = 0
    first = None
    done = False
    t0 = time.perf_counter()
    source.query(predicate, *predicate.time_range)
    while not done:
        for answer in source.take():
            if isinstance(answer, RangePage):
                found += len(answer.records)
                if first is None and answer.records:
                    first = time.perf_counter() - t0
                done = done or answer.done
        time.sleep(0.001)
    total = time.perf_counter() - t0
    source.stop()
    return first or total, total, found


def _lookups(url: str, n: int) -> float:
    from lazycelery.store import open_store

    store = open_store(url, writer=False)
    rng = random.Random(7)
    times = []
    try:
        for _ in range(200):
            i = rng.randrange(n)
            t0 = time.perf_counter()
            assert store.get_task(f"{i:08x}-0000-4000-8000-{i:012x}") is not None
            times.append(time.perf_counter() - t0)
    finally:
        store.close()
    return statistics.median(times)


def _live_reference(now: float) -> float:
    """The same 5,000 tasks arriving live: 20,000 events through the index."""
    from lazycelery.core.index import TaskIndex

    events = []
    for rec in _records(5_000, now):
        for kind, t in (("task-sent", rec.sent), ("task-received", rec.received),
                        ("task-started", rec.started),
                        ("task-failed" if rec.failed else "task-succeeded",
                         rec.failed or rec.succeeded)):
            events.append({"type": kind, "uuid": rec.uuid, "timestamp": t, "name": rec.name,
                           "args": rec.args, "kwargs": rec.kwargs, "hostname": rec.worker,
                           "result": rec.result, "runtime": rec.runtime})
    index = TaskIndex(max_tasks=100_000)
    t0 = time.perf_counter()
    for i in range(0, len(events), 512):
        index.apply_batch(events[i:i + 512])
    return time.perf_counter() - t0


def run(kind: str, n: int) -> dict[str, Any]:
    opener = _sqlite_url if kind == "sqlite" else _postgres_url
    now = time.time()
    with opener() as url:
        log(f"{kind}: filling {n:,} tasks")
        _fill(url, n, now)
        preload = statistics.median(_preload(url) for _ in range(RUNS))
        reference = statistics.median(_live_reference(now) for _ in range(RUNS))
        # a range holding 40,000 tasks (4,000 failures), all past memory
        ranges, walks = [], []
        for _ in range(RUNS):
            at = time.time()  # the same range both ways
            ranges.append(_range(url, min(n, 40_000) * 0.05, now=at))
            walks.append(_range(url, min(n, 40_000) * 0.05, walk=True, now=at))
            assert ranges[-1][2] == walks[-1][2], (ranges, walks)
        lookup = _lookups(url, n)
    return {"store": kind, "tasks": n, "preload_s": preload, "live_reference_s": reference,
            "range_first_page_s": statistics.median(r[0] for r in ranges),
            "range_total_s": statistics.median(r[1] for r in ranges),
            "range_matches": ranges[0][2], "lookup_s": lookup,
            "walk_first_page_s": statistics.median(r[0] for r in walks),
            "walk_total_s": statistics.median(r[1] for r in walks)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="20,000 tasks instead of 500,000")
    parser.add_argument("--only", default="sqlite,postgresql")
    args = parser.parse_args()
    n = 20_000 if args.quick else 500_000
    results = [run(kind, n) for kind in args.only.split(",")]
    print("| store | tasks stored | start-up load (5,000 tasks, median of 5) | same 5,000 tasks "
          "live (20,000 events, same run) | ratio | `state:failure since:2000s` past memory "
          "(~40,000 tasks, 10% failed): first page / all (matches) | the same range walked and "
          "filtered in Python (before): first page / all | all: ratio | task by id "
          "(median of 200) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['store']} | {r['tasks']:,} | {r['preload_s'] * 1e3:,.0f} ms | "
              f"{r['live_reference_s'] * 1e3:,.0f} ms | "
              f"{r['preload_s'] / r['live_reference_s']:.2f}x | "
              f"{r['range_first_page_s'] * 1e3:,.0f} ms / {r['range_total_s'] * 1e3:,.0f} ms "
              f"({r['range_matches']:,}) | {r['walk_first_page_s'] * 1e3:,.0f} ms / "
              f"{r['walk_total_s'] * 1e3:,.0f} ms | "
              f"{r['range_total_s'] / r['walk_total_s']:.2f}x | {r['lookup_s'] * 1e3:.2f} ms |")
    print(json.dumps(results), file=sys.stderr)


if __name__ == "__main__":
    main()
