"""The `lazycelery demo` sub-command: its options; the work is in `lazycelery.demo` (imported on use)."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

from lazycelery.commands.argtypes import int_between, positive_float, seconds
from lazycelery.errors import UsageError

#: lazycelery.demo.broker.EMBEDDED_KINDS, spelled here: importing that module (subprocess,
#: dataclasses) cost `--help` 16 ms (tests/test_demo_command.py checks they agree)
EMBEDDED_KINDS = ("auto", "redis-server", "fakeredis")

if TYPE_CHECKING:
    from lazycelery.demo.runner import Demo

__all__ = ["MAX_WORKERS", "register", "run"]

MAX_WORKERS = 8

DESCRIPTION = """\
Start a small Celery cluster on this machine and open the dashboard on it: real worker
processes (demo1@HOST, demo2@HOST, ... on the queues `default` and `priority`), celery beat
with a schedule, and a producer sending a steady mix of tasks: successes, failures with
tracebacks, retries, slow and long tasks, ETA tasks, priorities, chains, groups, chords and the
odd revoke (sent only to the demo's own workers). Every minute the `priority` queue's workers
are paused for 20 s, so the queue fills by priority and drains again.

With no --broker it needs nothing else: it starts its own Redis-protocol broker on a free
127.0.0.1 port (redis-server when on PATH, else fakeredis), with the result backend in db 1.
With --broker it uses that Redis or RabbitMQ with private queue names, which it deletes on
exit. Quitting (q in the dashboard, Ctrl-C, SIGTERM, a closed terminal) stops every process
it started and removes its temp dir.
"""

EPILOG = """\
examples:
  lazycelery demo                                   the dashboard on the embedded broker
  lazycelery demo --broker redis://localhost:6379/0 on your Redis (private queue names)
  lazycelery demo --no-dashboard                    keep it running; use another terminal
  lazycelery demo --no-dashboard --duration 60 --json
  lazycelery demo --embedded-broker fakeredis       the pure-Python broker even with redis-server

More: docs/demo.md.
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
             common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "demo", parents=[common], help="run a demo cluster (workers + workload) and watch it",
        description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo = parser.add_argument_group("demo")
    demo.add_argument("--workers", type=int_between(1, MAX_WORKERS), default=2, metavar="N",
                      help=f"worker processes to start, 1-{MAX_WORKERS} (default 2)")
    demo.add_argument("--rate", type=positive_float, default=2.0, metavar="R",
                      help="workload items per second (default 2; a group counts as one)")
    demo.add_argument("--embedded-broker", choices=EMBEDDED_KINDS, default="auto",
                      metavar="KIND",
                      help="without --broker: auto (default: redis-server when on PATH, else "
                           "fakeredis), redis-server or fakeredis")
    demo.add_argument("--no-dashboard", action="store_true",
                      help="print where the demo runs and wait (Ctrl-C stops it)")
    demo.add_argument("--duration", type=seconds, metavar="S",
                      help="with --no-dashboard: stop after S seconds")
    demo.add_argument("--json", action="store_true",
                      help="with --no-dashboard: print what runs where as one JSON line on "
                           "stdout (and one more when it stops)")
    parser.set_defaults(handler="lazycelery.commands.demo:run")


def _check(args: argparse.Namespace) -> str | None:
    """The broker to use (None: embedded); UsageError for options the demo cannot honour."""
    from lazycelery.demo.runner import SUPPORTED_SCHEMES

    if getattr(args, "app", None):
        raise UsageError("demo runs its own app (lazycelery.demo.app); leave out -A/--app")
    if getattr(args, "duration", None) is not None and not args.no_dashboard:
        raise UsageError("--duration needs --no-dashboard")
    if getattr(args, "json", False) and not args.no_dashboard:
        raise UsageError("--json needs --no-dashboard")
    broker: str | None = getattr(args, "broker", None)
    if broker is None:
        # CELERY_BROKER_URL and the config file are ignored on purpose: only an explicit
        # --broker sends the demo's workload to a real broker.
        return None
    if not broker.strip():
        raise UsageError("--broker is empty (leave it out for the embedded broker)")
    scheme = broker.partition("://")[0].lower().strip() if "://" in broker else ""
    if scheme not in SUPPORTED_SCHEMES:
        from lazycelery.urls import shown_url

        raise UsageError("--broker: the demo runs on Redis (redis://) or RabbitMQ (amqp://), "
                         "or with no --broker on its embedded broker; "
                         f"not {scheme or shown_url(broker)}")
    if getattr(args, "embedded_broker", "auto") != "auto":
        raise UsageError("--embedded-broker is for the embedded broker: leave out --broker")
    from lazycelery.config import check_url

    return check_url(broker, "--broker")  # one line for a URL kombu would misread


def run(args: argparse.Namespace) -> int:
    from lazycelery.demo.runner import DemoOptions, run_demo

    broker = _check(args)
    options = DemoOptions(broker_url=broker, embedded=args.embedded_broker,
                          workers=args.workers, rate=args.rate)
    if not args.no_dashboard and sys.stdin.isatty() and sys.stdout.isatty():
        _import_in_background("lazycelery.tui.app")
    show = _wait(args) if args.no_dashboard else _watch(args)
    return run_demo(options, show, json_output=bool(args.json))


def _import_in_background(module: str) -> None:
    """Import the dashboard while the workers start (0.3 s here, more on a busy machine): the
    main thread only waits on them, and the dashboard then opens that much sooner."""
    import importlib
    import threading

    def load() -> None:
        with contextlib.suppress(Exception):  # the dashboard imports it again and reports
            importlib.import_module(module)

    threading.Thread(target=load, name="lazycelery-demo-import", daemon=True).start()


def _wait(args: argparse.Namespace) -> Callable[[Demo], int]:
    def show(demo: Demo) -> int:
        from lazycelery.demo.runner import wait_until

        if not args.json:
            stop = (f"stops in {args.duration:g} s; Ctrl-C stops it now" if args.duration
                    else "Ctrl-C stops it")
            _print_lines([*demo.summary(), stop], sys.stdout)
        return wait_until(demo, args.duration)

    return show


def _watch(args: argparse.Namespace) -> Callable[[Demo], int]:
    """The dashboard on the demo's broker and app; on a pipe, `tail`'s text lines instead."""
    def show(demo: Demo) -> int:
        _print_lines(demo.summary())
        connection = _connection_args(args, demo)
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            print("lazycelery demo: no terminal, so no dashboard: following the events as "
                  "text (Ctrl-C stops the demo)", file=sys.stderr, flush=True)
            from lazycelery.commands import tail

            return tail.run(connection)
        from lazycelery.commands import dashboard

        return dashboard.run(connection)

    return show


def _connection_args(args: argparse.Namespace, demo: Demo) -> argparse.Namespace:
    """``args`` pointed at the demo: its broker and result backend, and ``-A
    lazycelery.demo.app`` for the queue names and beat's schedule; tail's options at
    defaults."""
    from lazycelery.demo.runner import APP_MODULE

    assert demo.environment is not None
    values = dict(vars(args))
    values.update(broker=demo.environment.broker_url, app=APP_MODULE,
                  result_backend=demo.environment.result_backend,
                  json=False, heartbeats=False, type=None, state=None, name=None,
                  worker=None, task_id=None, limit=None, timeout=None)
    return argparse.Namespace(**values)


def _print_lines(lines: list[str], stream: TextIO | None = None) -> None:
    for line in lines:
        print(line, file=stream or sys.stderr, flush=True)
