"""`lazycelery stats CHART`: the fleet charts (duration heatmap, load distribution, throughput,
per-worker performance, trends, SLA breaches, heartbeats, resources) from the history store or
live events, as block-character text or (``--json``) one JSON document; the work is in
``lazycelery.analysis.fleet``."""

from __future__ import annotations

import argparse
import sys
import threading
import time
from typing import Any, Final

from lazycelery.commands.argtypes import seconds

__all__ = ["CHARTS", "add_source_options", "register", "run"]

#: chart -> help line
CHARTS: Final = {
    "heatmap": "runtime p95 (or mean, or count) per task name x time bucket",
    "load": "each worker's share of the finished tasks",
    "throughput": "finished tasks per bucket, by task name or worker",
    "workers": "per worker per bucket: tasks, per second, failure rate, mean and p95 runtime",
    "trends": "the last window against the one before, per task name",
    "sla": "tasks over their [sla] runtime / wait targets: counted and listed",
    "heartbeats": "heartbeat ages over time, missed beats, online / lost / offline flips",
    "resources": "load average from heartbeats; CPU and memory of the main process (not its "
                 "pool processes) from sampled inspect stats",
}

DESCRIPTION = """\
Charts of the fleet from finished tasks and worker heartbeats: from the history store
(`lazycelery record`; --since, default the last 24 hours) or from live events (--listen SECONDS).
Every chart has a --json twin with the same numbers. Times are UTC; a task counts in the bucket
of its finish (task-succeeded / task-failed). p95 is the nearest-rank percentile (a runtime
some task had). See docs/fleet.md.
"""

EPILOG = """\
charts:
""" + "".join(f"  {name:<11} {text}\n" for name, text in CHARTS.items()) + """
examples:
  lazycelery stats heatmap --since 24h               p95 runtime per task per hour
  lazycelery stats heatmap --value count --json      the same cells as counts, JSON
  lazycelery stats load --since 1h
  lazycelery stats throughput --by worker --bucket 10m
  lazycelery stats workers --worker w1@host --bucket 1d
  lazycelery stats trends --window 1h
  lazycelery stats sla --since 7d --bucket 1d
  lazycelery stats heartbeats --since 2h --bucket 5m
  lazycelery stats resources --worker w1@host --samples 12 --interval 5s
  lazycelery stats load --listen 60                  a minute of live events, no store

exit status: 0 with a chart (also an empty one); 2 on a bad option, or no history store
and no --listen; 1 when the broker could not be read.
"""


def add_source_options(parser: argparse.ArgumentParser) -> None:
    source = parser.add_argument_group("events")
    source.add_argument("--since", metavar="AGE|TIME", default="24h",
                        help="from AGE ago (30m, 2h, 1d) or an ISO time (default 24h)")
    source.add_argument("--until", metavar="AGE|TIME",
                        help="up to AGE ago or an ISO time (default now)")
    source.add_argument("--listen", type=seconds, metavar="SECONDS",
                        help="listen to live events for SECONDS instead of reading the store")
    source.add_argument("--bucket", metavar="DURATION", default=None,
                        help="bucket size (default 1h; 10s with --listen)")
    parser.add_argument("--json", action="store_true", help="one JSON document")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
             common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "stats", parents=[common], help="fleet charts: heatmap, load, throughput, SLA, ...",
        description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("chart", choices=tuple(CHARTS), metavar="CHART",
                        help=f"one of: {', '.join(CHARTS)}")
    add_source_options(parser)
    chart = parser.add_argument_group("chart")
    chart.add_argument("--value", choices=("p95", "mean", "count"), default="p95",
                       help="heatmap: what a cell shows (default p95 runtime)")
    chart.add_argument("--by", choices=("name", "worker"), default="name",
                       help="throughput: one row per task name or per worker (default name)")
    chart.add_argument("--worker", metavar="NAME",
                       help="workers, heartbeats, resources: only this worker (w1@host)")
    chart.add_argument("--window", metavar="DURATION", default="1h",
                       help="trends: the window compared with the one before (default 1h)")
    chart.add_argument("--samples", type=int, default=0, metavar="N",
                       help="resources: ask --worker's inspect stats N times (default 0)")
    chart.add_argument("--interval", metavar="DURATION", default="5s",
                       help="resources: between two samples (default 5s, at least 1s)")
    parser.set_defaults(handler="lazycelery.commands.stats_cmd:run")


