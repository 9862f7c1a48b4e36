"""Timeline pane speed with 100,000 tasks in view: one frame of the pane (ruler, every visible
lane row, the status line) as prompt_toolkit asks for it, zoomed to fit everything, zoomed in,
and with the lanes per queue; the layout's rebuild (what a change of the task list costs, at most
once a second); and, as references measured in the same run, the same rows drawn by walking
every bar in view (what a renderer without the per-column bisection does) and the task pane's
frame over the same tasks (bench_tui.py measured it on a quiet machine: it tells how loaded the
machine is now). The drawing before the fused row renderer and the row cache
(tests/timeline_reference) is timed alternated with today's, frame for frame, in the same run.
Prints a markdown table of medians.

    .venv/bin/python bench/bench_timeline.py [--copies 34] [--repeats 21]

The tasks are copies of the recorded real stream (tests/data/recorded/redis, 3,000 tasks on two
worker processes of -c 2) with fresh task ids, the copies' times interleaved across the same
hour (so every lane row holds thousands of bars), applied through the TaskIndex the dashboard
uses. The terminal is 160 x 45.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lazycelery.core.index import TaskIndex  # noqa: E402
from lazycelery.core.timeline import Row, View  # noqa: E402

RECORDED = ROOT / "tests" / "data" / "recorded" / "redis" / "events.jsonl.gz"
COLUMNS, ROWS = 160, 45


def events(copies: int) -> list[dict[str, Any]]:
    """``copies`` of the recorded task events, fresh ids, each copy on workers of its own
    and shifted by a hundredth of the recording's length (every copy's lanes span the view)."""
    with gzip.open(RECORDED, "rt") as fh:
        template = [json.loads(line) for line in fh]
    template = [e for e in template if e["type"].startswith("task-")]
    first = template[0]["timestamp"]
    span = template[-1]["timestamp"] - first
    base = time.time() - 3600 - first
    out: list[dict[str, Any]] = []
    for copy in range(copies):
        fresh: dict[str, str] = {}
        shift = base + copy * span / 100
        for e in template:
            d = dict(e)
            d["uuid"] = fresh.setdefault(e["uuid"], str(uuid.uuid4()))
            d["timestamp"] = e["timestamp"] + shift
            d["hostname"] = f"c{copy:02d}-{e['hostname']}"
            out.append(d)
    return out


def naive_row(row: Row, view: View, width: int, now: float) -> list[tuple[int, int, Any]]:
    """The reference: every bar of the row that meets the view, drawn over the previous."""
    out = []
    for bar in row.bars:
        end = bar.end_at(now)
        if end < view.start or bar.start > view.end:
            continue
        first = max(0, int(view.column(bar.start, width)))
        out.append((first, min(width, max(first + 1, int(view.column(end, width)) + 1)), bar))
    return out


def alternated_ms(fns: list[Callable[[], object]], repeats: int) -> list[tuple[float, float]]:
    """(wall, CPU) medians of ``fns`` called in turn ``repeats`` times (the load hits them
    alike). The CPU time (this thread's) is what the frame costs; the wall time adds the
    waits for a core on a shared machine."""
    times: list[list[tuple[float, float]]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, out in zip(fns, times, strict=True):
            cpu, start = time.thread_time(), time.perf_counter()
            fn()
            out.append((time.perf_counter() - start, time.thread_time() - cpu))
    return [(statistics.median(w for w, _ in t) * 1000, statistics.median(c for _, c in t) * 1000)
            for t in times]


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=34)
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    from prompt_toolkit.application.current import set_app

    from lazycelery.tui.screen.sources import DashboardInfo
    from tests.tui_harness import SizedOutput, headless_dashboard

    stream = events(args.copies)
    index = TaskIndex(max_tasks=len(stream))
    with headless_dashboard(index, DashboardInfo(), SizedOutput(ROWS, COLUMNS)) as (d, _inp):
        for i in range(0, len(stream), 500):
            batch = stream[i:i + 500]
            d.on_batch(batch, index.apply_batch(batch))
        d.screen.pull()
        d.screen.tasks.settle()
        d.screen.ui.pane = "timeline"
        view = d.plugins.view("timeline")
        lanes = view.body.content  # type: ignore[attr-defined]
        model = d.screen.timeline
        model.threaded = False  # builds here: the bench times frames, and builds apart
        def rebuild() -> None:
            model._built = None
            model.refresh(force=True)  # on the caller's thread, to time it

        built = median_ms(rebuild, 3)
        copied = median_ms(d.screen.tasks.snapshot, args.repeats)
        model.fit()
        in_view = model.layout.bars
        shape = f"{len(model.layout.lanes)} x {len(model.layout.rows)}"
        height = ROWS - 8  # header, title, status line and footer take the rest

        def frame() -> None:
            view.forget()  # type: ignore[attr-defined]  # a frame after a change: drawn whole
            with set_app(d.app):
                d.app.render_counter += 1
                content = lanes.create_content(COLUMNS, height)
                for y in range(content.line_count):
                    content.get_line(y)

        def reference() -> None:
            now = model.now()
            for dd in model.visible_rows(height - 1):
                naive_row(model.layout.row(dd), model.view, COLUMNS - 23, now)

        if "--profile" in sys.argv:
            import cProfile
            cProfile.runctx("for _ in range(5): frame()", globals(), locals(), sort="cumtime")
        table = d.plugins.view("tasks").table  # type: ignore[attr-defined]

        def task_pane() -> None:
            # the task pane's frame over the same 100,000 tasks: bench_tui.py's "render task
            # pane", 0.4 ms on a quiet machine (docs/performance.md): the machine's speed now
            with set_app(d.app):
                content = table.create_content(COLUMNS, 41)
                for y in range(content.line_count):
                    content.get_line(y)

        from lazycelery.tui.panes.timeline import GUTTER
        from tests.timeline_reference import timeline_lines as before_lines

        def before() -> None:
            # the same body drawn by the code before (no fused renderer, no row cache)
            with set_app(d.app):
                d.app.render_counter += 1
                model.refresh()
                lines = before_lines(model, COLUMNS, height)
                for y in range(len(lines)):
                    lines[y].copy()  # get_line's share

        frame()
        before()
        task_pane()
        results: list[tuple[str, str]] = []

        def changed(name: str) -> None:
            (wall, cpu), (wall0, cpu0) = alternated_ms([frame, before], args.repeats)
            results.append((f"{name}: today / before (same run), wall time",
                            f"**{wall:.1f} ms** / {wall0:.1f} ms ({wall / wall0:.2f}x)"))
            results.append(("  the same, CPU time of the UI thread",
                            f"**{cpu:.1f} ms** / {cpu0:.1f} ms ({cpu / cpu0:.2f}x)"))

        tasks_ms = median_ms(task_pane, args.repeats)
        changed("frame after a change (zoom, pan, new layout), all in view (fit)")
        fit_ms = median_ms(frame, args.repeats)

        def unchanged() -> None:
            with set_app(d.app):
                d.app.render_counter += 1
                content = lanes.create_content(COLUMNS, height)
                for y in range(content.line_count):
                    content.get_line(y)

        unchanged()
        same_ms = median_ms(unchanged, args.repeats)
        ref_ms = median_ms(reference, args.repeats)

        def moved() -> None:
            # a selection move: the frame is new, the rows without the old or new selection
            # are the row cache's
            model.move(1 if model.selected_row() < len(model.layout.rows) - 2 else -1)
            unchanged()

        moved()
        move_ms = median_ms(moved, args.repeats)
        model.move(1)
        changed("the same, a task selected")
        model.zoom_in()
        model.zoom_in()
        changed("the same, zoomed in 4x")
        model.toggle_grouping()
        model.fit()
        changed("the same, lanes per queue (1 lane x 16 rows)")
        results += [
            ("tasks laid out / in view", f"{len(index):,} / {in_view:,}"),
            ("lanes (worker processes) x rows", shape),
            ("frame, all in view, nothing changed (the lines reused)", f"{same_ms:.2f} ms"),
            ("frame after the selection moved (two rows drawn, the others the row cache's)",
             f"{move_ms:.2f} ms"),
            ("reference: the same rows walking every bar in view", f"{ref_ms:.1f} ms"),
            ("ratio frame (fit) / reference", f"{fit_ms / ref_ms:.2f}x"),
            ("layout rebuild (per change of the list, at most 1/s)", f"{built:.0f} ms"),
            ("its share on the UI thread: the copy of the list", f"{copied:.1f} ms"),
            ("machine reference: the task pane's frame, same tasks (0.4 ms when quiet)",
             f"{tasks_ms:.2f} ms"),
            ("ratio timeline frame (fit) / task pane frame", f"{fit_ms / tasks_ms:.0f}x"),
            ("body columns", f"{COLUMNS - GUTTER - 1}"),
        ]
    print("| measure | value |\n|---|---|")
    for name, value in results:
        print(f"| {name} | {value} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
