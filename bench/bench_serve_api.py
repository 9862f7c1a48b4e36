"""`/api/tasks` latency over N tasks in memory: `lazycelery serve`'s handler (Starlette +
uvicorn) beside Flower 2.x's (tornado), each in its own process, filled with the same
synthetic tasks, asked the same queries over HTTP by one client. Prints a markdown table of
p50 / p95 per query and the ratio Flower / serve.

    .venv/bin/python bench/bench_serve_api.py                 # 1,000,000 tasks (~3 min, ~3 GB)
    .venv/bin/python bench/bench_serve_api.py --tasks 100000 --requests 20
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import fmt_ratio, free_port, log, md_table

NAMES = [f"proj.tasks.task{i}" for i in range(20)]
WORKERS = [f"celery@w{i}" for i in range(4)]
QUERIES = [
    ("limit=100", {"limit": "100"}),
    ("limit=100&offset=1000", {"limit": "100", "offset": "1000"}),
    ("limit=100&state=FAILURE", {"limit": "100", "state": "FAILURE"}),
    ("limit=100&taskname=proj.tasks.task7", {"limit": "100", "taskname": "proj.tasks.task7"}),
    ("limit=100&search=name:task13", {"limit": "100", "search": "name:task13"}),
    ("limit=100&sort_by=-received", {"limit": "100", "sort_by": "-received"}),
]


def events(n: int) -> Iterator[dict[str, Any]]:
    """task-received then task-succeeded (every 10th: task-failed) for n tasks, 1 ms apart."""
    start = time.time() - n / 1000
    for i in range(n):
        ts = start + i / 1000
        uuid = f"{i:08x}-0000-4000-8000-{i:012x}"
        worker = WORKERS[i % len(WORKERS)]
        yield {"type": "task-received", "uuid": uuid, "name": NAMES[i % len(NAMES)],
               "args": f"({i}, {i + 1})", "kwargs": "{}", "retries": 0, "eta": None,
               "expires": None, "root_id": uuid, "parent_id": None, "hostname": worker,
               "timestamp": ts, "local_received": ts, "clock": 2 * i, "pid": 1,
               "utcoffset": 0}
        done = {"uuid": uuid, "hostname": worker, "timestamp": ts + 0.0005,
                "local_received": ts + 0.0005, "clock": 2 * i + 1, "pid": 1, "utcoffset": 0}
        if i % 10 == 9:
            done.update(type="task-failed", exception="ValueError('x')", traceback="tb")
        else:
            done.update(type="task-succeeded", result=str(2 * i + 1), runtime=0.0004)
        yield done


def serve_ours(port: int, n: int) -> None:
    from celery import Celery

    from lazycelery.core.index import TaskIndex
    from lazycelery.serve.app import build_app
    from lazycelery.serve.auth import AuthConfig, Guard
    from lazycelery.serve.server import HttpServer, listen
    from lazycelery.serve.service import Service

    index = TaskIndex(max_tasks=n)
    batch: list[dict[str, Any]] = []
    for event in events(n):
        batch.append(event)
        if len(batch) == 512:
            index.apply_batch(batch)
            batch = []
    index.apply_batch(batch)
    service = Service(app=Celery("bench", broker="memory://", set_as_current=False),
                      index=index, environment="bench")
    server = HttpServer(build_app(service, Guard(AuthConfig({}))), listen("127.0.0.1", port))
    server.start()
    print("ready", flush=True)
    sys.stdin.read()
    server.stop()


def serve_flower(port: int, n: int) -> None:
    import types

    from celery import Celery
    from flower.app import Flower
    from flower.events import EventsState
    from tornado.ioloop import IOLoop

    state = EventsState(max_tasks_in_memory=n)
    for event in events(n):
        state.event(event)
    app = Flower(capp=Celery("bench", broker="memory://", set_as_current=False),
                 events=types.SimpleNamespace(state=state))
    app.listen(port, address="127.0.0.1")
    print("ready", flush=True)
    IOLoop.current().start()


def measure(url: str, requests: int) -> dict[str, tuple[float, float]]:
    import httpx

    out: dict[str, tuple[float, float]] = {}
    with httpx.Client(timeout=600) as client:
        for label, params in QUERIES:
            client.get(f"{url}/api/tasks", params=params).raise_for_status()  # warm
            times = []
            for _ in range(requests):
                t0 = time.perf_counter()
                response = client.get(f"{url}/api/tasks", params=params)
                times.append(time.perf_counter() - t0)
                response.raise_for_status()
                assert len(response.json()) == 100, label
            times.sort()
            out[label] = (times[len(times) // 2], times[min(len(times) - 1,
                                                            int(len(times) * 0.95))])
            log(f"{url} {label}: p50 {out[label][0] * 1000:.1f} ms, p95 {out[label][1] * 1000:.1f} ms")
    return out


def run_server(kind: str, n: int, requests: int) -> dict[str, tuple[float, float]]:
    port = free_port()
    env = dict(os.environ, FLOWER_UNAUTHENTICATED_API="1")
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, f"--_{kind}", str(port), "--tasks", str(n)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise SystemExit(f"{kind} server did not start")
        log(f"{kind}: {n:,} tasks loaded in {time.perf_counter() - t0:.0f} s")
        return measure(f"http://127.0.0.1:{port}", requests)
    finally:
        proc.kill()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=30, help="per query for serve")
    parser.add_argument("--flower-requests", type=int, default=10, help="per query for Flower")
    parser.add_argument("--skip-flower", action="store_true", help="measure serve only")
    parser.add_argument("--_ours", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--_flower", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._ours:
        return serve_ours(args._ours, args.tasks)
    if args._flower:
        return serve_flower(args._flower, args.tasks)
    ours = run_server("ours", args.tasks, args.requests)
    if args.skip_flower:
        rows = [[f"`{label}`", f"{ours[label][0] * 1000:.1f}", f"{ours[label][1] * 1000:.1f}"]
                for label, _ in QUERIES]
        print(md_table(["query", "serve p50 ms", "serve p95 ms"], rows))
        return
    theirs = run_server("flower", args.tasks, args.flower_requests)
    rows = [[f"`{label}`", f"{ours[label][0] * 1000:.1f}", f"{ours[label][1] * 1000:.1f}",
             f"{theirs[label][0] * 1000:.0f}", f"{theirs[label][1] * 1000:.0f}",
             fmt_ratio(theirs[label][1] / ours[label][1])] for label, _ in QUERIES]
    print(f"/api/tasks over {args.tasks:,} tasks in memory, {args.requests} requests per query "
          f"(Flower {args.flower_requests}), one client, loopback HTTP, load "
          f"{os.getloadavg()[0]:.1f}\n")
    print(md_table(["query", "serve p50 ms", "serve p95 ms", "Flower p50 ms", "Flower p95 ms",
                    "Flower / serve (p95)"], rows))


if __name__ == "__main__":
    main()
