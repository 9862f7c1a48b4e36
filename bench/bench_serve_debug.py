"""`/api/v1` debugging views over the tasks in memory (docs/performance.md, the section of that
name): a serve without a store holding ~100k tasks (the redis and errors recordings repeated
with fresh ids, spread over the last hour), asked in process (Starlette's TestClient, one
request at a time). `/api/v1/errors` and its trend are asked both ways in the same run,
alternating: rebuilt from the records (before) and from the live error groups (after);
between two rounds a fresh copy of the errors recording arrives (new tasks, failures), so
each live answer makes its newest segments again, as under a steady ingest. Prints a
markdown table of medians.

    .venv/bin/python bench/bench_serve_debug.py                 # 32 copies: 102,240 tasks
    .venv/bin/python bench/bench_serve_debug.py --copies 8 --rounds 3
    .venv/bin/python bench/bench_serve_debug.py --ingest     # the follower's cost to ingest

``--ingest``: the ingest side instead. Copies of the redis recording applied in batches of
512 (each batch then wakes the follower, as serve's observer does), with the follower thread
running and without, alternating: events/s of the applying thread (medians), how long
the follower then takes to catch up, and the process's CPU seconds per 100k events (both
threads, the catch-up included: what ``serve --no-live-errors`` saves).
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import UuidMap, loadavg, log, md_table, recorded_events, remap_event, rss_bytes

ROOT = Path(__file__).resolve().parents[1]
ERRORS = ROOT / "tests" / "data" / "errors" / "events.jsonl.gz"
HOUR = 3600.0


def _errors_events() -> list[dict[str, Any]]:
    with gzip.open(ERRORS, "rt") as fh:
        return [json.loads(line) for line in fh]


def _copy(events: list[dict[str, Any]], start: float) -> list[dict[str, Any]]:
    """A copy with fresh task ids, moved to begin at ``start``."""
    fresh = UuidMap()
    first = min(e["timestamp"] for e in events)
    out = []
    for event in events:
        e = remap_event(event, fresh)
        e["timestamp"] = event["timestamp"] - first + start
        if "local_received" in e:
            e["local_received"] = e["timestamp"]
        out.append(e)
    return out


def build(copies: int) -> tuple[Any, list[dict[str, Any]]]:
    from celery import Celery

    from lazycelery.core.index import TaskIndex
    from lazycelery.serve.service import Service

    redis, errors = recorded_events("redis"), _errors_events()
    index = TaskIndex(max_tasks=1_000_000)
    now = time.time()
    for i in range(copies):  # spread over the last 55 minutes
        start = now - HOUR + 240 + i * (HOUR - 360) / copies
        for part in (_copy(redis, start), _copy(errors, start + 20)):
            for j in range(0, len(part), 512):
                index.apply_batch(part[j:j + 512])
    service = Service(app=Celery("bench", broker="memory://", set_as_current=False),
                      index=index, environment="bench")
    return service, errors


def _get(client: Any, path: str, params: dict[str, str]) -> tuple[float, int]:
    started = time.perf_counter()
    got = client.get(path, params=params)
    took = time.perf_counter() - started
    got.raise_for_status()
    return took, len(got.content)


def ingest_cost(copies: int, rounds: int) -> None:
    from lazycelery.core.index import TaskIndex
    from lazycelery.serve.live_errors import LiveErrors

    redis = recorded_events("redis")
    rates: dict[str, list[float]] = {"without": [], "with": []}
    cpu: dict[str, list[float]] = {"without": [], "with": []}
    lags: list[float] = []
    for r in range(rounds):
        ways = ["without", "with"] if r % 2 == 0 else ["with", "without"]
        for way in ways:
            start = time.time() - 1800
            events = [e for i in range(copies) for e in _copy(redis, start + i * 20)]
            index = TaskIndex(max_tasks=1_000_000)
            live = LiveErrors(index).start() if way == "with" else None
            cpu_started = time.process_time()
            started = time.perf_counter()
            for j in range(0, len(events), 512):
                index.apply_batch(events[j:j + 512])
                if live is not None:
                    live.notify()
            took = time.perf_counter() - started
            rates[way].append(len(events) / took)
            if live is not None:
                caught = time.perf_counter()
                live.catch_up()
                lags.append(time.perf_counter() - caught)
                live.stop()
            cpu[way].append((time.process_time() - cpu_started) / len(events) * 100_000)
        log(f"round {r + 1}/{rounds}")
    without, with_ = (statistics.median(rates[w]) for w in ("without", "with"))
    cpu_off, cpu_on = (statistics.median(cpu[w]) for w in ("without", "with"))
    print(f"\n{copies} copies of the redis recording ({len(events):,} events) per run, "
          f"{rounds} rounds, load average {loadavg()[0]:.1f}\n")
    print(md_table(["follower", "events/s applied (median)", "CPU s per 100k events (median)",
                    "follower's catch-up after"],
                   [["off", f"{without:,.0f}", f"{cpu_off:.2f}", ""],
                    ["on", f"{with_:,.0f} ({with_ / without - 1:+.0%})",
                     f"{cpu_on:.2f} ({cpu_on / cpu_off - 1:+.0%})",
                     f"{statistics.median(lags) * 1000:,.0f} ms"]]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ingest", action="store_true",
                        help="the follower's cost to the applying thread instead")
    args = parser.parse_args()
    if args.ingest:
        ingest_cost(min(args.copies, 8), args.rounds)
        return 0

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    from lazycelery.serve.app import build_app
    from lazycelery.serve.auth import AuthConfig, Guard

    log(f"building {args.copies} copies")
    service, errors = build(args.copies)
    live = service.live_errors
    assert live is not None
    log(f"{len(service.index):,} tasks in memory; load {loadavg()[0]:.1f}")
    requests = [
        ("`GET /api/v1/tasks?limit=1000` (reference)", "/api/v1/tasks", {"limit": "1000"},
         False),
        ("`GET /api/v1/errors?since=1h`", "/api/v1/errors", {"since": "1h"}, True),
        ("`GET /api/v1/errors/all/trend?since=1h`", "/api/v1/errors/all/trend",
         {"since": "1h"}, True),
    ]
    times: dict[tuple[str, str], list[float]] = {}
    sizes: dict[str, int] = {}
    loads = [loadavg()[0]]
    with TestClient(build_app(service, Guard(AuthConfig({})))) as client:
        live.enabled = True
        rss = rss_bytes()
        first, _ = _get(client, "/api/v1/errors", {"since": "1h"})  # the live groups made
        grown = (rss_bytes() - rss) / 1e6
        log(f"first live answer (every record read, every segment made): {first * 1000:.0f} ms,"
            f" RSS +{grown:.0f} MB")
        for r in range(args.rounds):
            for label, path, params, both in requests:
                ways = [("before", False), ("after", True)] if both else [("-", False)]
                if r % 2:
                    ways.reverse()
                for way, on in ways:
                    live.enabled = on
                    took, size = _get(client, path, params)
                    times.setdefault((label, way), []).append(took)
                    sizes[label] = size
            fresh = _copy(errors, time.time() - 30)  # new tasks arrive between rounds
            service.index.apply_batch(fresh)
            loads.append(loadavg()[0])
            log(f"round {r + 1}/{args.rounds}")
    live.enabled = True

    def ms(label: str, way: str) -> float:
        return statistics.median(times[(label, way)]) * 1000

    reference = ms(requests[0][0], "-")
    rows = [[requests[0][0], f"{reference:,.0f} ms", "", "", f"{sizes[requests[0][0]] / 1e6:.2f} MB"]]
    for label, _path, _params, _both in requests[1:]:
        before, after = ms(label, "before"), ms(label, "after")
        rows.append([label, f"{before:,.0f} ms ({before / reference:.1f}x)",
                     f"{after:,.0f} ms ({after / reference:.2f}x)", f"{before / after:.0f}x",
                     f"{sizes[label] / 1e3:.1f} kB"])
    print(f"\n{len(service.index):,} tasks, {args.rounds} rounds, first live answer "
          f"{first * 1000:,.0f} ms (RSS +{grown:.0f} MB), load average "
          f"{min(loads):.1f}-{max(loads):.1f}\n")
    print(md_table(["request", "before: rebuilt (median)", "after: live (median)", "speed-up",
                    "body"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
