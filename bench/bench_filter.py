"""Whole-list filter speed over a million tasks: free text and a regular expression (the two
filters of bench_tui.py above 200 ms), with ``state:failure`` as the reference measured in the
same run. Each filter goes through the task list (``TaskListView.set_filter`` then ``settle``:
the work the dashboard spreads over frames), without the prompt_toolkit app, so a run is
mostly the index build (bench_tui.build_index).

    .venv/bin/python bench/bench_filter.py                 # 1,000,000 tasks, 5 runs each
    .venv/bin/python bench/bench_filter.py --tasks 100000 --runs 3
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_tui import build_index  # noqa: E402

from lazycelery.core.task_list import TaskListView  # noqa: E402

FILTERS = ("state:failure", "payload", "Payload", 're:"bad pay(load)?"')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    index = build_index(args.tasks)
    gc.collect()
    gc.freeze()
    view = TaskListView(index)
    view.settle()
    print(f"{len(index):,} tasks, Python {sys.version.split()[0]}, {args.runs} runs each\n")
    print(f"| {'filter (whole list)':<24} | {'matches':>9} | {'median':>10} | {'vs state:failure':>16} |")
    print(f"|{'-' * 26}|{'-' * 11}|{'-' * 12}|{'-' * 18}|")
    reference = None
    for text in FILTERS:
        times = []
        for _ in range(args.runs):
            view.set_filter("")
            view.settle()
            t = time.perf_counter()
            view.set_filter(text)
            view.settle()
            times.append(time.perf_counter() - t)
        median = statistics.median(times)
        reference = reference or median
        print(f"| {text!r:<24} | {len(view):>9,} | {median * 1e3:>7.1f} ms | "
              f"{median / reference:>15.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