def _seconds(option: str, text: str) -> float:
    from lazycelery.durations import DurationTooLong, parse_duration
    from lazycelery.errors import UsageError

    try:
        value = parse_duration(text)
    except DurationTooLong as exc:
        raise UsageError(f"{option}: {exc}") from None
    except ValueError:
        value = -1.0
    if not value > 0:
        raise UsageError(f"{option}: needs a positive duration (10s, 5m, 1h, 1d), not {text!r}")
    return value


def run(args: argparse.Namespace) -> int:
    import json

    from lazycelery.config import resolve
    from lazycelery.errors import UsageError

    if args.listen is not None and not args.listen > 0:
        raise UsageError(f"--listen: must be positive (got {args.listen:g})")
    bucket = _seconds("--bucket", args.bucket or ("10s" if args.listen else "1h"))
    window = _seconds("--window", args.window)
    interval = _seconds("--interval", args.interval)
    if args.samples < 0:
        raise UsageError("--samples: must be 0 or more")
    if args.chart == "resources" and args.samples and not args.worker:
        raise UsageError("resources: --samples needs --worker NAME (one worker is asked)")
    settings = resolve(args)
    data = _data(args, settings)
    doc, lines = _chart(args, settings, data, bucket, window, interval)
    doc = {"chart": args.chart, "since": data.since, "until": data.until,
           "bucket_seconds": bucket, "source": data.origin, **doc}
    if args.json:
        print(json.dumps(doc, indent=1, default=str))
    else:
        print("\n".join(lines))
    return 0


def _data(args: argparse.Namespace, settings: Any) -> Any:
    from lazycelery.tail.history import parse_since

    now = time.time()
    if args.listen is not None:
        return _listen(args, settings)
    since = parse_since(args.since, now)
    until = parse_since(args.until, now) if args.until else now
    if until <= since:
        from lazycelery.errors import UsageError

        raise UsageError("--until: must be after --since")
    return _stored(settings, since, until)


def _stored(settings: Any, since: float, until: float) -> Any:
    from lazycelery.analysis.fleet.source import from_store
    from lazycelery.errors import UsageError
    from lazycelery.store import StoreError, default_store_url, open_store
    from lazycelery.store.url import mask_store_url

    url = settings.store_url or default_store_url()
    try:
        store = open_store(url, create=False, writer=False)
    except StoreError as exc:
        raise UsageError(f"{exc}: record history with `lazycelery record`, or collect live "
                         "events with --listen SECONDS") from None
    try:
        data = from_store(store, since, until)
    except StoreError as exc:
        raise UsageError(f"history: {exc}") from None
    finally:
        store.close()
    data.origin["store"] = mask_store_url(url)
    return data


def _listen(args: argparse.Namespace, settings: Any) -> Any:
    from lazycelery.analysis.fleet.source import BeatLog, from_index
    from lazycelery.commands.listen import ListenWatch
    from lazycelery.core.index import TaskIndex
    from lazycelery.core.ingest import Ingestor

    index = TaskIndex(max_tasks=settings.max_tasks)
    beats = BeatLog()
    watch = ListenWatch()

    ingestor = Ingestor(settings.broker_url, index, mode=settings.ingest, read_ahead=settings.read_ahead,
                        app=settings.celery_app() if settings.app_spec else None,
                        transport_options=settings.transport_options,
                        on_batch=lambda events, records: beats.feed(events),
                        on_status=watch.on_status, wakeup=False)
    started = time.time()
    ingestor.start()
    try:
        if watch.connected.wait(args.listen):
            print(f"lazycelery: listening to {settings.masked_broker()} for {args.listen:g} s",
                  file=sys.stderr, flush=True)
            time.sleep(args.listen)  # counted from here: the time to connect is not taken off
    finally:
        ingestor.stop(timeout=2.0)
    watch.check(settings.masked_broker())
    data = from_index(index, beats, started, time.time())
    data.origin.update({"broker": settings.masked_broker(), "listen_seconds": args.listen})
    return data


def _painter(settings: Any) -> Any:
    from lazycelery.analysis.fleet.text import plain

    if settings.no_color or not sys.stdout.isatty():
        return plain
    codes = ("32", "33", "35", "31")  # green, yellow, magenta, red: low to high

    def paint(level: int | None, text: str) -> str:
        return text if level is None else f"\x1b[{codes[level]}m{text}\x1b[0m"

    return paint


