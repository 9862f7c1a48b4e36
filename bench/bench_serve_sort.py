"""`/api/tasks?sort_by=` over N tasks in memory, in process (no HTTP): serve's ``page`` beside
the implementation it replaced (kept below as the reference), same index, same run, same
queries; every answer is checked identical. Prints a markdown table of p50 / p95.

    .venv/bin/python bench/bench_serve_sort.py                  # 1,000,000 tasks (~1 GB)
    .venv/bin/python bench/bench_serve_sort.py --tasks 200000 --requests 10
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench_serve_api import events
from common import md_table

from lazycelery.core.index import TaskIndex
from lazycelery.serve.tasks import page, parse_query
from tests.serve_reference import old_page  # the implementation page() replaced

QUERIES = ["limit=100&sort_by=-received", "limit=100&sort_by=received",
           "limit=100&sort_by=-started", "limit=100&offset=1000&sort_by=-received",
           "limit=100&state=FAILURE&sort_by=-received"]


def timed(fn: Callable[[], Any], n: int) -> tuple[float, float, Any]:
    times, out = [], None
    for _ in range(n):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2], times[min(len(times) - 1, int(len(times) * 0.95))], out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=20)
    args = parser.parse_args()
    index = TaskIndex(max_tasks=args.tasks)
    batch: list[dict[str, Any]] = []
    for event in events(args.tasks):
        batch.append(event)
        if len(batch) == 512:
            index.apply_batch(batch)
            batch = []
    index.apply_batch(batch)
    rows = []
    for text in QUERIES:
        q = parse_query(dict(part.split("=", 1) for part in text.split("&")))
        new50, new95, new = timed(lambda q=q: page(index, q), args.requests)
        old50, old95, old = timed(lambda q=q: old_page(index, q), args.requests)
        assert [r.uuid for r in new] == [r.uuid for r in old] and len(new) == 100, text
        rows.append([f"`{text}`", f"{new50 * 1000:.1f}", f"{new95 * 1000:.1f}",
                     f"{old50 * 1000:.1f}", f"{old95 * 1000:.1f}", f"{old50 / new50:.1f}x"])
        print(rows[-1], file=sys.stderr, flush=True)
    print(f"/api/tasks sort_by over {args.tasks:,} tasks in memory, in process, "
          f"{args.requests} calls each, load {os.getloadavg()[0]:.1f}\n")
    print(md_table(["query", "serve p50 ms", "serve p95 ms", "previous p50 ms",
                    "previous p95 ms", "previous / serve (p50)"], rows))


if __name__ == "__main__":
    main()
