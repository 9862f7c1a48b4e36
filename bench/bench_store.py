"""Benchmark 7: recording into the history store (SQLite, PostgreSQL): events per second the
writer sustains, losses at a paced 30,000 events/s, bytes on disk per task.

The feeding thread does what the ingest thread does: ``TaskIndex.apply_batch`` then the
writer's ``on_batch`` (snapshot + queue), so the figures include the live path's share.

    python bench/bench_store.py [--quick] [--only sqlite,postgresql] [--repeat 3]
                                [--copies 120 --paced-only]

Each step (unpaced, paced) runs ``--repeat`` times, alternating, into a fresh store each time;
the result gives every run (with the 1-minute load average at its start) and the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

from common import UuidMap, log, recorded_events, remap_event

BATCH = 512
PACED_RATE = 30_000


def _stream(copies: int) -> list[dict[str, Any]]:
    """``copies`` of the recorded Redis stream with fresh task ids, timestamps moved to now."""
    base = recorded_events("redis")
    first = min(e["timestamp"] for e in base)
    span = max(e["timestamp"] for e in base) - first + 1.0
    start = time.time() - copies * span
    out = []
    for copy in range(copies):
        fresh = UuidMap()
        shift = start + copy * span - first
        for event in base:
            moved = remap_event(event, fresh)
            moved["timestamp"] = event["timestamp"] + shift
            out.append(moved)
    return out


@contextmanager
def _sqlite_url() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="lc-bench-store-") as tmp:
        yield f"sqlite:///{Path(tmp) / 'history.sqlite3'}"


@contextmanager
def _postgres_url() -> Iterator[str]:
    import psycopg

    base = os.environ.get("LAZYCELERY_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")
    name = f"lc_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{base}/postgres", autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"{base}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _feed(events: list[dict[str, Any]], on_batch: Callable[..., None], rate: float | None) -> float:
    """Apply and hand over every batch as the ingest thread would; returns seconds taken."""
    from lazycelery.core.index import TaskIndex

    index = TaskIndex(max_tasks=100_000)
    t0 = time.perf_counter()
    for i in range(0, len(events), BATCH):
        chunk = events[i:i + BATCH]
        on_batch(chunk, index.apply_batch(chunk))
        if rate is not None:
            due = t0 + (i + len(chunk)) / rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
    return time.perf_counter() - t0


def _one(url: str, events: list[dict[str, Any]], rate: float | None) -> dict[str, Any]:
    from lazycelery.store import open_store
    from lazycelery.store.writer import MAX_PENDING_EVENTS, StoreWriter

    load = os.getloadavg()[0]
    store = open_store(url)
    # unpaced: a queue as big as the run, to measure what the writer sustains without loss
    max_pending = MAX_PENDING_EVENTS if rate is not None else len(events) + 1
    writer = StoreWriter(store, max_pending_events=max_pending)
    writer.start()
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    peak = 0

    def on_batch(chunk: Any, records: Any) -> None:
        nonlocal peak
        writer.on_batch(chunk, records)
        peak = max(peak, writer.stats().pending)

    fed = _feed(events, on_batch, rate)
    writer.stop(timeout=600)
    total = time.perf_counter() - t0
    cpu = time.process_time() - cpu0  # both threads of this process (not the server's)
    stats = writer.stats()
    tasks = store.count("tasks")
    if url.startswith("sqlite"):
        store.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = store.size_bytes() or 0
    transitions = store.count("transitions")
    store.close()
    return {"load_1m": load, "events": len(events), "written": stats.written, "lost": stats.lost,
            "feed_s": fed, "total_s": total, "events_per_s": stats.written / total,
            "cpu_s": cpu, "cpu_us_per_event": cpu / len(events) * 1e6,
            "transactions": stats.transactions, "peak_pending": peak, "tasks": tasks,
            "transitions": transitions, "bytes": size,
            "bytes_per_task": size / tasks if tasks else None}


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def run(quick: bool, only: tuple[str, ...] = ("sqlite", "postgresql"),
        repeat: int = 1, copies: int | None = None, steps: tuple[str, ...] = ("max", "paced"),
        ) -> dict[str, Any]:
    copies = copies or (8 if quick else 40)
    events = _stream(copies)
    log(f"store: {len(events):,} events ({copies} copies of the recorded Redis stream)")
    out: dict[str, Any] = {"events": len(events), "paced_rate": PACED_RATE, "repeat": repeat,
                           "backends": {}}
    for name in only:
        opener = _sqlite_url if name == "sqlite" else _postgres_url
        try:
            runs: dict[str, list[dict[str, Any]]] = {step: [] for step in steps}
            for _ in range(repeat):
                for step, rate in (("max", None), ("paced", PACED_RATE)):
                    if step not in steps:
                        continue
                    with opener() as url:
                        one = _one(url, events, rate)
                    runs[step].append(one)
                    log(f"store {name} {step}: {one['events_per_s']:,.0f} events/s, "
                        f"lost {one['lost']:,}, peak queued {one['peak_pending']:,}, "
                        f"load {one['load_1m']:.2f}")
            result: dict[str, Any] = {}
            for step, done in runs.items():
                result[step] = dict(done[-1]) if repeat == 1 else {
                    "runs": done,
                    "events_per_s": _median(done, "events_per_s"),
                    "cpu_us_per_event": _median(done, "cpu_us_per_event"),
                    "peak_pending": _median(done, "peak_pending"),
                    "lost": [r["lost"] for r in done],
                    "bytes_per_task": _median(done, "bytes_per_task"),
                    "load_1m": [r["load_1m"] for r in done]}
        except Exception as exc:
            result = {"skipped": f"{type(exc).__name__}: {exc}"}
            log(f"store {name} skipped: {exc}")
        out["backends"][name] = result
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="sqlite,postgresql")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each step (medians)")
    parser.add_argument("--copies", type=int, default=None,
                        help="copies of the recorded stream (default 40; 8 with --quick)")
    parser.add_argument("--paced-only", action="store_true", help="skip the unpaced step")
    args = parser.parse_args()
    result = run(args.quick, tuple(n.strip() for n in args.only.split(",") if n.strip()),
                 args.repeat, args.copies, ("paced",) if args.paced_only else ("max", "paced"))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
