"""The `lazycelery tail` sub-command: its options; the work is in `lazycelery.tail` (imported on use)."""

from __future__ import annotations

import argparse

from lazycelery.commands.argtypes import positive_int, seconds
from lazycelery.commands.remote_opts import add_server_options
from lazycelery.otel.hook import add_otel_option

__all__ = ["register", "run"]

DESCRIPTION = """\
Stream Celery task and worker events, one line per event, as they happen.

Text lines: time, event type, task name, short task id, worker, summary. Coloured on a
terminal (not with --no-color or NO_COLOR). --json prints one object per line; the schema
is in docs/tail.md. worker-heartbeat events are hidden unless --heartbeats or a --type
pattern names them.
"""

EPILOG = """\
filters: different options must all match; a repeated option matches any of its values.

examples:
  lazycelery tail                                     follow redis://localhost:6379/0
  lazycelery tail --broker amqp://guest:guest@localhost:5672// --json | jq .
  lazycelery tail -A proj.celery --state FAILURE --name 'billing.*'
  lazycelery tail --type 'task-failed' --type 'task-retried' --worker 'w1@*'
  lazycelery tail --task-id 3f2a --limit 1            wait for one event of that task
  lazycelery tail --filter 'exc:timeout -name:*.ping'  the dashboard's filter language
  lazycelery tail --json --timeout 60 > events.jsonl  stop after 60 s without events
  lazycelery tail --since 2h --filter state:failure   failures of the last 2 hours, then live
  lazycelery tail --server http://monitor:5555 --json  from a `lazycelery serve` (docs/remote.md)
  OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318 lazycelery tail --otel   and export spans

exit status: 0 after --limit events, after --timeout, on Ctrl-C or SIGTERM and when the reader of
stdout goes away (| head); 1 after --timeout if it never connected; 2 on a bad option or config,
or if the event stream stops.
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
             common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "tail", parents=[common], help="stream task and worker events, one line each",
        description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    output = parser.add_argument_group("output")
    output.add_argument("--json", action="store_true",
                        help="one JSON object per line (schema: docs/tail.md)")
    output.add_argument("--heartbeats", action="store_true",
                        help="also show worker-heartbeat events (hidden by default)")
    filters = parser.add_argument_group("filters")
    filters.add_argument("--type", action="append", metavar="GLOB",
                         help="event type, e.g. task-failed or 'task-*' (repeatable)")
    filters.add_argument("--state", action="append", metavar="STATE[,STATE]",
                         help="the task's state after the event, e.g. FAILURE,RETRY "
                              "(case-insensitive; repeatable)")
    filters.add_argument("--name", action="append", metavar="GLOB",
                         help="task name, e.g. 'billing.*' (repeatable)")
    filters.add_argument("--worker", action="append", metavar="GLOB",
                         help="worker hostname, e.g. 'celery@web-*' (repeatable)")
    filters.add_argument("--task-id", action="append", metavar="ID",
                         help="task id or a prefix of it (repeatable)")
    filters.add_argument("--filter", metavar="QUERY", dest="query",
                         help="the dashboard's filter language over the task, e.g. "
                              "'state:failure name:billing.* runtime>2s' (docs/filter.md); "
                              "task events only")
    history = parser.add_argument_group("history")
    history.add_argument("--since", metavar="AGE|TIME",
                         help="first print the events of the last AGE (30m, 2h, 1d) or since an "
                              "ISO time from the history store (`lazycelery record`), then "
                              "follow live; history lines carry \"history\": true in --json")
    add_otel_option(parser.add_argument_group("tracing"))
    add_server_options(parser, suppress=True)
    stop = parser.add_argument_group("stopping")
    stop.add_argument("--limit", type=positive_int, metavar="N",
                      help="exit (status 0) after N matching events")
    stop.add_argument("--timeout", type=seconds, metavar="SECONDS",
                      help="exit (status 0) after SECONDS without a matching event")
    parser.set_defaults(handler="lazycelery.commands.tail:run")


def run(args: argparse.Namespace) -> int:
    from lazycelery.tail import run as run_tail

    return run_tail(args)
