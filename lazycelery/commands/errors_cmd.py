"""The `lazycelery errors` command: failures grouped by cause with root-cause hints, and their
trends, from the history store and / or live events; the work is in `lazycelery.analysis`."""

from __future__ import annotations

import argparse
import sys
import threading
import time
from typing import Any, Final

from lazycelery.commands.argtypes import positive_int, seconds
from lazycelery.text import counted

__all__ = ["register", "run"]

DESCRIPTION = """\
Failures grouped by cause: the exception type, its message with the variable parts (ids,
numbers, hosts, paths, quoted values ...) normalised, and the innermost frames of your own code.
Each group shows its count, task names, workers, first and last seen, whether it is new, and
root-cause hints stated as facts with their numbers (a group concentrated on one worker, host,
queue, version, argument value or time window; a group that started right after a worker came
online or after another group's failures). Similar groups are clustered (docs/errors.md).

Events come from the history store (`lazycelery record`; --since, default the last hour when a
store exists) and / or live from the broker for --listen SECONDS.
"""

EPILOG = """\
examples:
  lazycelery errors                                 the last hour from the history store
  lazycelery errors --since 1d --json | jq .groups  a day, as JSON
  lazycelery errors --listen 60                     listen to live events for a minute
  lazycelery errors --listen 300 --limit 100        ... or until 100 failures
  lazycelery errors trend 18bda5c9 --unit hour      one group's failures per hour
  lazycelery errors trend all --since 1d --json     every group's, per minute
  lazycelery errors export 18bda5c9 > resize.csv    the group's tasks (--format csv|json|ndjson)

exit status: 0 with a report (also when nothing failed); 2 on a bad option, no history store
and no --listen, or when the broker could not be read during --listen.
"""

#: events replayed from the store per batch
CHUNK: Final = 500


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
             common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "errors", parents=[common], help="failures grouped by cause, with root-cause hints",
        description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("words", nargs="*", metavar="trend|export GROUP",
                        help="`trend GROUP` (a group id or its prefix, or `all`): failures "
                             "per --unit; `export GROUP`: the group's tasks (--format)")
    source = parser.add_argument_group("events")
    source.add_argument("--since", metavar="AGE|TIME",
                        help="read the history store from AGE ago (30m, 2h, 1d) or an ISO time "
                             "(default: 1h, when a store exists)")
    source.add_argument("--listen", type=seconds, metavar="SECONDS",
                        help="collect live events from the broker for SECONDS (after history)")
    source.add_argument("--limit", type=positive_int, metavar="N",
                        help="with --listen: stop as soon as N failures were seen")
    output = parser.add_argument_group("output")
    output.add_argument("--json", action="store_true", help="one JSON document")
    output.add_argument("--top", type=positive_int, metavar="N",
                        help="the N biggest groups (default: 20 as text, all as JSON)")
    output.add_argument("--new", metavar="AGE", default="10m",
                        help="mark groups first seen within AGE as new (default 10m)")
    output.add_argument("--unit", choices=("minute", "hour", "day"), default="minute",
                        help="trend buckets (default minute)")
    output.add_argument("--format", choices=("csv", "json", "ndjson"), default="csv",
                        help="export: the rows' format (default csv)")
    parser.set_defaults(handler="lazycelery.commands.errors_cmd:run")


def run(args: argparse.Namespace) -> int:
    from lazycelery.errors import UsageError

    words = list(args.words or [])
    action: tuple[str, str] | None = None
    if words:
        if words[0] not in ("trend", "export") or len(words) > 2 or \
                (words[0] == "export" and len(words) != 2):
            raise UsageError(f"errors: unknown arguments {' '.join(words)!r} (`trend GROUP` "
                             "or `export GROUP`)")
        action = (words[0], words[1] if len(words) == 2 else "all")
    new_within = _duration("--new", args.new)
    if args.limit is not None and args.listen is None:
        raise UsageError("--limit needs --listen SECONDS")
    from lazycelery.config import resolve

    settings = resolve(args)
    groups, index, sources = _collect(args, settings)
    if action is not None and action[0] == "export":
        return _export(args, groups, index, action[1])
    return _print(args, groups, sources, action[1] if action else None, new_within)


def _duration(option: str, text: str) -> float:
    from lazycelery.durations import DurationTooLong, parse_duration
    from lazycelery.errors import UsageError

    try:
        return parse_duration(text)
    except DurationTooLong as exc:
        raise UsageError(f"{option}: {exc}") from None
    except ValueError:
        raise UsageError(f"{option}: needs a duration (30m, 2h, 1d), not {text!r}") from None


