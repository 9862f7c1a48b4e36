"""What one ``GET /api/v1/tasks?limit=100`` costs `lazycelery serve` in CPU: a real uvicorn
server (in a process of its own, over an index of synthetic tasks, no broker) answers requests
sent one after another by this process; the server process's CPU time (user + system, from
/proc) over the requests, divided by their number. CPU time, not wall time: it moves far less
with the machine's load (a shared 2-core machine at load 10+ halves the wall-time figures).

    .venv/bin/python bench/bench_serve_answering.py
    git archive main lazycelery | tar -x -C /tmp/before      # before/after, alternating:
    .venv/bin/python bench/bench_serve_answering.py --before /tmp/before --repeats 5
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import free_port, log, md_table, median


def serve_main(port: int, tasks: int, http: str) -> None:
    """The server process: an index of ``tasks`` finished tasks, /api/v1 on ``port``."""
    import uvicorn
    from celery import Celery

    from lazycelery.core.index import TaskIndex
    from lazycelery.serve.app import build_app
    from lazycelery.serve.auth import AuthConfig, Guard
    from lazycelery.serve.service import Service

    index = TaskIndex(max_tasks=max(tasks, 1000))
    now = time.time()
    for start in range(0, tasks, 1000):
        batch = []
        for n in range(start, min(tasks, start + 1000)):
            uuid, t = f"{n:08d}-bench-task", now - tasks + n
            batch += [
                {"type": "task-received", "uuid": uuid, "name": "bench.add", "args": "(1, 2)",
                 "kwargs": "{}", "timestamp": t, "hostname": "w1@bench", "retries": 0},
                {"type": "task-started", "uuid": uuid, "timestamp": t + 0.1,
                 "hostname": "w1@bench"},
                {"type": "task-succeeded", "uuid": uuid, "timestamp": t + 0.2, "result": "3",
                 "runtime": 0.1, "hostname": "w1@bench"}]
        index.apply_batch(batch)
    service = Service(app=Celery("bench", broker="memory://", set_as_current=False),
                      index=index, environment="bench")
    app = build_app(service, Guard(AuthConfig({})))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
                lifespan="off", http=http)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(source: Path | None, tasks: int, requests: int, http: str) -> float:
    """ms of server CPU per request."""
    import httpx

    port = free_port()
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = str(source)
    child = subprocess.Popen([sys.executable, __file__, "--serve", str(port), "--tasks",
                              str(tasks), "--http", http], env=env,
                             cwd=None if source is None else str(source))
    try:
        url = f"http://127.0.0.1:{port}/api/v1/tasks"
        with httpx.Client(timeout=30) as client:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if client.get(url, params={"limit": 1}).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError("the server did not answer")
                time.sleep(0.2)
            for _ in range(20):  # warm
                client.get(url, params={"limit": 100}).raise_for_status()
            before = cpu_seconds(child.pid)
            for _ in range(requests):
                response = client.get(url, params={"limit": 100})
                assert response.status_code == 200 and response.json()["count"] == 100
            return 1000 * (cpu_seconds(child.pid) - before) / requests
    finally:
        child.terminate()
        child.wait(15)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--tasks", type=int, default=20_000, help="tasks in memory")
    parser.add_argument("--requests", type=int, default=1000, help="requests per measure")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--http", default="h11", choices=["h11", "httptools", "auto"],
                        help="uvicorn's HTTP implementation (httptools needs its package)")
    parser.add_argument("--before", type=Path, metavar="SRC",
                        help="also measure SRC's lazycelery package, alternating with this tree")
    args = parser.parse_args()
    if args.serve is not None:
        serve_main(args.serve, args.tasks, args.http)
        return 0
    variants: list[tuple[str, Path | None]] = [("this tree", None)]
    if args.before is not None:
        variants = [("before", args.before.resolve()), ("after", None)]
    figures: dict[str, list[float]] = {label: [] for label, _ in variants}
    for repeat in range(args.repeats):
        for label, source in variants:
            ms = measure(source, args.tasks, args.requests, args.http)
            figures[label].append(ms)
            log(f"{label} #{repeat + 1}: {ms:.3f} ms CPU/request, "
                f"load {os.getloadavg()[0]:.1f}")
    base = median(figures[variants[0][0]])
    rows = [[label, f"{median(v):.3f}", ", ".join(f"{x:.3f}" for x in v),
             f"{median(v) / base:.2f}"] for label, v in figures.items()]
    print(f"GET /api/v1/tasks?limit=100, {args.tasks:,} tasks in memory, {args.requests} "
          f"requests per measure, uvicorn http={args.http}, load {os.getloadavg()[0]:.1f}")
    print(md_table(["serve", "CPU ms/request (median)", "each repeat", "ratio"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
