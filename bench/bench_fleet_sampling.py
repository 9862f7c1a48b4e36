"""Benchmark: what one resources sample costs (`lazycelery stats resources --samples`, the
Sampler of lazycelery.analysis.fleet.resources): an ``inspect stats`` addressed to one worker,
against a ``ping`` addressed to the same worker as the reference, in the same run.

A private redis-server and one real `celery worker -E -c 2` (integration/workerapp.py). For
each kind, N calls; per call the wall time (median) and the Redis commands the whole exchange
cost on the server (INFO commandstats before/after: the client's publish and reply wait, the
worker's reply publish; the worker's own steady polling and heartbeats are measured idle for
the same time and subtracted).

Usage: python bench/bench_fleet_sampling.py [--samples 50]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RedisServer, log, md_table

ROOT = Path(__file__).resolve().parent.parent


def commands(client: redis.Redis) -> int:
    info: dict[str, Any] = client.info("commandstats")
    return sum(int(v["calls"]) for k, v in info.items()
               if k not in ("cmdstat_info",))


def start_worker(url: str) -> tuple[subprocess.Popen[bytes], str]:
    host = f"bench-{uuid.uuid4().hex[:6]}@{socket.gethostname()}"
    env = dict(os.environ, LC_BROKER=url, LC_QUEUE=f"bench-{uuid.uuid4().hex[:6]}",
               PYTHONPATH=str(ROOT / "integration"))
    proc = subprocess.Popen([sys.executable, "-m", "celery", "-A", "workerapp", "worker", "-n",
                             host, "-c", "2", "-P", "prefork", "-E", "--without-mingle",
                             "--without-gossip", "-l", "warning"],
                            cwd=ROOT / "integration", env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    return proc, host


def measure(client: redis.Redis, call: Any, n: int) -> tuple[list[float], float, float]:
    times = []
    before = commands(client)
    started = time.perf_counter()
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - started
    return times, (commands(client) - before) / n, elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=50)
    args = parser.parse_args()
    from celery import Celery

    with RedisServer() as server:
        client = redis.Redis.from_url(server.url)
        proc, host = start_worker(server.url)
        try:
            app = Celery("bench", broker=server.url, set_as_current=False)
            deadline = time.monotonic() + 60
            while not app.control.ping(destination=[host], timeout=0.5):
                if time.monotonic() > deadline:
                    raise SystemExit("worker did not answer ping")
            inspect = app.control.inspect(destination=[host], timeout=2.0)

            def stats() -> None:
                reply = inspect.stats()
                assert reply and host in reply and "rusage" in reply[host]

            def ping() -> None:
                assert app.control.ping(destination=[host], timeout=2.0)

            rows = []
            figures: dict[str, tuple[float, float]] = {}
            for name, call in (("ping (reference)", ping), ("inspect stats (a sample)", stats)):
                call()  # warm: connections, declarations
                times, per_call, elapsed = measure(client, call, args.samples)
                # the worker's own background traffic over the same time, idle
                idle_before = commands(client)
                time.sleep(elapsed)
                idle = (commands(client) - idle_before) / args.samples
                figures[name] = (statistics.median(times), per_call - idle)
                rows.append([name, f"{statistics.median(times) * 1000:.1f}",
                             f"{per_call:.1f}", f"{idle:.1f}", f"{per_call - idle:.1f}"])
            ratio = figures["inspect stats (a sample)"][0] / figures["ping (reference)"][0]
            print(md_table(["call (destination = one worker)", "median ms", "Redis commands",
                            "idle same time", "net per call"], rows))
            print(f"\nratio inspect stats / ping (median time): {ratio:.2f}; "
                  f"{args.samples} calls each; load average {os.getloadavg()[0]:.2f}")
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
            log("worker stopped")


if __name__ == "__main__":
    main()