def _chart(args: argparse.Namespace, settings: Any, data: Any, bucket: float, window: float,
           interval: float) -> tuple[dict[str, Any], list[str]]:
    from lazycelery.analysis.fleet import sla as slas
    from lazycelery.analysis.fleet import tasks, text
    from lazycelery.analysis.fleet.samples import task_samples
    from lazycelery.errors import UsageError

    samples = task_samples(data.records, data.since, data.until)
    try:
        if args.chart == "heatmap":
            h = tasks.duration_heatmap(samples, bucket, args.value, data.since, data.until)
            return h.as_json(), text.heatmap_lines(h, _painter(settings))
        if args.chart == "load":
            loads = tasks.load_distribution(samples)
            return {"workers": [x.as_json() for x in loads]}, text.load_lines(loads)
        if args.chart == "throughput":
            t = tasks.throughput(samples, bucket, args.by, data.since, data.until)
            return t.as_json(), text.throughput_lines(t)
        if args.chart == "workers":
            rows = tasks.worker_performance(samples, bucket, args.worker, data.since, data.until)
            return {"rows": [r.as_json() for r in rows]}, text.perf_lines(rows)
        if args.chart == "trends":
            found = tasks.trends(samples, window, data.until)
            return ({"window_seconds": window, "trends": [t.as_json() for t in found]},
                    text.trend_lines(found, window))
        if args.chart == "sla":
            targets = slas.targets(settings.sla)
            if not targets:
                raise UsageError("sla: no target configured: add `[sla.\"proj.task\"] runtime = "
                                 "\"2s\"` (and/or wait) to the config (docs/fleet.md)")
            report = slas.evaluate(samples, targets)
            return report.as_json(), text.sla_lines(report)
        if args.chart == "heartbeats":
            return _heartbeats(args, data, bucket)
        return _resources(args, settings, data, interval)
    except ValueError as exc:  # too many buckets
        raise UsageError(f"{args.chart}: {exc}") from None


def _heartbeats(args: argparse.Namespace, data: Any,
                bucket: float) -> tuple[dict[str, Any], list[str]]:
    from lazycelery.analysis.fleet import heartbeats, tasks, text

    columns = tasks.columns_between([], bucket, data.since, data.until)
    beats = [b for b in data.beats if args.worker is None or b.worker == args.worker]
    found = heartbeats.heartbeat_report(beats, columns, bucket, data.until, data.resolution)
    doc = {"columns": list(columns), "resolution_seconds": data.resolution,
           "workers": [b.as_json() for b in found]}
    return doc, text.heartbeat_lines(found, columns, bucket)


def _resources(args: argparse.Namespace, settings: Any, data: Any,
               interval: float) -> tuple[dict[str, Any], list[str]]:
    from lazycelery.analysis.fleet import text
    from lazycelery.analysis.fleet.resources import SCOPE, cpu_series

    loads: dict[str, list[tuple[float, float]]] = {}
    for b in data.beats:
        if b.loadavg and (args.worker is None or b.worker == args.worker):
            loads.setdefault(b.worker, []).append((b.time, b.loadavg[0]))
    points: list[Any] = []
    sampler_doc: dict[str, Any] = {}
    if args.samples:
        sampler = _sample(settings, args.worker, args.samples, interval)
        points = cpu_series(sampler.samples.get(args.worker, []))
        sampler_doc = {"interval_seconds": interval, "asked": sampler.asked,
                       "unanswered": sampler.unanswered,
                       "broker_round_trips": 2 * sampler.asked}
    workers = sorted(set(loads) | ({args.worker} if args.worker else set()))
    lines: list[str] = []
    for w in workers:
        lines += text.resource_lines(w, points if w == args.worker else [], loads.get(w, []))
    doc = {"load1": {w: [list(x) for x in v] for w, v in loads.items()},
           "rusage": {"worker": args.worker, "scope": SCOPE,
                      "points": [p.as_json() for p in points], **sampler_doc}}
    return doc, lines or ["no worker heartbeat in this range (--samples N --worker NAME asks "
                          "a worker's rusage)"]


def _sample(settings: Any, worker: str, count: int, interval: float) -> Any:
    """``count`` rusage samples of ``worker``, ``interval`` apart (inspect stats to it only)."""
    from lazycelery.analysis.fleet.resources import Sampler

    app = settings.celery_app()

    def fetch(host: str) -> object:
        try:
            reply = app.control.inspect(destination=[host], timeout=2.0).stats()
        except Exception:  # broker down: counted as unanswered
            return None
        return reply.get(host) if isinstance(reply, dict) else None

    sampler = Sampler(fetch, interval)
    stop = threading.Event()
    for i in range(count):
        started = time.monotonic()
        sampler.sample(worker)
        if i < count - 1:
            stop.wait(max(0.0, interval - (time.monotonic() - started)) + 0.01)
    return sampler
