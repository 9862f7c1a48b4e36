"""Benchmark: RedisInspector.snapshot() over 10,000 prioritised queues vs per-key LLEN loops.

Fills a private Redis db with the layout kombu writes (binding sets, priority sub-lists with
real task envelopes, some unacked entries), then times, in the same run:

  naive      one LLEN per priority key, one round trip each (the pre-PR-1493 Flower way)
  pipeline   redis-py Pipeline with one LLEN per priority key (Flower 2.1)
  snapshot   RedisInspector.snapshot() with discovery cached (a monitor's steady state)
  one-shot   RedisInspector.snapshot() discovering queues first (what `lazycelery queues` does)

Usage: python bench/bench_queues.py --db 7 [--url redis://127.0.0.1:6379] [--queues 10000]
The db must be empty (or pass --force): it is flushed before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import redis

from lazycelery.broker.keys import RedisLayout
from lazycelery.broker.redis import RedisInspector

ENVELOPE = {
    "body": "W1sxLCAyXSwge30sIHsiY2FsbGJhY2tzIjogbnVsbCwgImVycmJhY2tzIjogbnVsbCwgImNoYWluIjogbnVsbCwg"
            "ImNob3JkIjogbnVsbH1d",
    "content-encoding": "utf-8", "content-type": "application/json",
    "headers": {"lang": "py", "task": "bench.add", "id": "", "shadow": None, "eta": None,
                "expires": None, "group": None, "group_index": None, "retries": 0,
                "timelimit": [None, None], "root_id": "", "parent_id": None,
                "argsrepr": "(1, 2)", "kwargsrepr": "{}", "origin": "gen1@bench",
                "ignore_result": False, "replaced_task_nesting": 0, "stamped_headers": None,
                "stamps": {}},
    "properties": {"correlation_id": "", "reply_to": "", "delivery_mode": 2,
                   "delivery_info": {"exchange": "", "routing_key": ""}, "priority": 0,
                   "body_encoding": "base64", "delivery_tag": ""},
}


def envelope(queue: str, n: int, priority: int) -> bytes:
    message: dict[str, Any] = json.loads(json.dumps(ENVELOPE))
    task_id = f"{queue}-{n}"
    message["headers"].update(id=task_id, root_id=task_id)
    message["properties"].update(correlation_id=task_id, priority=priority, delivery_tag=task_id)
    message["properties"]["delivery_info"]["routing_key"] = queue
    return json.dumps(message).encode()


def populate(client: redis.Redis, queues: int, unacked: int) -> int:
    """Every queue bound; 3 in 4 non-empty, spread over the priority steps. Returns messages."""
    layout = RedisLayout()
    total = 0
    pipe = client.pipeline(transaction=False)
    for i in range(queues):
        name = f"bench.q{i:05d}"
        member = layout.sep.join([name, "", name])
        pipe.sadd(f"_kombu.binding.{name}", member)
        for n in range(i % 4):
            priority = (i + n * 3) % 10
            pipe.lpush(layout.queue_key(name, layout.step_for(priority)),
                       envelope(name, n, priority))
            total += 1
        if i % 1000 == 999:
            pipe.execute()
    for n in range(unacked):
        name = f"bench.q{n % queues:05d}"
        pipe.hset("unacked", f"tag-{n}", json.dumps([json.loads(envelope(name, n, 0)), name,
                                                      name]))
    pipe.execute()
    return total


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="redis://127.0.0.1:6379")
    parser.add_argument("--db", type=int, required=True, help="a private, empty db")
    parser.add_argument("--queues", type=int, default=10_000)
    parser.add_argument("--unacked", type=int, default=500)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--naive-runs", type=int, default=3)
    parser.add_argument("--force", action="store_true", help="flush a non-empty db")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    url = f"{args.url.rstrip('/')}/{args.db}"
    client = redis.Redis.from_url(url)
    if client.dbsize() and not args.force:
        print(f"db {args.db} is not empty; pick another or pass --force", file=sys.stderr)
        return 2
    client.flushdb()
    try:
        messages = populate(client, args.queues, args.unacked)
        names = [f"bench.q{i:05d}" for i in range(args.queues)]
        layout = RedisLayout()
        keys = [k for name in names for k in layout.queue_keys(name)]

        def naive() -> int:
            return sum(int(client.llen(key)) for key in keys)

        def pipelined() -> int:
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.llen(key)
            return sum(pipe.execute())

        steady = RedisInspector(url, rediscover_s=3600)
        first = steady.snapshot()
        counted = sum(q.ready or 0 for q in first.queues)
        assert counted == messages == naive() == pipelined(), (counted, messages)
        assert len(first.queues) == args.queues
        assert sum(q.reserved or 0 for q in first.queues) == args.unacked

        fresh = RedisInspector(url, rediscover_s=0)
        results = [
            ("naive LLEN loop (reference)", f"{len(keys):,}", timed(naive, args.naive_runs)),
            ("redis-py Pipeline of LLEN", "1", timed(pipelined, args.runs)),
            ("snapshot(), discovery cached", "3: LLEN+HLEN, HSCAN, LINDEX tails",
             timed(steady.snapshot, args.runs)),
            ("snapshot() with discovery (CLI)", "+ SCAN pages, SMEMBERS",
             timed(fresh.snapshot, args.runs)),
        ]
        steady.close()
        fresh.close()
    finally:
        client.flushdb()
        client.close()

    print(f"{args.queues:,} queues x 4 priority keys = {len(keys):,} keys, {messages:,} "
          f"messages, {args.unacked} unacked; Redis {url.rsplit('/', 1)[0]}; "
          f"Python {platform.python_version()}; median of {args.runs} "
          f"({args.naive_runs} for the loop); {os.cpu_count()} CPUs, load average "
          f"{load_before:.2f} -> {os.getloadavg()[0]:.2f}\n")
    print("| method | round trips | median ms | min ms | max ms |")
    print("|---|---|---:|---:|---:|")
    for name, trips, samples in results:
        print(f"| {name} | {trips} | {statistics.median(samples):.1f} | {min(samples):.1f} | "
              f"{max(samples):.1f} |")
    reference = statistics.median(results[0][2])
    steady_ms = statistics.median(results[2][2])
    print(f"\nsnapshot() is {reference / steady_ms:.0f}x faster than the per-key loop.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
