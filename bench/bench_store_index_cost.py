"""What migration 2's index (``tasks_state_name_time``) costs the recorder: the same write
batches (20 copies of the recorded Redis stream, 20,000 events per transaction, as the writer
thread commits them) into a fresh SQLite store with and without it, alternated, 3 rounds.
Only ``Store.write`` is timed (no feeding thread).

    python bench/bench_store_index_cost.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

from bench_store import _stream


def main() -> int:
    from lazycelery.core.index import TaskIndex
    from lazycelery.store import open_store
    from lazycelery.store.capture import BatchCapture

    events = _stream(20)
    index = TaskIndex(max_tasks=1_000_000)
    capture = BatchCapture()
    batches = []
    for i in range(0, len(events), 20_000):
        chunk = events[i:i + 20_000]
        batches.append(capture.capture(chunk, index.apply_batch(chunk)))
    print(f"{len(events):,} events, load average {os.getloadavg()[0]:.2f}")
    rates: dict[str, list[float]] = {"with": [], "without": []}
    for _ in range(3):
        for kind in ("with", "without"):
            with tempfile.TemporaryDirectory() as tmp:
                store = open_store(f"sqlite:///{tmp}/h.sqlite3")
                if kind == "without":
                    store.execute("DROP INDEX tasks_state_name_time")
                t0 = time.perf_counter()
                for batch in batches:
                    store.write(batch)
                rates[kind].append(len(events) / (time.perf_counter() - t0))
                store.close()
    medians = {k: sorted(v)[len(v) // 2] for k, v in rates.items()}
    for kind, values in rates.items():
        print(f"{kind} the index: {', '.join(f'{v:,.0f}' for v in values)} events/s, "
              f"median {medians[kind]:,.0f}")
    print(f"ratio with / without: {medians['with'] / medians['without']:.3f} "
          f"(load average {os.getloadavg()[0]:.2f} at the end)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
