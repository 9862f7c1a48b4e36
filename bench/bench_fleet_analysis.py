"""Benchmark: one analysis of the dashboard's charts pane (``ChartsModel``: finished-task
samples, throughput, load, p95 heatmap, SLA, heartbeats) over N tasks in memory, against the
reference measured in the same run: copying the index (``snapshot``) and reading each record's
state, the least any analysis of every record costs.

The tasks are the recorded stream (tests/data/recorded/redis) copied with fresh ids, moved into
the last hour. Usage: python bench/bench_fleet_analysis.py [--copies 34] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lazycelery.core.index import TaskIndex  # noqa: E402
from lazycelery.tui.screen.charts import ChartsModel  # noqa: E402
from tests.replay import load_events  # noqa: E402


def filled(copies: int) -> TaskIndex:
    events = load_events("redis")
    index = TaskIndex(max_tasks=1_000_000)
    shift = time.time() - 60 - max(e["timestamp"] for e in events)
    for c in range(copies):
        ids: dict[str, str] = {}
        batch = []
        for e in events:
            moved = dict(e, timestamp=e["timestamp"] + shift - c * 30)
            if "uuid" in e:
                moved["uuid"] = ids.setdefault(e["uuid"], str(uuid.uuid4()))
            batch.append(moved)
        index.apply_batch(batch)
    return index


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--copies", type=int, default=34)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    index = filled(args.copies)
    model = ChartsModel(index, background=False)
    model.sla = {"benchapp.add": (0.05, None)}

    def reference() -> float:
        t0 = time.perf_counter()
        sum(1 for r in index.snapshot() if r.state == "SUCCESS")
        return time.perf_counter() - t0

    def analysis() -> float:
        t0 = time.perf_counter()
        model.view(force=True)
        return time.perf_counter() - t0

    ref = statistics.median(reference() for _ in range(args.repeats))
    full = statistics.median(analysis() for _ in range(args.repeats))
    print("| tasks in memory | reference (snapshot + read state) | charts analysis | ratio |")
    print("|---|---|---|---|")
    print(f"| {len(index):,} | {ref * 1000:.0f} ms | {full * 1000:.0f} ms | {full / ref:.1f} |")
    print(f"\nmedians of {args.repeats}; load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
