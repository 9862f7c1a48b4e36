"""Argument parsing and dispatch for the `lazycelery` command; every error becomes one line."""

from __future__ import annotations

import argparse
import functools
import importlib
import os
import sys
from collections.abc import Callable, Sequence

from lazycelery import __version__
from lazycelery.commands import COMMANDS
from lazycelery.commands.argtypes import EnvAction
from lazycelery.commands.remote_opts import add_server_options
from lazycelery.errors import LazyCeleryError
from lazycelery.text import visible

__all__ = ["build_parser", "common_options", "main"]

EPILOG = """\
examples:
  lazycelery                                  open the dashboard on redis://localhost:6379/0
  lazycelery -A proj.celery                   use your app's broker, backend and queues
  lazycelery tail --json | jq .               stream events as JSON lines
  lazycelery queues                           queue depths, consumers and rates
  lazycelery config init                      write a starter config file

Connection: --broker / -A, then LAZYCELERY_BROKER_URL, CELERY_BROKER_URL, then the config
file's active environment, else redis://localhost:6379/0.
"""


def common_options(suppress: bool) -> argparse.ArgumentParser:
    """Connection options shared by the top-level parser and every sub-command.

    Sub-parsers use ``SUPPRESS`` defaults so an option given before the sub-command
    (``lazycelery --broker X tail``) is not reset by the sub-parser's default.
    """
    default: object = argparse.SUPPRESS if suppress else None
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("connection")
    group.add_argument("-b", "--broker", metavar="URL", default=default,
                       help="broker URL, e.g. redis://localhost:6379/0 or amqp://guest@host//")
    group.add_argument("-A", "--app", metavar="MODULE[:ATTR]", default=default,
                       help="import your Celery app like `celery -A` and use its settings")
    group.add_argument("--result-backend", metavar="URL", default=default,
                       help="result backend URL (read only; used for retry and reconciliation)")
    group.add_argument("--env", metavar="NAME", default=default, action=EnvAction,
                       help="use [environments.NAME] from the config file; repeat it to "
                            "watch several (dashboard, tail: docs/environments.md)")
    group.add_argument("--all-envs", action="store_true", default=default,
                       help="dashboard, tail, envs: every environment of the config file")
    group.add_argument("--config", metavar="FILE", default=default,
                       help="config file (default: platformdirs user config dir, see `config path`)")
    group.add_argument("--read-only", action="store_true", default=default,
                       help="refuse every action that changes the cluster")
    group.add_argument("--max-tasks", type=int, metavar="N", default=default,
                       help="tasks kept in memory, least recently active evicted (default 100000)")
    group.add_argument("--ingest", choices=("auto", "fast", "kombu"), default=default,
                       help="event reader: fast path (Redis, RabbitMQ), celery's Receiver, or auto (default)")
    group.add_argument("--read-ahead", metavar="SIZE", default=default,
                       help="fast paths: broker bytes read ahead of a busy ingest, e.g. 64MB "
                            "(default 128MB; 0: none, the broker's own limit applies)")
    group.add_argument("--store", metavar="URL", default=default,
                       help="history store: sqlite:///path or postgresql://user@host/db; the "
                            "dashboard opens with its history (default: a SQLite file in the "
                            "user data dir; docs/store.md)")
    group.add_argument("--no-color", action="store_true", default=default,
                       help="no colours (also honoured: the NO_COLOR environment variable)")
    group.add_argument("--no-plugins", action="store_true", default=default,
                       help="built-in panes only; LAZYCELERY_PLUGINS=a,b loads only those plugins")
    return parent


def _remember_translations() -> None:
    """argparse passes each of its own messages through gettext, which searches the disk for a
    catalogue at every call (~190 calls for our parsers, ~25 ms of `lazycelery --help`): the
    answers never change within a process, so they are remembered."""
    translate = getattr(argparse, "_", None)
    if translate is not None and not hasattr(translate, "cache_info"):
        argparse._ = functools.lru_cache(maxsize=512)(translate)  # type: ignore[attr-defined]


def build_parser() -> argparse.ArgumentParser:
    _remember_translations()
    parser = argparse.ArgumentParser(
        prog="lazycelery",
        description="A keyboard-driven terminal dashboard and CLI for Celery clusters.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common_options(suppress=False)],
    )
    parser.add_argument("--version", action="version", version=f"lazycelery {__version__}")
    parser.add_argument("--otel", action="store_true",
                        help="also export task spans over OTLP: the dashboard's, or before tail, "
                             "record or serve theirs (docs/tracing.md)")
    parser.set_defaults(handler="lazycelery.commands.dashboard:run")
    add_server_options(parser)  # the dashboard attached to a `lazycelery serve`
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    common = common_options(suppress=True)
    for module_name in COMMANDS:
        importlib.import_module(module_name).register(subparsers, common)
    return parser


def _resolve_handler(spec: str) -> Callable[[argparse.Namespace], int]:
    module_name, _, func_name = spec.partition(":")
    handler: Callable[[argparse.Namespace], int] = getattr(
        importlib.import_module(module_name), func_name
    )
    return handler


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.no_color is None:
        args.no_color = False
    if os.environ.get("NO_COLOR"):
        args.no_color = True
    # one-shot commands say the settings' notes on stderr (config.resolve); the dashboard shows
    # them on screen and `config show` lists them
    args.say_notes = not args.handler.startswith(("lazycelery.commands.dashboard:",
                                                  "lazycelery.commands.config_cmd:"))
    try:
        return _resolve_handler(args.handler)(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`| head`): silence the flush at interpreter exit too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except LazyCeleryError as exc:
        # the message may echo a URL or a broker's answer: control characters as escapes
        print(f"lazycelery: {visible(str(exc))}", file=sys.stderr)
        return exc.exit_code
