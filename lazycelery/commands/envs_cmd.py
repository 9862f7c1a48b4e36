"""`lazycelery envs`: the cluster view on the command line (one row per environment), and
`lazycelery envs find`: a task by id, id prefix or filter in every environment's memory and
history store, each result naming its environment."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from lazycelery.commands.argtypes import positive_int, seconds

if TYPE_CHECKING:
    from lazycelery.core.env_status import EnvStatus
    from lazycelery.core.envs import EnvSet, Found

__all__ = ["STORE_SCAN", "register", "run", "run_find"]

#: a prefix or a filter is looked for among this many of a store's newest tasks (an exact id
#: is one indexed read, however large the store)
STORE_SCAN = 5000

EPILOG = """\
examples:
  lazycelery envs                                 every environment of the config file
  lazycelery envs --env prod --env staging --json
  lazycelery envs --watch 5                       a new table every 5 s until Ctrl-C
  lazycelery envs find 3f2a                       a task id or prefix, in every environment
  lazycelery envs find --filter 'state:failure name:billing.*' --sample 10

Environments are the config file's [environments.NAME] tables (docs/environments.md).
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
             common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "envs", parents=[common], help="every environment at a glance; find a task in all",
        description="One row per environment: connection (or why not), workers online/total, "
                    "tasks/s, failure rate, queue depth and oldest age, last gap.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _options(parser)
    parser.set_defaults(handler="lazycelery.commands.envs_cmd:run")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    find = sub.add_parser("find", parents=[common], help="a task in every environment",
                          description="Find tasks by id, id prefix or filter in every "
                                      "environment: the events seen while sampling, and the "
                                      "history store of each environment that names one.")
    find.add_argument("task_id", nargs="?", metavar="ID",
                      help="a task id or the start of one (the dashboard shows 8 characters)")
    find.add_argument("--filter", metavar="QUERY", dest="query",
                      help="the dashboard's filter language (docs/filter.md)")
    find.add_argument("--limit", type=positive_int, default=50, metavar="N",
                      help="at most N tasks (default 50)")
    _options(find, sample=1.0)
    find.set_defaults(handler="lazycelery.commands.envs_cmd:run_find")


def _options(parser: argparse.ArgumentParser, sample: float = 3.0) -> None:
    parser.add_argument("--json", action="store_true", help="JSON instead of a table")
    parser.add_argument("--sample", type=seconds, default=sample, metavar="SECONDS",
                        help=f"listen this long before answering (default {sample:g}): "
                             "rates, workers and live tasks come from the events seen")
    if sample > 1.0:
        parser.add_argument("--watch", type=seconds, metavar="SECONDS",
                            help="print the table again every SECONDS until Ctrl-C")


def _open(args: argparse.Namespace) -> tuple[EnvSet, list[str]]:
    """Every environment asked for (all of them by default), started."""
    from lazycelery.config_envs import requested_envs, resolve_envs
    from lazycelery.core.envs import EnvSet

    # one --env is a set of one; none is every environment of the file
    if requested_envs(args) is None and not getattr(args, "envs", None):
        args.all_envs = True
    choices, notes = resolve_envs(args)
    envs = EnvSet.from_choices(choices)
    envs.build()
    envs.start()
    return envs, notes


def run(args: argparse.Namespace) -> int:
    envs, notes = _open(args)
    for note in notes:
        print(f"lazycelery: {note}", file=sys.stderr)
    try:
        time.sleep(args.sample)  # a measuring window, not synchronisation
        while True:
            _print_statuses(envs.statuses(), json_out=args.json)
            if not getattr(args, "watch", None):
                return 0
            time.sleep(args.watch)
    except KeyboardInterrupt:
        return 0
    finally:
        envs.stop()


