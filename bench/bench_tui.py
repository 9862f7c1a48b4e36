"""Dashboard speed with a million tasks: task-pane render, filters, keystroke to screen, idle CPU,
and keystrokes while ingesting 5,000 events/s. Prints a table (targets from issue 4).

    .venv/bin/python bench/bench_tui.py              # 1,000,000 tasks (about 1 GB, ~1 min)
    .venv/bin/python bench/bench_tui.py --tasks 100000 --quick

The tasks are synthesised from the recorded real event stream (tests/data/recorded/redis) with
fresh task ids and shifted times, applied through the same TaskIndex the dashboard uses. The
app runs for real on a pipe input with an output that records when each frame is flushed.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import gzip
import json
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from prompt_toolkit.data_structures import Size
from prompt_toolkit.input import PipeInput, create_pipe_input
from prompt_toolkit.output import DummyOutput

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lazycelery.core.index import TaskIndex  # noqa: E402
from lazycelery.tui.app import Dashboard  # noqa: E402

RECORDED = ROOT / "tests" / "data" / "recorded" / "redis" / "events.jsonl.gz"
FILTERS = ("state:failure", "name:*.add", "-state:success worker:rec1*", "runtime>0.05s",
           "payload", 're:"bad pay(load)?"', "since:10m")


class TimedOutput(DummyOutput):
    """Records the time of every flushed frame (the renderer flushes once per frame)."""

    def __init__(self, rows: int, columns: int) -> None:
        self.size = Size(rows=rows, columns=columns)
        self.flushes: list[float] = []

    def get_size(self) -> Size:
        return self.size

    def flush(self) -> None:
        self.flushes.append(time.perf_counter())


def recorded_task_events() -> list[dict[str, Any]]:
    with gzip.open(RECORDED, "rt") as fh:
        events = [json.loads(line) for line in fh]
    return [e for e in events if e["type"].startswith("task-")]


def synthesise(template: list[dict[str, Any]], copies: Iterator[int]) -> Iterator[list[dict[str, Any]]]:
    """One batch of events per copy of the recording, with fresh ids and times shifted by
    the recording's length per copy (so copies do not interleave)."""
    first = template[0]["timestamp"]
    span = template[-1]["timestamp"] - first + 1.0
    ids = sorted({e["uuid"] for e in template})
    for copy in copies:
        fresh = {old: str(uuid.uuid4()) for old in ids}
        shift = copy * span
        batch = []
        for e in template:
            d = dict(e)
            d["uuid"] = fresh[e["uuid"]]
            for key in ("parent_id", "root_id"):
                if d.get(key):
                    d[key] = fresh.get(d[key], d[key])
            d["timestamp"] = e["timestamp"] + shift
            d["local_received"] = e.get("local_received", e["timestamp"]) + shift
            batch.append(d)
        yield batch


