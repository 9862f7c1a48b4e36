"""`lazycelery worker ACTION NAME...`: remote control of named workers, never a broadcast;
`lazycelery worker show NAME`: one worker's detail (read-only)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from lazycelery.commands.argtypes import seconds, seconds_or_zero
from lazycelery.commands.task import (
    add_action_server_options,
    add_safety_options,
    confirm,
    finish,
)
from lazycelery.errors import UsageError
from lazycelery.text import visible

if TYPE_CHECKING:
    from lazycelery.core.actions import ActionResult, Actions

__all__ = ["ACTIONS", "register", "run"]

HANDLER = "lazycelery.commands.worker:run"

#: action -> help line
ACTIONS: dict[str, str] = {
    "shutdown": "warm shutdown (running tasks finish first)",
    "pool-restart": "restart the pool processes (needs worker_pool_restarts=True)",
    "pool-grow": "add N pool processes",
    "pool-shrink": "remove N pool processes",
    "autoscale": "set the autoscale range (worker started with --autoscale)",
    "add-consumer": "start consuming from a queue",
    "cancel-consumer": "stop consuming from a queue",
    "rate-limit": "set a task type's rate limit",
    "time-limit": "set a task type's soft/hard time limits",
    "restart": "run the environment's restart command for the worker (docs/fleet.md)",
}


POOL_RESTART_EPILOG = (
    "The worker needs worker_pool_restarts = True. --module names are imported in the worker\n"
    "(reloaded with --reload); with --server they are sent by serve (checked there too:\n"
    "dotted Python names only), audited with them.\n"
    "examples:\n"
    "  lazycelery worker pool-restart w1 --yes\n"
    "  lazycelery worker pool-restart w1 --reload --module proj.tasks --server "
    "http://monitor:5555")
ADD_CONSUMER_EPILOG = (
    "The worker declares the queue, binds it to the exchange with the routing key and\n"
    "consumes it; with --server serve sends all three (checked there), audited with them.\n"
    "examples:\n"
    "  lazycelery worker add-consumer w1 -q reports --yes\n"
    "  lazycelery worker add-consumer w1 -q reports --exchange jobs --exchange-type topic \\\n"
    "      --routing-key reports.daily --server http://monitor:5555")


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    parser = subparsers.add_parser(
        "worker",
        parents=[common],
        help="control named workers (shutdown, pool, consumers, limits)",
        description="Remote-control named workers. Commands always carry the workers' names "
                    "(never a broadcast); short names (w1 for w1@host) are resolved by ping. "
                    "Each asks for confirmation (default No) unless --yes. With --server URL the "
                    "command is sent by that lazycelery serve (w1 is the w1@host it knows; "
                    "restart runs serve's configured command), audited there.",
    )
    parser.set_defaults(handler=HANDLER)
    actions = parser.add_subparsers(title="actions", metavar="ACTION", dest="worker_action")
    actions.required = True
    subs = {name: actions.add_parser(name, parents=[common], help=text, description=text[:1].upper()
                                     + text[1:] + ".") for name, text in ACTIONS.items()}
    for sub in subs.values():
        sub.add_argument("workers", nargs="+", metavar="NAME", help="worker hostname (w1@host or w1)")
        add_safety_options(sub)
        add_action_server_options(sub)  # --server URL: sent by serve, audited there
    subs["pool-restart"].add_argument("--reload", action="store_true",
                                      help="reload the --module modules the worker has already "
                                           "imported (without --module: every task module)")
    subs["pool-restart"].add_argument("--module", action="append", dest="modules", metavar="MOD",
                                      help="module to import in the worker (a dotted Python "
                                           "name, e.g. proj.tasks); repeatable")
    subs["pool-restart"].epilog = POOL_RESTART_EPILOG
    subs["pool-restart"].formatter_class = argparse.RawDescriptionHelpFormatter
    for name in ("pool-grow", "pool-shrink"):
        subs[name].add_argument("-n", type=int, default=1, metavar="N", help="processes (default 1)")
    subs["autoscale"].add_argument("--max", type=int, required=True, metavar="N")
    subs["autoscale"].add_argument("--min", type=int, required=True, metavar="N")
    for name in ("add-consumer", "cancel-consumer"):
        subs[name].add_argument("--queue", "-q", required=True, metavar="QUEUE")
    subs["add-consumer"].add_argument("--exchange", metavar="NAME",
                                      help="the exchange the queue is bound to (default: one "
                                           "named like the queue)")
    subs["add-consumer"].add_argument("--exchange-type", default="direct", metavar="TYPE",
                                      help="direct (default), topic, fanout, headers or a "
                                           "plugin's x-...")
    subs["add-consumer"].add_argument("--routing-key", metavar="KEY",
                                      help="the binding's routing key (default: the queue name)")
    subs["add-consumer"].epilog = ADD_CONSUMER_EPILOG
    subs["add-consumer"].formatter_class = argparse.RawDescriptionHelpFormatter
    for name in ("rate-limit", "time-limit"):
        subs[name].add_argument("--task", "-t", required=True, metavar="NAME", help="task name")
    subs["rate-limit"].add_argument("--rate", required=True, metavar="RATE",
                                    help="e.g. 10/m, 2/s, 100/h; 0 removes the limit")
    subs["time-limit"].add_argument("--soft", type=seconds_or_zero, metavar="SECONDS",
                                    help="soft limit (SoftTimeLimitExceeded in the task); 0 = none")
    subs["time-limit"].add_argument("--hard", type=seconds_or_zero, metavar="SECONDS",
                                    help="hard limit (the pool process is killed); 0 = none")
    subs["time-limit"].add_argument("--clear", action="store_true",
                                    help="remove both limits: the worker's own --time-limit / "
                                         "--soft-time-limit apply again")
    subs["time-limit"].epilog = (
        "Celery sets both limits in one command: a limit you do not give is removed.\n"
        "examples:\n"
        "  lazycelery worker time-limit w1 -t proj.report --soft 50 --hard 60\n"
        "  lazycelery worker time-limit w1 -t proj.report --clear")
    subs["time-limit"].formatter_class = argparse.RawDescriptionHelpFormatter
    subs["restart"].add_argument("--command-timeout", type=seconds, default=120.0,
                                 metavar="SECONDS",
                                 help="kill the restart command after SECONDS (default 120)")
    subs["restart"].epilog = (
        "The command is the config's `restart` (per environment, else top level), e.g.\n"
        "  restart = \"systemctl restart celery@{name}\"\n"
        "split like a shell line and run without a shell: {worker} is w1@host, {name} w1,\n"
        "{host} host. A full name (w1@host) is used as given, so a worker that is down can\n"
        "be restarted; a short name is resolved by ping. Refused in read-only mode; audited.\n"
        "example:\n  lazycelery worker restart w1@host")
    subs["restart"].formatter_class = argparse.RawDescriptionHelpFormatter
    show = actions.add_parser(
        "show", parents=[common], help="one worker's detail (read-only: inspect, never a broadcast)",
        description="One worker's detail, asked of that worker only (inspect with "
                    "destination=[NAME]): pool type and size, process pids, prefetch, uptime, "
                    "rusage (CPU seconds, max RSS), active / reserved / scheduled / revoked tasks, "
                    "active queues and registered tasks. Heartbeat age, load average and "
                    "software version come from events: the dashboard shows them.",
        epilog="examples:\n  lazycelery worker show w1@host\n  lazycelery worker show w1 --json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    history = actions.add_parser(
        "history", parents=[common],
        help="one worker's performance per bucket (= `stats workers --worker NAME`)",
        description="One worker's processed tasks, tasks per second, failure rate, mean and "
                    "p95 runtime per bucket, from the history store or live events "
                    "(docs/fleet.md). The same as `lazycelery stats workers --worker NAME`.",
        epilog="examples:\n  lazycelery worker history w1@host --since 7d --bucket 1d\n"
               "  lazycelery worker history w1@host --json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    history.add_argument("worker", metavar="NAME", help="worker hostname (w1@host)")
    _add_stats_options(history)
    show.add_argument("workers", nargs=1, metavar="NAME", help="worker hostname (w1@host or w1)")
    show.add_argument("--json", action="store_true", help="print the detail as one JSON object")
    show.add_argument("--timeout", type=seconds, default=2.0, metavar="SECONDS",
                      help="how long to wait for each reply (default 2.0)")


def run(args: argparse.Namespace) -> int:
    from lazycelery import config
    from lazycelery.core.actions import Actions, environment_label, resolve_workers
    from lazycelery.store.audit import store_sink

    action = getattr(args, "worker_action", None)
    if action == "show":
        return _show(args)
    if action == "history":
        from lazycelery.commands.stats_cmd import run as stats

        return stats(argparse.Namespace(**{**vars(args), "chart": "workers"}))
    if action not in ACTIONS:
        raise UsageError(f"worker: expected an action: {', '.join(ACTIONS)}")
    timeout = float(args.timeout)
    if not timeout > 0:
        raise UsageError(f"--timeout: must be positive (got {timeout:g})")
    settings = config.resolve(args)
    if getattr(args, "server", None):
        return _remote(args, action, bool(settings.read_only))
    actions = Actions.from_settings(settings, timeout=timeout,
                                    audit_sink=store_sink(settings.store_url))
    if not args.dry_run:
        actions.guard(action)
    _check_arguments(action, args)  # bad numbers fail before anything is sent
    if action == "restart":
        return _restart(args, settings, actions)
    workers = resolve_workers(actions.app, args.workers, timeout)
    print(visible(f"{action}{_details(action, args)} on: {', '.join(workers)}"))
    if args.dry_run:
        return 0
    if not confirm(f"{action} on {len(workers)} worker(s) of {environment_label(settings)}?",
                   yes=args.yes):
        print("cancelled: nothing was sent", file=sys.stderr)
        return 1
    return finish(_execute(actions, action, workers, args))


def _remote(args: argparse.Namespace, action: str, read_only: bool) -> int:
    """The command forwarded to a serve (``POST /api/v1/actions/workers/ACTION``): the same
    line and question; serve checks the role and its --read-only, sends it to the named
    workers (a short name is the one serve's /api/v1/workers lists as name@host) and audits
    with the token's name.
    ``restart`` runs serve's own configured command."""
    from lazycelery.core.actions import guard
    from lazycelery.core.actions_remote import RemoteActions
    from lazycelery.core.ingest_remote import remote_target
    from lazycelery.urls import mask_url

    server, token = remote_target(args.server, args.token)
    assert server is not None
    if not args.dry_run:
        guard(read_only, action)  # refuse before asking serve anything
    _check_arguments(action, args)
    actions: Any = RemoteActions(server, token, read_only=read_only)
    workers = actions.resolve_workers(args.workers, action)  # w1: the w1@host serve knows
    what = "restart (serve's configured command)" if action == "restart" else \
        f"{action}{_details(action, args)}"
    print(visible(f"{what} on: {', '.join(workers)}"))
    if args.dry_run:
        return 0
    if not confirm(f"{action} on {len(workers)} worker(s) via {mask_url(server)}?", yes=args.yes):
        print("cancelled: nothing was sent", file=sys.stderr)
        return 1
    if action == "restart":
        code = 0
        for worker in workers:  # one at a time, as here
            code = max(code, finish(actions.restart(worker, None)))
        return code
    return finish(_execute(actions, action, workers, args))


def _show(args: argparse.Namespace) -> int:
    import json

    from lazycelery import config
    from lazycelery.core.placement import resolve_workers
    from lazycelery.core.worker_detail import detail_rows, fetch_worker_detail

    timeout = float(args.timeout)
    if not timeout > 0:
        raise UsageError(f"--timeout: must be positive (got {timeout:g})")
    app = config.resolve(args).celery_app()
    hostname = resolve_workers(app, args.workers, timeout)[0]
    detail = fetch_worker_detail(app, hostname, timeout)
    if args.json:
        print(json.dumps(detail.as_json(), indent=1, sort_keys=True, default=str))
        return 0
    print(visible(hostname))
    for title, rows in detail_rows(detail):
        print(f"\n{title}")
        width = max((len(label) for label, _ in rows), default=0)
        for label, value in rows:
            print(f"  {label:<{width}}  {value}".rstrip())
    return 0


def _restart(args: argparse.Namespace, settings: Any, actions: Actions) -> int:
    """Each named worker's restart command, run one after the other once confirmed."""
    from lazycelery.core.actions import environment_label, resolve_workers, restart_worker
    from lazycelery.core.restart import restart_argv

    if not settings.restart:
        raise UsageError("restart: no restart command configured: set `restart = \"...\"` in "
                         "the config, for the environment or at the top level (docs/fleet.md)")
    if not args.command_timeout > 0:
        raise UsageError(f"--command-timeout: must be positive (got {args.command_timeout:g})")
    short = [n for n in args.workers if "@" not in n]
    full = [n for n in args.workers if "@" in n]
    workers = list(dict.fromkeys(full + (resolve_workers(actions.app, short, float(args.timeout))
                                         if short else [])))
    commands = [restart_argv(settings.restart, w) for w in workers]  # bad names fail here
    for argv in commands:
        print(visible(f"restart: would run: {shlex_join(argv)}"))
    if args.dry_run:
        return 0
    if not confirm(f"restart {len(workers)} worker(s) of {environment_label(settings)}?",
                   yes=args.yes):
        print("cancelled: nothing was run", file=sys.stderr)
        return 1
    code = 0
    for worker in workers:
        code = max(code, finish(restart_worker(actions, worker, settings.restart,
                                               timeout=args.command_timeout)))
    return code


def shlex_join(argv: list[str]) -> str:
    import shlex

    return shlex.join(argv)


def _add_stats_options(parser: argparse.ArgumentParser) -> None:
    """``stats``' source and chart options, with their defaults (``worker history``)."""
    from lazycelery.commands.stats_cmd import add_source_options

    add_source_options(parser)
    parser.set_defaults(value="p95", by="name", window="1h", samples=0, interval="5s")


def _check_arguments(action: str, args: argparse.Namespace) -> None:
    if action in ("pool-grow", "pool-shrink") and args.n < 1:
        raise UsageError(f"{action}: -n must be at least 1")
    if action == "autoscale" and not 0 <= args.min <= args.max:
        raise UsageError(f"autoscale: need 0 <= --min <= --max (got {args.min}, {args.max})")
    if action == "time-limit" and args.soft is None and args.hard is None and not args.clear:
        raise UsageError("time-limit: give --soft and/or --hard, or --clear")
    if action == "time-limit" and args.clear and (args.soft or args.hard):
        raise UsageError("time-limit: --clear removes both limits: give no --soft/--hard")
    _options(action, args)  # a bad module, exchange or routing key: one line, nothing sent


def _details(action: str, args: argparse.Namespace) -> str:
    from lazycelery.core.actions import describe_limits

    details: dict[str, Any] = {
        "pool-grow": lambda: f" by {args.n}",
        "pool-shrink": lambda: f" by {args.n}",
        "autoscale": lambda: f" max={args.max} min={args.min}",
        "add-consumer": lambda: f" queue {args.queue}{_options(action, args)}",
        "cancel-consumer": lambda: f" queue {args.queue}",
        "rate-limit": lambda: f" {args.task} = {args.rate}",
        "time-limit": lambda: f" {args.task} {describe_limits(args.soft, args.hard)}",
        "pool-restart": lambda: _options(action, args),
    }
    make = details.get(action)
    return str(make()) if make else ""


def _options(action: str, args: argparse.Namespace) -> str:
    """`` (exchange E (topic), routing key K)``, `` (reload proj.tasks)``: the options said
    before the question; a bad one is one line (``BadOption``) before anything is sent."""
    from lazycelery.core.control_options import consumer_options, describe, pool_options

    if action == "pool-restart":
        options = pool_options(args.modules, args.reload)
    elif action == "add-consumer":
        options = consumer_options(args.exchange, args.exchange_type, args.routing_key)
    else:
        return ""
    return f" ({describe(options)})" if options else ""


def _execute(actions: Actions, action: str, workers: list[str], args: argparse.Namespace) -> ActionResult:
    if action == "shutdown":
        return actions.shutdown(workers)
    if action == "pool-restart":
        return actions.pool_restart(workers, modules=args.modules, reload=args.reload)
    if action == "pool-grow":
        return actions.pool_grow(workers, args.n)
    if action == "pool-shrink":
        return actions.pool_shrink(workers, args.n)
    if action == "autoscale":
        return actions.autoscale(workers, args.max, args.min)
    if action == "add-consumer":
        return actions.add_consumer(workers, args.queue, exchange=args.exchange,
                                    exchange_type=args.exchange_type, routing_key=args.routing_key)
    if action == "cancel-consumer":
        return actions.cancel_consumer(workers, args.queue)
    if action == "rate-limit":
        return actions.rate_limit(workers, args.task, args.rate)
    return actions.time_limit(workers, args.task, soft=args.soft, hard=args.hard, clear=args.clear)
