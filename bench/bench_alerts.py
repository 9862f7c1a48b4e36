"""Alert rule evaluation cost: 200 rules beside an index of 1M tasks, fed a 30,000 events/s
stream (the recorded Redis stream, re-identified) through the same hook the ingest calls.
Prints a markdown table.

    .venv/bin/python bench/bench_alerts.py [--tasks 1000000] [--rules 200] [--rate 30000]
                                           [--seconds 10] [--repeats 5]

Measured per simulated second of stream, in one process (the two threads' work timed apart):
- ingest side: ``AlertRunner.on_batch`` (picks the events the rules read, copies their records,
  queues them) per event, against ``TaskIndex.apply_batch`` (the ingest's own work) on the
  same batches in the same run;
- alert thread: feeding the queued copies into the shared counters, per event;
- one tick (every rule checked once), against one filter scan of the 1M-task index (what a
  rule evaluated by scanning tasks would cost, per rule and tick).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lazycelery.alerts.engine import Evaluator  # noqa: E402
from lazycelery.alerts.rule import Rule  # noqa: E402
from lazycelery.alerts.runner import AlertRunner  # noqa: E402
from lazycelery.broker.model import QueueSnapshot, QueueStats  # noqa: E402
from lazycelery.core.index import TaskIndex  # noqa: E402
from lazycelery.core.query import compile_filter  # noqa: E402
from tests.replay import load_events  # noqa: E402

NAMES = ("benchapp.add", "benchapp.always_fail", "benchapp.flaky", "benchapp.process",
         "benchapp.sleepy", "benchapp.tsum")


def make_rules(n: int) -> list[Rule]:
    """A mix of every kind; 20 distinct task filters between them (as a real config might)."""
    filters = [f"name:{name}" for name in NAMES] + [
        f"name:benchapp.* queue:q{i}" for i in range(7)] + [
        f"name:{NAMES[i % 6]} -state:revoked" for i in range(7)]
    kinds: list[tuple[str, dict[str, Any]]] = [
        ("failures", {"count": 50.0}), ("failures", {"rate": 5.0}),
        ("failure_ratio", {"ratio": 0.2, "min_tasks": 100}),
        ("runtime_p95", {"threshold": 2.0}), ("periodic", {"interval": 60.0}),
        ("stuck_started", {"threshold": 600.0}), ("queue_depth", {"threshold": 1000.0}),
        ("queue_age", {"threshold": 60.0}), ("no_consumer", {}),
        ("worker_offline", {}), ("ingest_gap", {"threshold": 5.0}),
    ]
    rules = []
    for i in range(n):
        kind, extra = kinds[i % len(kinds)]
        rules.append(Rule(name=f"r{i}", kind=kind, window=[60.0, 300.0][i % 2],
                          filter=filters[i % len(filters)], queue=f"q{i % 50}", **extra))
    return rules


def fill_index(n_tasks: int) -> TaskIndex:
    index = TaskIndex(max_tasks=n_tasks + 400_000)
    t0 = time.time() - 7200
    batch: list[dict[str, Any]] = []
    for i in range(n_tasks):
        uid = str(uuid.UUID(int=i))
        name = NAMES[i % 6]
        batch.append({"type": "task-received", "uuid": uid, "name": name, "args": "()",
                      "kwargs": "{}", "hostname": "w1@h", "timestamp": t0 + i * 0.001})
        batch.append({"type": "task-succeeded", "uuid": uid, "result": "1", "runtime": 0.01,
                      "hostname": "w1@h", "timestamp": t0 + i * 0.001 + 0.01})
        if len(batch) >= 10_000:
            index.apply_batch(batch)
            batch = []
    index.apply_batch(batch)
    return index


def stream(template: list[dict[str, Any]], n: int, start: float, rate: float,
           copy: int) -> list[dict[str, Any]]:
    """``n`` events of the recorded stream with fresh task ids, stamped ``rate`` per second."""
    out = []
    ids: dict[str, str] = {}
    for i in range(n):
        src = template[i % len(template)]
        event = dict(src)
        if "uuid" in event:
            key = f"{copy}-{i // len(template)}-{event['uuid']}"
            event["uuid"] = ids.setdefault(key, str(uuid.uuid4()))
        event["timestamp"] = start + i / rate
        out.append(event)
    return out


def snapshot(now: float) -> QueueSnapshot:
    return QueueSnapshot(taken_at=now, source="bench", queues=tuple(
        QueueStats(name=f"q{i}", ready=i * 10, consumers=1, oldest_age_s=1.0)
        for i in range(50)))


def one_run(index: TaskIndex, rules: list[Rule], template: list[dict[str, Any]],
            rate: int, seconds: int, copy: int) -> dict[str, float]:
    now = time.time()
    evaluator = Evaluator(rules, now=now, say=lambda line: None)
    runner = AlertRunner(evaluator, clock=lambda: clock[0])
    clock = [now]
    events = stream(template, rate * seconds, now, rate, copy)
    apply_s = hook_s = feed_s = 0.0
    ticks: list[float] = []
    per_second = rate
    for second in range(seconds):
        chunk = events[second * per_second:(second + 1) * per_second]
        for start in range(0, len(chunk), 512):
            batch = chunk[start:start + 512]
            clock[0] = batch[-1]["timestamp"]
            t = time.perf_counter()
            records = index.apply_batch(batch)
            t2 = time.perf_counter()
            runner.on_batch(batch, records)
            t3 = time.perf_counter()
            apply_s += t2 - t
            hook_s += t3 - t2
        runner.on_queues(snapshot(clock[0]))
        t = time.perf_counter()
        runner.step(clock[0])  # drain + feed + one tick + publish (in memory)
        step = time.perf_counter() - t
        t = time.perf_counter()
        evaluator.tick(clock[0])  # the tick alone, measured again on its own
        ticks.append(time.perf_counter() - t)
        feed_s += step - ticks[-1]
    n = rate * seconds
    return {"apply_us": apply_s / n * 1e6, "hook_us": hook_s / n * 1e6,
            "feed_us": feed_s / n * 1e6, "tick_ms": statistics.median(ticks) * 1e3,
            "lost": float(runner.lost), "firing": float(len(evaluator.firing()))}


def paced(index: TaskIndex, rules: list[Rule] | None, template: list[dict[str, Any]],
          rate: int, seconds: int, copy: int) -> dict[str, float]:
    """The ingest's own work (apply + hook) paced at ``rate`` events/s on one thread, the
    real alert thread (1 s ticks) beside it when ``rules`` is given: how far behind schedule
    the ingest fell (the GIL is shared), and the copies lost."""
    runner = None
    if rules is not None:
        runner = AlertRunner(Evaluator(rules, now=time.time(), say=lambda line: None),
                             queues=lambda: snapshot(time.time())).start()
    events = stream(template, rate * seconds, time.time(), rate, copy + 100)
    start = time.perf_counter()
    behind = 0.0
    for i in range(0, len(events), 512):
        due = start + i / rate
        wait = due - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        behind = max(behind, -wait)
        batch = events[i:i + 512]
        records = index.apply_batch(batch)
        if runner is not None:
            runner.on_batch(batch, records)
    elapsed = time.perf_counter() - start
    lost = 0.0
    if runner is not None:
        runner.stop()
        lost = float(runner.lost)
    return {"rate": len(events) / elapsed, "behind_ms": behind * 1e3, "lost": lost}


def scan_ms(index: TaskIndex) -> float:
    predicate = compile_filter("name:benchapp.always_fail state:failure")
    records = index.records()
    t = time.perf_counter()
    predicate.filter(records)
    return (time.perf_counter() - t) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--rules", type=int, default=200)
    parser.add_argument("--rate", type=int, default=30_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    gc.freeze()
    t = time.perf_counter()
    index = fill_index(args.tasks)
    print(f"index: {len(index):,} tasks in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    template = load_events("redis")
    rules = make_rules(args.rules)
    runs = [one_run(index, rules, template, args.rate, args.seconds, copy)
            for copy in range(args.repeats)]
    scans = [scan_ms(index) for _ in range(args.repeats)]
    with_rules, without = [], []
    for copy in range(3):  # alternated, so load changes hit both alike
        without.append(paced(index, None, template, args.rate, args.seconds, 2 * copy))
        with_rules.append(paced(index, rules, template, args.rate, args.seconds, 2 * copy + 1))

    def med(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    tick, scan = med("tick_ms"), statistics.median(scans)
    per_second_ms = (med("hook_us") + med("feed_us")) * args.rate / 1e3 + tick
    print(f"{args.rules} rules, {len(index):,} tasks in the index, {args.rate:,} events/s for "
          f"{args.seconds} s, medians of {args.repeats} runs\n")
    print("| measure | median | reference (same run) | ratio |")
    print("|---|---|---|---|")
    print(f"| ingest thread: alert hook per event (pick + copy + queue) | "
          f"{med('hook_us'):.2f} µs | index apply per event {med('apply_us'):.2f} µs | "
          f"{med('hook_us') / med('apply_us'):.2f}x |")
    print(f"| alert thread: feeding the counters per event | {med('feed_us'):.2f} µs | | |")
    print(f"| one tick, {args.rules} rules | {tick:.3f} ms | one filter scan of the index "
          f"{scan:.1f} ms | {scan / tick:,.0f}x cheaper than scanning once |")
    print(f"| per tick per rule | {tick / args.rules * 1e3:.2f} µs | | |")
    print(f"| alert work per second of stream (both threads) | {per_second_ms:.1f} ms "
          f"({per_second_ms / 10:.1f} % of a core) | | |")
    print(f"| copies lost (queue full) | {sum(r['lost'] for r in runs):.0f} | | |")

    def pmed(runs_: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in runs_)

    print(f"\nPaced at {args.rate:,} events/s for {args.seconds} s, ingest work on one thread, "
          "3 runs each, alternated (medians):\n")
    print("| ingest thread | events/s achieved | max behind schedule | copies lost |")
    print("|---|---|---|---|")
    for label, found in (("alone (reference)", without), ("beside the alert thread", with_rules)):
        print(f"| {label} | {pmed(found, 'rate'):,.0f} | {pmed(found, 'behind_ms'):.0f} ms | "
              f"{sum(r['lost'] for r in found):.0f} |")


if __name__ == "__main__":
    main()
