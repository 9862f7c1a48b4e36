"""The `lazycelery timeline` command: the dashboard's timeline from the history store, as text
(lanes of bars under a time ruler) or JSON (lanes, rows and bars); the layout is
`lazycelery.core.timeline`'s."""

from __future__ import annotations

import argparse
import time
from typing import Any, Final

from lazycelery.commands.argtypes import positive_int
from lazycelery.text import counted

__all__ = ["register", "run"]

DESCRIPTION = """\
Tasks as bars on a time axis, read from the history store (`lazycelery record`): one lane per
worker (or per queue with --by queue), a lane split into rows where its tasks overlap, each bar
from the task's start (received when it never started) to its end. The same layout as the
dashboard's timeline pane (key T); the store does not keep the pool pid, so lanes here are per
worker hostname. Tasks with no received or started time are counted, not drawn.
"""

EPILOG = """\
examples:
  lazycelery timeline --since 10m                  the last ten minutes as text
  lazycelery timeline --since 1h --by queue        one lane per queue
  lazycelery timeline --since 10m --json | jq '.lanes[].key'
  lazycelery timeline --since 30m --filter 'state:failure name:*.resize'

exit status: 0 (also when nothing ran); 2 on a bad option or filter, or no history store.
"""

#: the cells of the text rendering, by state (no colour: a letter says the state)
GLYPHS: Final = {"SUCCESS": "=", "FAILURE": "X", "RETRY": "r", "REVOKED": "-", "REJECTED": "-",
                 "STARTED": ">", "RECEIVED": "."}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
             common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "timeline", parents=[common], help="tasks as bars per worker or queue, from history",
        description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--since", metavar="AGE|TIME", default="10m",
                        help="from AGE ago (30m, 2h, 1d) or an ISO time (default 10m)")
    parser.add_argument("--by", choices=("worker", "queue"), default="worker",
                        help="one lane per worker (default) or per queue")
    parser.add_argument("--filter", metavar="TEXT", default="",
                        help="only the tasks matching this filter (the dashboard's language)")
    parser.add_argument("--width", type=positive_int, metavar="COLUMNS",
                        help="text width (default: the terminal's)")
    parser.add_argument("--json", action="store_true", help="one JSON document")
    parser.set_defaults(handler="lazycelery.commands.timeline_cmd:run")


def run(args: argparse.Namespace) -> int:
    import json

    from lazycelery.config import resolve
    from lazycelery.core.query import FilterError, compile_filter
    from lazycelery.core.timeline import build_layout
    from lazycelery.core.timeline_json import layout_json
    from lazycelery.errors import UsageError
    from lazycelery.tail.history import parse_since

    since = parse_since(args.since)
    until = time.time()
    try:
        predicate = compile_filter(args.filter, now=until) if args.filter else None
    except FilterError as exc:
        raise UsageError(f"--filter: {exc.message} (at column {exc.column})") from None
    settings = resolve(args)
    records = [r for r in _stored_tasks(settings, since, until)
               if predicate is None or predicate(r)]
    layout = build_layout(records, args.by)
    if args.json:
        print(json.dumps(layout_json(layout, since, until), indent=2))
    else:
        import shutil

        width = args.width or shutil.get_terminal_size().columns
        print("\n".join(text_lines(layout, since, until, width)))
    return 0


def _stored_tasks(settings: Any, since: float, until: float) -> list[Any]:
    """The tasks with an event in ``[since, until)``, as the index merges the stored events."""
    from lazycelery.analysis.sources import replay_store
    from lazycelery.core.index import TaskIndex
    from lazycelery.errors import UsageError
    from lazycelery.store import StoreError, default_store_url, open_store

    url = settings.store_url or default_store_url()
    try:
        store = open_store(url, create=False, writer=False)
    except StoreError as exc:
        raise UsageError(f"{exc}: record history with `lazycelery record`") from None
    index = TaskIndex(max_tasks=settings.max_tasks)
    try:
        replay_store(store, since, until, None, index, 1000)
    except StoreError as exc:
        raise UsageError(f"history: {exc}") from None
    finally:
        store.close()
    return index.newest(len(index))


def text_lines(layout: Any, since: float, until: float, width: int) -> list[str]:
    """A ruler, then each lane's rows: a letter per column for the first task in it."""
    from lazycelery.core.timeline import View, render_row, ticks
    from lazycelery.text import visible
    from lazycelery.tui.format import clock_time

    gutter = 24
    cols = max(10, width - gutter - 1)
    start = layout.first if layout.first is not None else since
    end = max(layout.last, start) if layout.last is not None else until
    view = View.fit(start, end)
    ruler = [" "] * cols
    for col, t in ticks(view, cols, label=9):
        label = "|" + clock_time(t, millis=view.span < 10)
        if col + len(label) <= cols:
            ruler[col:col + len(label)] = label
    lines = [f"{'':{gutter}} {''.join(ruler)}"]
    for lane in layout.lanes:
        for r, row in enumerate(lane.rows):
            cells = [" "] * cols
            for col, stop, bar in render_row(row, view, cols, until):
                cells[col:stop] = GLYPHS.get(bar.state, "?") * (stop - col)
            label = visible(lane.key)[:gutter] if r == 0 else ""
            lines.append(f"{label:{gutter}} {''.join(cells)}".rstrip())
        if lane.hidden:
            lines.append(f"{'':{gutter}} +{lane.hidden:,} overlapping tasks not drawn")
    lanes = len(layout.lanes)
    lines.append(f"{counted(layout.bars, 'task')} in {lanes:,} {layout.grouping} lane"
                 f"{'' if lanes == 1 else 's'}"
                 f"{f', {layout.untimed:,} never received' if layout.untimed else ''}"
                 f"{f', {layout.skewed:,} ended before they started' if layout.skewed else ''}"
                 f"   = success  X failure  r retry  - revoked  > running  . received")
    if not layout.bars:
        return [f"no task ran between {clock_time(since)} and {clock_time(until)}"]
    return lines