def _collect(args: argparse.Namespace, settings: Any) -> tuple[Any, Any, dict[str, Any]]:
    from lazycelery.analysis import ErrorGroups
    from lazycelery.core.index import TaskIndex

    groups = ErrorGroups()
    index = TaskIndex(max_tasks=settings.max_tasks)
    sources: dict[str, Any] = {}
    history = _history(args, settings, groups, index)
    if history is not None:
        sources["history"] = history
    if args.listen is not None:
        sources["live"] = _listen(args, settings, groups, index)
    return groups, index, sources


def _history(args: argparse.Namespace, settings: Any, groups: Any,
             index: Any) -> dict[str, Any] | None:
    from lazycelery.analysis.sources import replay_store
    from lazycelery.errors import UsageError
    from lazycelery.store import StoreError, default_store_url, open_store
    from lazycelery.store.url import mask_store_url
    from lazycelery.tail.history import parse_since

    url = settings.store_url or default_store_url()
    if args.since is None and args.listen is not None:
        return None
    since = parse_since(args.since or "1h")
    try:
        store = open_store(url, create=False, writer=False)
    except StoreError as exc:
        if args.listen is not None:
            print(f"lazycelery: history off: {exc}; live events only", file=sys.stderr)
            return None
        raise UsageError(f"{exc}: record history with `lazycelery record`, or collect live "
                         "events with --listen SECONDS") from None
    until = time.time()
    try:
        gaps = replay_store(store, since, until, groups, index, CHUNK)
    except StoreError as exc:
        raise UsageError(f"history: {exc}") from None
    finally:
        store.close()
    return {"store": mask_store_url(url), "since": since, "until": until, "gaps": gaps}


def _listen(args: argparse.Namespace, settings: Any, groups: Any, index: Any) -> dict[str, Any]:
    from lazycelery.commands.listen import ListenWatch
    from lazycelery.core.ingest import Ingestor

    done = threading.Event()
    watch = ListenWatch()
    limit: int | None = args.limit

    def on_batch(events: Any, records: Any) -> None:
        groups.observe_batch(events, records)
        if limit is not None and groups.failures >= limit:
            done.set()

    ingestor = Ingestor(settings.broker_url, index, mode=settings.ingest, read_ahead=settings.read_ahead,
                        app=settings.celery_app() if settings.app_spec else None,
                        transport_options=settings.transport_options,
                        on_batch=on_batch, on_status=watch.on_status, wakeup=False,
                        masker=_masker(settings))
    started = time.time()
    ingestor.start()
    try:
        if watch.connected.wait(args.listen):
            until = f" or {counted(limit, 'failure')}" if limit is not None else ""
            print(f"lazycelery: listening to {settings.masked_broker()} for {args.listen:g} s"
                  f"{until}", file=sys.stderr, flush=True)
            done.wait(args.listen)  # counted from here: the time to connect is not taken off
    finally:
        ingestor.stop(timeout=2.0)
    watch.check(settings.masked_broker())
    return {"broker": settings.masked_broker(), "seconds": round(time.time() - started, 3),
            "stopped_by_limit": done.is_set()}


def _group(groups: Any, text: str) -> Any:
    from lazycelery.errors import UsageError

    group = groups.get(text)
    if group is None:
        raise UsageError(f"no error group {text!r} in these events (`lazycelery errors` lists "
                         "them; a prefix works when it is unique)")
    return group


def _export(args: argparse.Namespace, groups: Any, index: Any, key: str) -> int:
    from lazycelery.analysis.export import export_rows, render

    sys.stdout.write(render(export_rows(_group(groups, key), index.get), args.format))
    return 0


def _print(args: argparse.Namespace, groups: Any, sources: dict[str, Any],
           trend_of: str | None, new_within: float) -> int:
    import json
    import shutil

    from lazycelery.analysis.report import groups_json, trend_json
    from lazycelery.analysis.text import groups_table, trend_lines

    if trend_of is not None:
        key = None if trend_of == "all" else _group(groups, trend_of).key
        doc = trend_json(groups, key, args.unit)
        lines = trend_lines(doc)
    else:
        limit = args.top if (args.top is not None or args.json) else 20
        doc = groups_json(groups, now=time.time(), new_within=new_within,
                          limit=limit if args.json else None)
        lines = groups_table(doc, top=limit, width=shutil.get_terminal_size().columns)
    doc["sources"] = sources
    if args.json:
        print(json.dumps(doc, indent=2, sort_keys=False))
    else:
        print("\n".join(lines))
    return 0


def _masker(settings: Any) -> Any:
    """The configured masking rules (docs/masking.md); a skipped rule is said on stderr."""
    from lazycelery.mask.settings import masker_for

    masker = masker_for(settings)
    for problem in masker.problems:
        print(f"lazycelery: mask rule skipped: {problem}", file=sys.stderr)
    return masker
