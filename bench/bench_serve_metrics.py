"""`/metrics` render time with many workers and queues (the issue's aim: 1,000 workers and
10,000 queues in <= 100 ms), in process: the collector over a filled index, Flower counters
and a queue snapshot, rendered in the same run by
- ``MetricsWriter`` (what ``/metrics`` serves), warm: the queue snapshot unchanged since the last
  scrape (its text cached), and cold: a new snapshot object before every render;
- the previous writer (``render`` over the collector's families), the reference;
- prometheus_client's ``generate_latest``, the second reference.
Prints p50 / p95 of --renders renders each (--reference-renders for generate_latest).

    .venv/bin/python bench/bench_serve_metrics.py --names 0   # the issue's case
    .venv/bin/python bench/bench_serve_metrics.py [--workers 1000] [--queues 10000]
"""

from __future__ import annotations

import argparse
import os
import time

from celery import Celery

from lazycelery.broker.model import QueueSnapshot, QueueStats
from lazycelery.core.index import TaskIndex
from lazycelery.serve.metrics import MetricsWriter, registry_for, render, render_reference
from lazycelery.serve.service import Service


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=1000)
    parser.add_argument("--queues", type=int, default=10_000)
    parser.add_argument("--names", type=int, default=20, help="task names per worker")
    parser.add_argument("--renders", type=int, default=30)
    parser.add_argument("--reference-renders", type=int, default=10)
    args = parser.parse_args()
    index = TaskIndex()
    now = time.time()
    events = []
    for w in range(args.workers):
        host = f"celery@w{w}"
        events.append({"type": "worker-heartbeat", "hostname": host, "timestamp": now,
                       "local_received": now, "freq": 2.0, "active": w % 4, "processed": w})
        for n in range(args.names):
            uuid = f"{w}-{n}"
            events.append({"type": "task-received", "uuid": uuid, "name": f"proj.t{n}",
                           "hostname": host, "timestamp": now, "local_received": now})
            events.append({"type": "task-succeeded", "uuid": uuid, "hostname": host,
                           "runtime": 0.01 * n, "timestamp": now, "local_received": now})
    service = Service(app=Celery("b", broker="memory://", set_as_current=False), index=index,
                      environment="bench")
    service.counters.on_batch(events, index.apply_batch(events))
    queues = tuple(QueueStats(name=f"q{i}", ready=i, reserved=0, consumers=1,
                              by_priority={0: i, 3: 0, 6: 0, 9: 0}, oldest_age_s=1.0)
                   for i in range(args.queues))
    snapshot = QueueSnapshot(taken_at=time.time(), queues=queues, source="bench")
    service.queues = lambda: snapshot
    registry = registry_for(service)
    writer = MetricsWriter(service)
    current = [snapshot]
    service.queues = lambda: current[0]

    def cold() -> bytes:
        current[0] = QueueSnapshot(taken_at=snapshot.taken_at, queues=snapshot.queues,
                                   source="bench")
        return writer.render()

    for label, fn, renders in (
            ("serve MetricsWriter, warm (same snapshot)", writer.render, args.renders),
            ("serve MetricsWriter, cold (new snapshot each time)", cold, args.renders),
            ("previous writer (render), reference", lambda: render(registry), args.renders),
            ("prometheus_client.generate_latest", lambda: render_reference(registry),
             args.reference_renders)):
        times = []
        for _ in range(renders):
            t0 = time.perf_counter()
            body = fn()
            times.append(time.perf_counter() - t0)
        times.sort()
        lines = body.count(b"\n")
        print(f"/metrics with {args.workers:,} workers x {args.names} task names and "
              f"{args.queues:,} queues, {label}: {len(body) / 1e6:.1f} MB, {lines:,} lines; "
              f"render p50 {times[len(times) // 2] * 1000:.1f} ms, "
              f"p95 {times[min(len(times) - 1, int(len(times) * 0.95))] * 1000:.1f} ms "
              f"(load {os.getloadavg()[0]:.1f})", flush=True)

if __name__ == "__main__":
    main()
