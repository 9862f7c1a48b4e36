"""Error analysis speed: failures into groups per second (against the TaskIndex applying the
same events, measured in the same run), the errors pane's frame with 100,000 groups, and the
dashboard's per-frame intake with and without the error groups. Prints a markdown table.

    .venv/bin/python bench/bench_errors.py [--failures 200000] [--groups 100000] [--repeats 5]
                                           [--copies 5] [--grouping-only] [--pane-only]

The grouping is measured twice in the same run, alternated: today's code and the code before it
was made faster (tests/analysis_reference, a verbatim copy; tests/test_analysis_equivalence.py
proves both give the same fingerprints and groups).

The failures are the recorded real ones (tests/data/errors) with fresh task ids and the numbers
in their messages and tracebacks changed per copy (50,000 failures: 25,341 distinct texts; the
exact-text fingerprint cache cannot help those) while their fingerprints stay those of the recording.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lazycelery.analysis import ErrorGroups  # noqa: E402
from lazycelery.core.index import TaskIndex  # noqa: E402
from tests.analysis_reference.groups import ErrorGroups as ReferenceGroups  # noqa: E402

EVENTS = ROOT / "tests" / "data" / "errors" / "events.jsonl.gz"
_NUM = re.compile(r"(?<=order )\d+|(?<=user )\d+|(?<=:)\d{4,5}\b")


def load() -> list[dict[str, Any]]:
    with gzip.open(EVENTS, "rt") as f:
        return [json.loads(line) for line in f]


def stream(n_failures: int) -> list[dict[str, Any]]:
    """task-received + task-failed pairs, copies of the recorded failures with fresh ids and
    changed numbers."""
    events = load()
    names = {e["uuid"]: e for e in events if e["type"] == "task-received"}
    failed = [e for e in events if e["type"] in ("task-failed", "task-retried")
              and e["uuid"] in names]
    out: list[dict[str, Any]] = []
    rng = random.Random(7)
    t = time.time() - 3600
    for i in range(n_failures):
        src = failed[i % len(failed)]
        uid = str(uuid.uuid4())
        n = str(rng.randrange(10_000, 99_999))
        received = {**names[src["uuid"]], "uuid": uid, "timestamp": t}
        fail = {**src, "uuid": uid, "timestamp": t + 0.01,
                "exception": _NUM.sub(n, src["exception"]),
                "traceback": _NUM.sub(n, src.get("traceback", ""))}
        out += [received, fail]
        t += 0.001
    return out


def best_of(fn: Any, repeats: int) -> list[float]:
    return [fn() for _ in range(repeats)]


def bench_grouping(events: list[dict[str, Any]], repeats: int) -> dict[str, float]:
    def index_only() -> float:
        index = TaskIndex(max_tasks=len(events))
        start = time.perf_counter()
        for i in range(0, len(events), 500):
            index.apply_batch(events[i:i + 500])
        return time.perf_counter() - start

    index = TaskIndex(max_tasks=len(events))
    batches = []
    for i in range(0, len(events), 500):
        chunk = events[i:i + 500]
        batches.append((chunk, index.apply_batch(chunk)))

    cpu: list[float] = []  # this thread's CPU time of today's grouping (no waits for a core)

    def grouped(cls: Any) -> float:
        groups = cls()
        start, thread = time.perf_counter(), time.thread_time()
        for chunk, records in batches:
            groups.observe_batch(chunk, records)
        if cls is ErrorGroups:
            cpu.append(time.thread_time() - thread)
        return time.perf_counter() - start

    failures = len(events) // 2
    idx = statistics.median(best_of(index_only, repeats))
    # the code before the speed-up (tests/analysis_reference) and today's, alternated
    ref_times: list[float] = []
    grp_times: list[float] = []
    for _ in range(repeats):
        ref_times.append(grouped(ReferenceGroups))
        grp_times.append(grouped(ErrorGroups))
    grp, ref = statistics.median(grp_times), statistics.median(ref_times)
    return {"failures": failures, "index_events_per_s": len(events) / idx,
            "grouping_failures_per_s": failures / grp, "grouping_s": grp, "index_s": idx,
            "reference_failures_per_s": failures / ref, "reference_s": ref,
            "grouping_failures_per_cpu_s": failures / statistics.median(cpu)}


def bench_pane(n_groups: int, repeats: int) -> dict[str, float]:
    """The errors pane's own drawing (its table's visible rows and the selected group's box),
    as prompt_toolkit asks for it each frame, with ``n_groups`` groups."""
    from prompt_toolkit.application.current import set_app

    from lazycelery.tui.screen.sources import DashboardInfo
    from tests.tui_harness import SizedOutput, headless_dashboard

    index = TaskIndex()
    with headless_dashboard(index, DashboardInfo(), SizedOutput(50, 200)) as (d, _inp):
        groups = d.screen.errors.groups
        t = time.time() - 600
        for i in range(n_groups):
            groups.observe({"type": "task-failed", "uuid": str(uuid.uuid4()),
                            "timestamp": t + i * 0.001, "hostname": f"w{i % 7}@h",
                            "exception": f"E{i}Error('x {i}')"})
        d.screen.ui.pane = "errors"
        view = d.plugins.view("errors")
        info_control = view.container().get_children()[-1].content  # type: ignore[attr-defined]

        cpu: list[float] = []

        def frame() -> float:
            with set_app(d.app):  # as in a running dashboard (no stand-in app per call)
                start, thread = time.perf_counter(), time.thread_time()
                content = view.table.create_content(200, 40)  # type: ignore[attr-defined]
                for y in range(content.line_count):
                    content.get_line(y)
                info_control.create_content(200, 10)
                # the CPU time of this thread: the frame's own cost, without the waits for a
                # core on a shared machine
                cpu.append(time.thread_time() - thread)
                return time.perf_counter() - start

        frame()  # first frame: ranks and clusters
        cpu.clear()
        after = []
        for _ in range(repeats):
            groups.observe({"type": "task-failed", "uuid": str(uuid.uuid4()),
                            "timestamp": time.time(), "hostname": "w1@h",
                            "exception": "E1Error('x 1')"})
            d.screen.errors._ranked_at = 0.0  # the re-rank is due this frame
            d.app.render_counter += 1  # a new frame for FormattedTextControl's cache
            after.append(frame())
        after_cpu = list(cpu)
        cpu.clear()
        steady = []
        for _ in range(repeats):
            d.app.render_counter += 1
            steady.append(frame())
    return {"groups": n_groups, "frame_ms": statistics.median(steady) * 1000,
            "frame_after_rerank_ms": statistics.median(after) * 1000,
            "frame_after_rerank_cpu_ms": statistics.median(after_cpu) * 1000,
            "frame_cpu_ms": statistics.median(cpu) * 1000}


def bench_pull(copies: int, repeats: int) -> dict[str, float]:
    """The dashboard's per-frame intake (``ScreenModel.pull``: rates, task list, error groups)
    of the recorded mixed stream (tests/data/recorded/redis, ~13 % failures), with and without
    the error groups, in batches of 200 events."""
    from lazycelery.tui.screen.model import ScreenModel

    with gzip.open(ROOT / "tests" / "data" / "recorded" / "redis" / "events.jsonl.gz",
                   "rt") as f:
        base = [json.loads(line) for line in f]
    events: list[dict[str, Any]] = []
    for _ in range(copies):
        fresh: dict[str, str] = {}
        for e in base:
            e = dict(e)
            for k in ("uuid", "root_id", "parent_id"):
                if isinstance(e.get(k), str):
                    e[k] = fresh.setdefault(e[k], str(uuid.uuid4()))
            events.append(e)

    def run(with_errors: bool) -> float:
        index = TaskIndex(max_tasks=len(events))
        screen = ScreenModel(index)
        if not with_errors:
            screen.errors.feed = lambda batch: None  # type: ignore[method-assign]
        spent = 0.0
        for i in range(0, len(events), 200):
            batch = events[i:i + 200]
            screen.feed.push(batch, index.apply_batch(batch))
            start = time.perf_counter()
            screen.pull()
            spent += time.perf_counter() - start
        return spent

    without = statistics.median(run(False) for _ in range(repeats))
    with_groups = statistics.median(run(True) for _ in range(repeats))
    return {"events": len(events), "without_us": without / len(events) * 1e6,
            "with_us": with_groups / len(events) * 1e6}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--failures", type=int, default=200_000)
    parser.add_argument("--groups", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--copies", type=int, default=5,
                        help="copies of the recorded mixed stream for the dashboard intake")
    parser.add_argument("--grouping-only", action="store_true",
                        help="only the failures-into-groups rows (reference and today's)")
    parser.add_argument("--pane-only", action="store_true",
                        help="only the errors pane's frames")
    args = parser.parse_args()
    if args.pane_only:
        p = bench_pane(args.groups, args.repeats)
        print(f"| errors pane frame, {p['groups']:,} groups: nothing changed, wall / CPU; after "
              f"a failure, wall / CPU | {p['frame_ms']:.1f} / {p['frame_cpu_ms']:.1f} ms; "
              f"{p['frame_after_rerank_ms']:.1f} / {p['frame_after_rerank_cpu_ms']:.1f} ms |")
        return 0
    events = stream(args.failures)
    g = bench_grouping(events, args.repeats)
    if args.grouping_only:
        p = {"groups": 0, "frame_ms": 0.0, "frame_after_rerank_ms": 0.0,
             "frame_after_rerank_cpu_ms": 0.0, "frame_cpu_ms": 0.0}
        u = {"events": 0, "with_us": 0.0, "without_us": 1.0}
    else:
        p = bench_pane(args.groups, args.repeats)
        u = bench_pull(args.copies, args.repeats)
    print("| measure | median | reference (same run) | ratio |")
    print("|---|---|---|---|")
    print(f"| failures into groups ({g['failures']:,} real failures, distinct texts) | "
          f"{g['grouping_failures_per_s']:,.0f} failures/s | TaskIndex.apply_batch of the same "
          f"stream: {g['index_events_per_s']:,.0f} events/s | "
          f"{g['grouping_s'] / g['index_s']:.2f}x the index's time |")
    print(f"| the same per second of CPU time (the UI thread's own, without the waits for a "
          f"core) | {g['grouping_failures_per_cpu_s']:,.0f} failures/s | | |")
    print(f"| failures into groups, the code before the speed-up (tests/analysis_reference), "
          f"same stream | {g['reference_failures_per_s']:,.0f} failures/s | today's: "
          f"{g['grouping_failures_per_s']:,.0f} failures/s | today's is "
          f"{g['reference_s'] / g['grouping_s']:.2f}x as fast |")
    print(f"| errors pane frame, {p['groups']:,} groups (nothing changed) | "
          f"{p['frame_ms']:.1f} ms | | |")
    print(f"| errors pane frame, {p['groups']:,} groups, after a failure (re-rank + "
          f"clusters of the top 2,000) | {p['frame_after_rerank_ms']:.1f} ms | CPU time: "
          f"{p['frame_after_rerank_cpu_ms']:.1f} ms | |")
    print(f"| dashboard intake (ScreenModel.pull) per event, {u['events']:,} recorded mixed "
          f"events, with error groups | {u['with_us']:.1f} µs | without: {u['without_us']:.1f} µs"
          f" | {u['with_us'] / u['without_us']:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