def build_index(n_tasks: int) -> TaskIndex:
    template = recorded_task_events()
    per_copy = len({e["uuid"] for e in template})
    copies = -(-n_tasks // per_copy)
    index = TaskIndex(max_tasks=n_tasks)
    started = time.perf_counter()
    for i, batch in enumerate(synthesise(template, iter(range(copies)))):
        index.apply_batch(batch)
        if i % 50 == 0:
            print(f"\r  building: {len(index):,} tasks", end="", file=sys.stderr, flush=True)
    print(f"\r  built {len(index):,} tasks in {time.perf_counter() - started:.1f} s",
          file=sys.stderr)
    return index


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


class Bench:
    def __init__(self, index: TaskIndex, rows: int, columns: int) -> None:
        self.index = index
        self.output = TimedOutput(rows, columns)
        self.rows: list[tuple[str, str, str, str]] = []

    def add(self, what: str, median: str, p95: str = "", target: str = "") -> None:
        self.rows.append((what, median, p95, target))
        print(f"  {what:<48} {median:>12} {p95:>12}  {target}", file=sys.stderr)

    # ------------------------------------------------------------------ pieces

    def render_pane(self, d: Dashboard, repeat: int) -> None:
        """The task pane's UIControl producing a screen of rows, selection moving."""
        table = d.controls.tasks
        size = self.output.get_size()
        times = []
        for i in range(repeat):
            d.tasks.select_index((i * 7) % 5000)
            t = time.perf_counter()
            content = table.create_content(size.columns, size.rows - 8)
            for line in range(content.line_count):
                content.get_line(line)
            times.append(time.perf_counter() - t)
        self.add(f"render task pane ({table.rendered_rows} rows × {size.columns} cols)",
                 ms(statistics.median(times)), ms(pct(times, 0.95)), "≤ 16 ms")

    def filters(self, d: Dashboard) -> None:
        view = d.tasks
        page = d.controls.tasks.page_rows
        for text in FILTERS:
            gc.collect()
            t = time.perf_counter()
            view.set_filter(text)
            while view.busy and len(view) < page:
                view.step(0.015)
            first = time.perf_counter() - t
            view.settle()
            total = time.perf_counter() - t
            self.add(f"filter {text!r}: first screen / all ({len(view):,})",
                     ms(first), ms(total), "≤ 200 ms")
            view.set_filter("")

    async def keystrokes(self, d: Dashboard, inp: PipeInput, n: int,
                         label: str, target: str) -> None:
        times = []
        for i in range(n):
            before = len(self.output.flushes)
            t = time.perf_counter()
            inp.send_text("j" if i % 2 == 0 else "k")
            while len(self.output.flushes) == before or self.output.flushes[-1] < t:
                await asyncio.sleep(0.0005)
            times.append(self.output.flushes[-1] - t)
            await asyncio.sleep(0.05)
        self.add(label, ms(statistics.median(times)), ms(pct(times, 0.95)), target)

    async def idle_cpu(self, seconds: float) -> None:
        await asyncio.sleep(1.0)
        cpu, wall = time.process_time(), time.perf_counter()
        frames = len(self.output.flushes)
        await asyncio.sleep(seconds)
        used = (time.process_time() - cpu) / (time.perf_counter() - wall)
        frames = len(self.output.flushes) - frames
        self.add(f"idle CPU, no events ({seconds:.0f} s, {frames} frames)",
                 f"{used * 100:8.2f} %", "", "≤ 2 %")

    async def while_ingesting(self, d: Dashboard, inp: PipeInput, rate: int,
                              seconds: float, n: int) -> None:
        template = recorded_task_events()
        per_copy = len(template)
        copies = -(-int(rate * (seconds + 5)) // per_copy)
        events = [e for batch in synthesise(template, iter(range(10_000, 10_000 + copies)))
                  for e in batch]
        stop = threading.Event()
        applied = [0]

        def ingest() -> None:  # the single writer, paced at `rate` events/s in 10 ms batches
            step = max(1, rate // 100)
            start = time.perf_counter()
            k = 0
            while not stop.is_set() and k < len(events):
                batch = events[k:k + step]
                d.on_batch(batch, self.index.apply_batch(batch))
                k += step
                applied[0] = k
                delay = start + k / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)

        thread = threading.Thread(target=ingest, daemon=True)
        started = time.perf_counter()
        thread.start()
        await asyncio.sleep(1.0)
        await self.keystrokes(d, inp, n, f"keystroke → screen while ingesting {rate:,} ev/s",
                              "≤ 100 ms")
        stop.set()
        thread.join()
        achieved = applied[0] / (time.perf_counter() - started)
        self.add("  (ingest rate achieved)", f"{achieved:8.0f} /s")

    # ------------------------------------------------------------------ run

    def run(self, quick: bool) -> None:
        with create_pipe_input() as inp:
            t = time.perf_counter()
            d = Dashboard(self.index, input=inp, output=self.output, refresh_interval=1.0)
            self.add("dashboard start-up (arrival order of the index)",
                     ms(time.perf_counter() - t))
            d.pull()
            d.controls.tasks.create_content(self.output.size.columns, self.output.size.rows - 8)

            async def main() -> None:
                app_task = asyncio.ensure_future(d.app.run_async())
                while not d.app.is_running:
                    await asyncio.sleep(0.01)
                await asyncio.sleep(0.3)
                self.render_pane(d, 50 if quick else 300)
                await self.keystrokes(d, inp, 20 if quick else 60, "keystroke → screen (j/k)",
                                      "≤ 50 ms")
                self.filters(d)
                await self.idle_cpu(3.0 if quick else 10.0)
                await self.while_ingesting(d, inp, 5000, 6.0 if quick else 12.0,
                                           20 if quick else 60)
                d.app.exit(result=0)
                await app_task

            asyncio.run(main())

    def table(self, n_tasks: int) -> str:
        size = self.output.size
        lines = [f"lazycelery dashboard, {n_tasks:,} tasks in the index, "
                 f"{size.columns}×{size.rows} terminal, Python {sys.version.split()[0]}",
                 "",
                 f"| {'measure':<60} | {'median':>11} | {'p95 / all':>11} | target |",
                 f"|{'-' * 62}|{'-' * 13}|{'-' * 13}|--------|"]
        for what, median, p95, target in self.rows:
            lines.append(f"| {what:<60} | {median.strip():>11} | {p95.strip():>11} | "
                         f"{target} |")
        return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--rows", type=int, default=50)
    parser.add_argument("--columns", type=int, default=160)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args(argv)
    index = build_index(args.tasks)
    gc.collect()
    gc.freeze()  # a million long-lived records: keep them out of every later collection
    bench = Bench(index, args.rows, args.columns)
    bench.run(args.quick)
    print(bench.table(len(index)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


_: Callable[..., Any] = main
