"""Whole-list filter speed over a million tasks: free text and a regular expression (the two
filters of bench_tui.py above 200 ms), with ``state:failure`` as the reference measured in the
same run. Each filter goes through the task list (``TaskListView.set_filter`` then ``settle``:
the work the dashboard spreads over frames), without the prompt_toolkit app, so a run is
mostly the index build (bench_tui.build_index).

    .venv/bin/python bench/bench_filter.py                 # 1,000,000 tasks, 5 runs each
    .venv/bin/python bench/bench_filter.py --tasks 100000 --runs 3

The ``typed:`` rows apply every prefix of the word in turn (the time is for all of them):
after the first key, each scan reads only the previous matches.

Each filter is also run, alternately in the same process, with the matching of
``tests/query_reference.py`` (the module before the whole-list fast path): the "before"
column; and record by record with the current predicate, without the joined text of
``core.haystack`` (``TaskListView.joined_text = False``): the "per record" column. "joined"
is the default path: warm (its chunks built by the first run; the "cold" column is that
first run, which builds them). Times are CPU time of the process (``time.process_time``), so
other programs on a loaded machine inflate them less than wall time. The memory the joined
text holds is printed after the table.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_tui import build_index  # noqa: E402

import lazycelery.core.task_list as task_list  # noqa: E402
from lazycelery.core.task_list import TaskListView  # noqa: E402
from tests import query_reference  # noqa: E402

FILTERS = ("state:failure", "payload", "Payload", 're:"bad pay(load)?"',
           "typed: payload", "typed: bad payload")


def _keys(text: str) -> list[str]:
    """The filters a run applies: ``typed: pay`` is typed key by key (p, pa, pay), each
    applied and settled before the next, as a fast typist sees it at worst."""
    if not text.startswith("typed: "):
        return [text]
    word = text[len("typed: "):]
    return [word[:n] for n in range(1, len(word) + 1)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-warm", action="store_true",
                        help="skip the idle warm-up (TaskListView.warm_text) the dashboard runs "
                             "before any filter: the 'joined cold' column then builds every chunk")
    args = parser.parse_args(argv)
    index = build_index(args.tasks)
    gc.collect()
    gc.freeze()
    new = {name: getattr(task_list, name) for name in ("compile_filter", "narrows")}
    old = {"compile_filter": query_reference.compile_filter, "narrows": lambda a, b: False}
    view = TaskListView(index)

    def use(which: str) -> None:
        for name, fn in (old if which == "before" else new).items():
            setattr(task_list, name, fn)
        view.joined_text = which == "joined"
    view.settle()
    if not args.no_warm:  # what the dashboard does while idle, before a filter is typed
        t = time.process_time()
        while view.warm_text(budget=0.05):
            pass
        print(f"idle warm-up: {time.process_time() - t:.2f} s of CPU in slices "
              f"({len(view._text)} chunks), before any filter")
    ways = ("before", "per record", "joined")
    print(f"{len(index):,} tasks, Python {sys.version.split()[0]}, {args.runs} runs each, "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    print(f"| {'filter (whole list)':<24} | {'matches':>9} | {'before':>10} | {'per record':>10} | "
          f"{'joined':>10} | {'joined cold':>11} | {'joined/per record':>17} |")
    print(f"|{'-' * 26}|{'-' * 11}|{'-' * 12}|{'-' * 12}|{'-' * 12}|{'-' * 13}|{'-' * 19}|")
    for text in FILTERS:
        times: dict[str, list[float]] = {k: [] for k in ways}
        counts: dict[str, int] = {}
        cold = 0.0
        for run in range(args.runs + 1):
            for which in ways:
                use(which)
                view.set_filter("")
                view.settle()
                t = time.process_time()
                for typed in _keys(text):
                    view.set_filter(typed)
                    view.settle()
                took = time.process_time() - t
                if run == 0 and which == "joined":
                    cold = took  # the first run builds what the joined text did not have
                elif run or which != "joined":
                    times[which].append(took)
                counts[which] = len(view)
        use("joined")
        if len(set(counts.values())) != 1:
            raise SystemExit(f"{text!r}: matches differ: {counts}")
        before, per_record, joined = (statistics.median(times[k]) for k in ways)
        print(f"| {text!r:<24} | {counts['joined']:>9,} | {before * 1e3:>7.1f} ms | "
              f"{per_record * 1e3:>7.1f} ms | {joined * 1e3:>7.1f} ms | {cold * 1e3:>8.1f} ms | "
              f"{joined / per_record:>16.2f}x |")
    print(f"\njoined text: {view.text_memory / 1e6:.1f} MB for {len(index):,} tasks "
          f"({view.text_memory / max(1, len(index)):.0f} bytes a task)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
