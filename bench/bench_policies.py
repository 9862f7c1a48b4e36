"""What auto-retry policies cost the ingest thread: ``PolicyEngine.on_batch`` over the recorded
Redis stream (12,399 events, 121 failures) replayed in batches, with 1, 20 and 200 retry rules,
beside ``TaskIndex.apply_batch`` on the same batches (the reference, same run), both as this
thread's CPU time so that the machine's other load does not count. The engine's own thread is
not started: this is the cost the ingest pays. Prints medians of --runs runs in ns per event.

    .venv/bin/python bench/bench_policies.py [--runs 15] [--batch 256]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lazycelery.core.index import TaskIndex
from lazycelery.policies.engine import PolicyEngine
from lazycelery.policies.rules import PolicyConfig, RetryRule
from lazycelery.policies.switch import PauseSwitch
from tests.replay import load_events


def rules(n: int) -> PolicyConfig:
    made = [RetryRule(name=f"r{i}", task=f"other.task{i}.*", exception="*", fingerprint=None,
                      max_attempts=3, backoff=30, max_backoff=600, queue=None)
            for i in range(n - 1)]
    made.append(RetryRule(name="hit", task="benchapp.always_*", exception="ValueError",
                          fingerprint=None, max_attempts=3, backoff=30, max_backoff=600,
                          queue=None))
    return PolicyConfig(retry=tuple(made), rate=1000.0, dry_run=True)


def run_once(events: list[dict[str, object]], batch: int,
             engine: PolicyEngine) -> tuple[float, float]:
    """CPU time (this thread's: the machine's other load does not count) per event of
    ``apply_batch`` and of ``on_batch``, timed around each call of the same replay."""
    index = TaskIndex(max_tasks=100_000)
    apply_ns = policy_ns = 0
    clock = time.thread_time_ns
    for i in range(0, len(events), batch):
        chunk = events[i:i + batch]
        t0 = clock()
        records = index.apply_batch(chunk)
        t1 = clock()
        engine.on_batch(chunk, records)
        policy_ns += clock() - t1
        apply_ns += t1 - t0
    return apply_ns / len(events), policy_ns / len(events)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    events = load_events("redis")
    tmp = Path(tempfile.mkdtemp())
    print(f"{len(events):,} events, batches of {args.batch}, median of {args.runs} runs")
    print(f"{'rules':>6} {'apply_batch ns/ev':>18} {'on_batch ns/ev':>15} {'added':>7}")
    for n in (1, 20, 200):
        applied: list[float] = []
        policed: list[float] = []
        for _ in range(args.runs):
            engine = PolicyEngine(rules(n), lambda user: None,  # type: ignore[arg-type,return-value]
                                  switch=PauseSwitch(tmp / "switch.json"))
            a, p = run_once(events, args.batch, engine)
            applied.append(a)
            policed.append(p)
        a, p = statistics.median(applied), statistics.median(policed)
        print(f"{n:>6} {a:>18.0f} {p:>15.0f} {100 * p / a:>6.1f}%")

if __name__ == "__main__":
    main()
