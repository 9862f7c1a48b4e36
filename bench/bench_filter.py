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
column. Times are CPU time of the process (``time.process_time``), so other programs on a
loaded machine inflate them less than wall time.
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
    args = parser.parse_args(argv)
    index = build_index(args.tasks)
    gc.collect()
    gc.freeze()
    new = {name: getattr(task_list, name) for name in ("compile_filter", "narrows")}
    old = {"compile_filter": query_reference.compile_filter, "narrows": lambda a, b: False}

    def use(which: str) -> None:
        for name, fn in (old if which == "before" else new).items():
            setattr(task_list, name, fn)
    view = TaskListView(index)
    view.settle()
    print(f"{len(index):,} tasks, Python {sys.version.split()[0]}, {args.runs} runs each\n")
    print(f"| {'filter (whole list)':<24} | {'matches':>9} | {'before':>10} | {'after':>10} | "
          f"{'after/before':>12} | {'after vs state:failure':>22} |")
    print(f"|{'-' * 26}|{'-' * 11}|{'-' * 12}|{'-' * 12}|{'-' * 14}|{'-' * 24}|")
    reference = None
    for text in FILTERS:
        times: dict[str, list[float]] = {"before": [], "after": []}
        counts: dict[str, int] = {}
        for _ in range(args.runs):
            for which in ("before", "after"):
                use(which)
                view.set_filter("")
                view.settle()
                t = time.process_time()
                for typed in _keys(text):
                    view.set_filter(typed)
                    view.settle()
                times[which].append(time.process_time() - t)
                counts[which] = len(view)
        use("after")
        if counts["before"] != counts["after"]:
            raise SystemExit(f"{text!r}: {counts['before']} matches before, {counts['after']} after")
        before, after = (statistics.median(times[k]) for k in ("before", "after"))
        reference = reference or after
        print(f"| {text!r:<24} | {counts['after']:>9,} | {before * 1e3:>7.1f} ms | "
              f"{after * 1e3:>7.1f} ms | {after / before:>11.2f}x | {after / reference:>21.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