def _print_statuses(rows: Sequence[EnvStatus], *, json_out: bool) -> None:
    if json_out:
        print(json.dumps([row.to_json() for row in rows]), flush=True)
        return
    from lazycelery.core.env_status import format_age

    table = [("ENV", "WORKERS", "TASKS/S", "FAILED", "QUEUED", "OLDEST", "LAST GAP",
              "CONNECTION")]
    for row in rows:
        gap = row.last_gap
        table.append((
            row.name + (" (ro)" if row.read_only else ""),
            f"{row.workers_online}/{row.workers_total}", f"{row.tasks_per_s:.1f}",
            "-" if row.failure_rate is None else f"{row.failure_rate:.1%}",
            "-" if row.queue_depth is None else f"{row.queue_depth:,}",
            format_age(row.oldest_age_s),
            "-" if gap is None else f"{gap.seconds:.1f} s, {format_age(time.time() - gap.end)} "
                                    "ago",
            row.connection_text() + (f"; queues: {row.queue_note}"
                                     if row.queue_note and row.state == "connected" else ""),
        ))
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]) - 1)]
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1], flush=True)


def run_find(args: argparse.Namespace) -> int:
    from lazycelery.core.query import compile_filter
    from lazycelery.errors import UsageError

    if not args.task_id and not args.query:
        raise UsageError("envs find: give a task ID (or prefix), --filter QUERY, or both")
    predicate = compile_filter(args.query) if args.query else None
    envs, notes = _open(args)
    for note in notes:
        print(f"lazycelery: {note}", file=sys.stderr)
    try:
        time.sleep(args.sample)  # live events seen in this window are searched too
        found = _live(envs, args.task_id, predicate, args.limit)
    finally:
        envs.stop()
    seen = {(f.env, f.task.uuid) for f in found}
    stored, problems = _stored(envs, args.task_id, predicate, args.limit - len(found))
    results = [(f, "memory") for f in found]
    results += [(f, "store") for f in stored if (f.env, f.task.uuid) not in seen]
    for problem in problems:
        print(f"lazycelery: {problem}", file=sys.stderr)
    _print_found(results, json_out=args.json)
    return 0 if results else 1


def _live(envs: EnvSet, task_id: str | None, predicate: Any, limit: int) -> list[Found]:
    if task_id:
        hits = envs.find_task(task_id)
        return [f for f in hits if predicate is None or predicate(f.task)][:limit]
    return envs.search(predicate, limit)


def _stored(envs: EnvSet, task_id: str | None, predicate: Any,
            limit: int) -> tuple[list[Found], list[str]]:
    """Each environment's own store (its ``store`` key): an environment without one has no
    history of its own to search (the default file is shared, so its tasks have no env)."""
    from lazycelery.core.envs import Found
    from lazycelery.store import StoreError, open_store
    from lazycelery.store.query import get, page

    found: list[Found] = []
    problems: list[str] = []
    for watch in envs.watches:
        url = watch.settings.store_url if watch.settings else None
        if not url or limit - len(found) <= 0:
            continue
        try:
            store = open_store(url, create=False, writer=False)
        except StoreError as exc:
            problems.append(f"{watch.name}: history store not searched: {exc}")
            continue
        try:
            exact = get(store, task_id) if task_id else None
            tasks = ([exact.record] if exact is not None
                     else [s.record for s in page(store, None, None, STORE_SCAN).tasks])
        except StoreError as exc:
            problems.append(f"{watch.name}: history store not searched: {exc}")
            continue
        finally:
            store.close()
        for rec in tasks:
            if task_id and not rec.uuid.startswith(task_id):
                continue
            if predicate is not None and not predicate(rec):
                continue
            found.append(Found(watch.name, rec))
    return found[:max(0, limit)], problems


def _print_found(results: Sequence[tuple[Found, str]], *, json_out: bool) -> None:
    width = max((len(found.env) for found, _ in results), default=0)
    for found, where in results:
        rec = found.task
        if json_out:
            print(json.dumps({"env": found.env, "from": where, "uuid": rec.uuid,
                              "name": rec.name, "state": rec.state, "worker": rec.worker}))
        else:
            print(f"{found.env:<{width}}  {rec.uuid}  {rec.state:<8}  {rec.name or '?'}  "
                  f"{rec.worker or '-'}  ({where})")
