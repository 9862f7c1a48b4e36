"""Several environments in one process: five environments (five Redis dbs of a private
redis-server), each fed by its own publisher process at 5,000 task events/s, consumed by one
lazycelery process (``core.envs.EnvSet``: an index and an ingest thread per environment).
Counts what each environment received against what was published (loss), and the consumer's
CPU per event, against one environment alone at 5,000 events/s measured in the same run.
Prints a markdown table.

    .venv/bin/python bench/bench_envs.py [--envs 5] [--rate 5000] [--seconds 10] [--repeats 3]

The publishers replay messages rendered beforehand by celery's own dispatcher (bench/e2e_procs,
mode "replay"), as bench/bench_e2e.py does; only the consumer runs in this process.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

import e2e_procs
from bench_e2e import Publishers
from common import RedisServer, cpu_seconds, loadavg, log


class Counting:
    """Task events applied per environment (the on_batch of the EnvSet)."""

    def __init__(self) -> None:
        self.task: dict[str, int] = {}
        self.all: dict[str, int] = {}
        self.lock = threading.Lock()

    def __call__(self, env: str, events: Any, touched: Any) -> None:
        tasks = sum(1 for e in events if str(e.get("type", "")).startswith("task-"))
        with self.lock:
            self.task[env] = self.task.get(env, 0) + tasks
            self.all[env] = self.all.get(env, 0) + len(events)


def _env_set(urls: dict[str, str], counting: Counting) -> Any:
    from lazycelery.config import Settings
    from lazycelery.config_envs import EnvChoice, share_of
    from lazycelery.core.envs import EnvSet

    share = share_of(100_000, len(urls))
    envs = EnvSet.from_choices(
        EnvChoice(name, Settings(broker_url=url, env_name=name, max_tasks=share))
        for name, url in urls.items())
    envs.build(on_batch=counting, monitor=False)
    envs.start()
    return envs


def _warm_up(urls: dict[str, str], counting: Counting, timeout: float = 30.0) -> None:
    """Heartbeats into every environment until each has seen one (its stream is up)."""
    from celery import Celery

    for name, url in urls.items():
        app = Celery("bench-warmup", broker=url, set_as_current=False)
        deadline = time.monotonic() + timeout
        with app.connection_for_write() as conn:
            disp = app.events.Dispatcher(conn, hostname="bench-warmup@localhost")
            while not counting.all.get(name):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{name}: no event within {timeout} s")
                disp.send("worker-heartbeat", freq=2.0, active=0, processed=0,
                          loadavg=[0.0, 0.0, 0.0], sw_ident="py-celery", sw_ver="5.7.0",
                          sw_sys="Linux")
                time.sleep(0.1)
        app.close()


def run_once(redis: RedisServer, envs_n: int, rate: float, seconds: float) -> dict[str, Any]:
    """``envs_n`` environments at ``rate`` events/s each for ``seconds``; loss and CPU."""
    base = redis.url.rsplit("/", 1)[0]
    urls = {f"env{i}": f"{base}/{i + 1}" for i in range(envs_n)}
    events = int(rate * seconds)
    pubs = {name: Publishers(url, 1, e2e_procs.REPLAY, events + 2000)
            for name, url in urls.items()}
    counting = Counting()
    envs = _env_set(urls, counting)
    try:
        _warm_up(urls, counting)
        before = dict(counting.task)
        cpu0, t0 = cpu_seconds(), time.time() + 0.5
        for pub in pubs.values():
            (child,) = pub.children
            child.conn.send({"rate": rate, "events": events, "t0": t0})
        reports = {name: pub.children[0].recv(600) for name, pub in pubs.items()}
        published = {name: r["events"] for name, r in reports.items()}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(
                counting.task.get(n, 0) - before.get(n, 0) < published[n] for n in urls):
            time.sleep(0.05)
        done = time.time()
        cpu = cpu_seconds() - cpu0
        received = {n: counting.task.get(n, 0) - before.get(n, 0) for n in urls}
        statuses = {s.name: s.connection_text() for s in envs.statuses()}
    finally:
        envs.stop()
        for pub in pubs.values():
            pub.close()
    total = sum(published.values())
    return {
        "envs": envs_n, "rate_per_env": rate, "published": published, "received": received,
        "lost": {n: published[n] - received[n] for n in urls},
        "achieved_rate_per_env": {n: r["events"] / max(1e-9, r["end"] - t0)
                                  for n, r in reports.items()},
        "cpu_us_per_event": 1e6 * cpu / max(1, total), "drain_s": done - max(
            r["end"] for r in reports.values()), "statuses": statuses,
    }


def bench_switch(envs_n: int, budget: int, switches: int) -> dict[str, list[float]]:
    """The dashboard over ``envs_n`` environments, each index filled to its share of
    ``budget`` from the recorded stream: seconds from the ``E`` key to the other
    environment's first frame, and (the reference) from ``tab`` to the same dashboard's next
    frame. The frames go to a dummy 200x50 output (no terminal I/O); no broker: the indexes
    are filled beforehand, so the figure is the switch and the draw alone."""
    from bench_tui import TimedOutput, synthesise
    from bench_tui import recorded_task_events as task_events
    from prompt_toolkit.input import create_pipe_input

    from lazycelery.config_envs import share_of
    from lazycelery.core.envs import EnvSet, EnvWatch
    from lazycelery.tui.envs_run import EnvDashboards

    share = share_of(budget, envs_n)
    template = task_events()
    per_copy = len({e["uuid"] for e in template})
    watches = [EnvWatch(f"env{i}", None, max_tasks=share) for i in range(envs_n)]
    for w in watches:
        for batch in synthesise(template, iter(range(-(-share // per_copy)))):
            w.index.apply_batch(batch)
    output = TimedOutput(rows=50, columns=200)
    frames: list[tuple[float, str]] = []
    out: dict[str, list[float]] = {"switch": [], "tab": []}
    with create_pipe_input() as inp:
        dashboards = EnvDashboards(EnvSet(watches), input=inp, output=output,
                                   refresh_interval=None)
        for name, d in dashboards.dashboards.items():
            d.app.after_render += lambda _app, name=name: frames.append(
                (time.perf_counter(), name))

        def frame_after(t: float, name: str) -> float:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                for when, shown in list(frames):
                    if when > t and shown == name:
                        return when - t
                time.sleep(0.0005)
            raise TimeoutError(f"no frame of {name}")

        def drive() -> None:
            try:
                frame_after(0.0, dashboards.switcher.current)
                time.sleep(0.3)
                for _ in range(switches):
                    target = dashboards.switcher.names[
                        (dashboards.switcher.names.index(dashboards.switcher.current) + 1)
                        % envs_n]
                    t = time.perf_counter()
                    inp.send_text("E")
                    out["switch"].append(frame_after(t, target))
                    time.sleep(0.05)
                    t = time.perf_counter()
                    inp.send_text("\t")
                    out["tab"].append(frame_after(t, target))
                    time.sleep(0.05)
            finally:
                inp.send_text("q")

        driver = threading.Thread(target=drive, daemon=True)
        driver.start()
        dashboards.run()
        driver.join(5)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", type=int, default=5)
    parser.add_argument("--rate", type=float, default=5000.0, help="events/s per environment")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", choices=("stream", "switch"), default=None)
    parser.add_argument("--switches", type=int, default=40)
    parser.add_argument("--budget", type=int, default=100_000, help="max_tasks of the process")
    args = parser.parse_args(argv)
    log(f"load average {loadavg()[0]:.2f}")
    if args.only != "stream":
        times = bench_switch(args.envs, args.budget, args.switches)
        _print_switch(times, args)
    if args.only == "switch":
        return 0
    many: list[dict[str, Any]] = []
    one: list[dict[str, Any]] = []
    with RedisServer() as redis:
        for i in range(args.repeats):  # alternated, so both see the same machine
            one.append(run_once(redis, 1, args.rate, args.seconds))
            many.append(run_once(redis, args.envs, args.rate, args.seconds))
            log(f"repeat {i + 1}: one env lost {sum(one[-1]['lost'].values())}, "
                f"{args.envs} envs lost {sum(many[-1]['lost'].values())}")
    _print(many, one, args)
    return 0


def _print_switch(times: dict[str, list[float]], args: argparse.Namespace) -> None:
    def ms(values: list[float], p: float | None = None) -> str:
        ordered = sorted(values)
        value = (statistics.median(ordered) if p is None
                 else ordered[min(len(ordered) - 1, int(p * len(ordered)))])
        return f"{value * 1000:.1f} ms"

    share = args.budget // args.envs
    print(f"| dashboard, {args.envs} environments x {share:,} tasks, 200x50 "
          f"({len(times['switch'])} switches) | median | p95 | reference: tab (a redraw "
          "in place), same run |")
    print("|---|---|---|---|")
    print(f"| E -> the other environment's first frame | {ms(times['switch'])} | "
          f"{ms(times['switch'], 0.95)} | {ms(times['tab'])} (p95 {ms(times['tab'], 0.95)}) |")
    print()


def _print(many: list[dict[str, Any]], one: list[dict[str, Any]],
           args: argparse.Namespace) -> None:
    med = statistics.median
    lost = [sum(r["lost"].values()) for r in many]
    published = [sum(r["published"].values()) for r in many]
    rates = [min(r["achieved_rate_per_env"].values()) for r in many]
    cpu_many = med([r["cpu_us_per_event"] for r in many])
    cpu_one = med([r["cpu_us_per_event"] for r in one])
    print(f"| measure ({args.repeats} runs of {args.seconds:g} s) | median | reference: one "
          "environment, same run | ratio |")
    print("|---|---|---|---|")
    print(f"| {args.envs} environments x {args.rate:,.0f} events/s: events lost | "
          f"{med(lost):,.0f} of {med(published):,.0f} (every run: {', '.join(map(str, lost))})"
          f" | {med([sum(r['lost'].values()) for r in one]):,.0f} of "
          f"{med([sum(r['published'].values()) for r in one]):,.0f} | |")
    print(f"| slowest environment's publish rate achieved | {med(rates):,.0f} events/s | "
          f"{med([min(r['achieved_rate_per_env'].values()) for r in one]):,.0f} events/s | |")
    print(f"| consumer CPU per event (the whole process) | {cpu_many:.1f} µs | {cpu_one:.1f} µs"
          f" | {cpu_many / cpu_one:.2f}x |")
    print(f"| drain after the last publish | {med([r['drain_s'] for r in many]):.2f} s | "
          f"{med([r['drain_s'] for r in one]):.2f} s | |")


if __name__ == "__main__":
    raise SystemExit(main())
