"""Task-list upkeep while the index evicts (steady state at --max-tasks): UI-thread cost per event.

    .venv/bin/python bench/bench_evict.py [--tasks 100000] [--filter "-state:revoked"] [--root DIR]

Replays the recorded Redis stream with fresh task ids into a full TaskIndex in batches of 500 and
times ``TaskListView.sync()`` + ``settle()`` per event. ``--root`` runs another checkout's code
(e.g. main) for a comparison. Prints one line; never part of the tests.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000, help="--max-tasks of the index")
    parser.add_argument("--filter", default="-state:revoked")
    parser.add_argument("--root", type=Path, default=ROOT)
    parser.add_argument("--batches", type=int, default=200)
    args = parser.parse_args()
    sys.path.insert(0, str(args.root))
    from lazycelery.core.index import TaskIndex
    from lazycelery.core.task_list import TaskListView

    recorded = ROOT / "tests" / "data" / "recorded" / "redis" / "events.jsonl.gz"
    with gzip.open(recorded, "rt") as fh:
        tasks = [e for e in map(json.loads, fh) if e["type"].startswith("task-")]

    def stream() -> Iterator[dict[str, Any]]:
        while True:
            fresh: dict[str, str] = {}
            for event in tasks:
                yield {**event, "uuid": fresh.setdefault(event["uuid"], str(uuid.uuid4()))}

    events = stream()
    index = TaskIndex(max_tasks=args.tasks)
    view = TaskListView(index)
    view.set_filter(args.filter)
    view.settle()
    while len(index) < args.tasks:  # fill to capacity first
        view.sync(index.apply_batch([next(events) for _ in range(500)]))
        view.settle()
    spent, applied, evicted = 0.0, 0, index.evicted
    for _ in range(args.batches):
        touched = index.apply_batch([next(events) for _ in range(500)])
        start = time.perf_counter()
        view.sync(touched)
        view.settle()
        spent += time.perf_counter() - start
        applied += 500
    print(f"max_tasks={args.tasks} filter={args.filter!r}: {applied} events, "
          f"{index.evicted - evicted} evictions, sync+settle {spent * 1e6 / applied:.2f} us/event, "
          f"list {len(view)} of {len(index)} held")


if __name__ == "__main__":
    main()
