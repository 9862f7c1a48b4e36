"""`lazycelery export`: the history store's tasks, filtered with the dashboard's filter
language (or an error group's, or a workflow's), as CSV, JSON or NDJSON."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lazycelery.errors import UsageError

if TYPE_CHECKING:
    from lazycelery.config import Settings
    from lazycelery.core.index import TaskIndex

__all__ = ["register", "run"]

EPILOG = """\
examples:
  lazycelery export --filter 'state:failure name:billing.*' --since 1d -o failed.csv
  lazycelery export --filter 're:timeout' --format ndjson | jq .uuid
  lazycelery export --group 18bda5c9 --format json     an error group's tasks
  lazycelery export --workflow 3e27fe9e                 every task of a workflow

Tasks come from the history store (`lazycelery record`), the last --since (default 1h).
Masked values stay masked: the store holds what ingest masked.
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
             common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "export", parents=[common], help="tasks (filtered, an error group, a workflow) as "
                                         "CSV, JSON or NDJSON",
        description="Export tasks from the history store as CSV, JSON or NDJSON.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--filter", default="", metavar="TEXT",
                       help="the dashboard's filter language (docs/filter.md)")
    which.add_argument("--group", metavar="FINGERPRINT",
                       help="an error group's tasks (its id or a unique prefix: `lazycelery errors`)")
    which.add_argument("--workflow", metavar="ID",
                       help="every task of the workflow this task belongs to")
    parser.add_argument("--since", default="1h", metavar="AGE|TIME",
                        help="read the store from AGE ago (30m, 2h, 1d) or an ISO time (default 1h)")
    parser.add_argument("--format", choices=("csv", "json", "ndjson"), default="csv",
                        help="default csv")
    parser.add_argument("-o", "--output", metavar="FILE",
                        help="write to FILE (replaced whole at the end) instead of stdout")
    parser.set_defaults(handler="lazycelery.commands.export_cmd:run")


def run(args: argparse.Namespace) -> int:
    from lazycelery.config import resolve
    from lazycelery.core.export import row, write_rows, write_to_file
    from lazycelery.core.query import compile_filter

    predicate = compile_filter(args.filter) if args.filter else None  # FilterError: one line
    settings = resolve(args)
    index, groups = _load(args, settings)
    if args.group is not None:
        group = groups.get(args.group)
        if group is None:
            raise UsageError(f"export: no error group {args.group!r} in these events "
                             "(`lazycelery errors` lists them; a unique prefix works)")
        ids = list(dict.fromkeys(reversed(group.task_ids)))
        rows: list[dict[str, Any]] = [row(r, group=group.key) for u in ids
                                      if (r := index.get(u)) is not None]
    elif args.workflow is not None:
        rows = _workflow_rows(args.workflow, index, settings)
    else:
        records = index.snapshot()
        if predicate is not None:
            records = predicate.filter(records)
        rows = [row(r) for r in records]
    if args.output:
        path = Path(args.output)
        try:
            n = write_to_file(rows, args.format, path)
        except OSError as exc:
            raise UsageError(f"export: cannot write {path}: {exc.strerror or exc}") from None
        print(f"export: {n} task{'' if n == 1 else 's'} written to {path}", file=sys.stderr)
        return 0
    write_rows(rows, args.format, sys.stdout)
    return 0


def _load(args: argparse.Namespace, settings: Settings) -> tuple[TaskIndex, Any]:
    """The store's events since --since, replayed into an index and the error groups."""
    from lazycelery.analysis import ErrorGroups
    from lazycelery.analysis.replay import replay_stored
    from lazycelery.core.index import TaskIndex
    from lazycelery.store import StoreError, default_store_url, open_store
    from lazycelery.store.history import history_events
    from lazycelery.tail.history import parse_since

    since = parse_since(args.since)
    url = settings.store_url or default_store_url()
    try:
        store = open_store(url, create=False, writer=False)
    except StoreError as exc:
        raise UsageError(f"export: {exc}: record history with `lazycelery record`") from None
    index = TaskIndex(max_tasks=max(settings.max_tasks, 1))
    groups = ErrorGroups()
    try:
        replay_stored(history_events(store, since, time.time()), groups, index)
    except StoreError as exc:
        raise UsageError(f"export: {exc}") from None
    finally:
        store.close()
    return index, groups


def _workflow_rows(task_id: str, index: TaskIndex, settings: Settings) -> list[dict[str, Any]]:
    from lazycelery.core.export import row
    from lazycelery.core.reconcile import NoResultBackend, fetch_metas, result_backend
    from lazycelery.core.workflow import TASK
    from lazycelery.core.workflow_fetch import gather

    if index.get(task_id) is not None:
        matches = [task_id]
    else:  # the dashboard's 8-character prefix
        matches = [r.uuid for r in index.records() if r.uuid.startswith(task_id)]
    if len(matches) != 1:
        raise UsageError(f"export: --workflow {task_id!r}: "
                         f"{'no such task in the store' if not matches else 'ambiguous prefix'}")
    fetch: Any = None
    try:
        app = settings.celery_app()
        result_backend(app)
        fetch = lambda ids: fetch_metas(app, ids)  # noqa: E731
    except NoResultBackend:
        pass
    wf = gather(matches[0], get=index.get, children_of=index.children_of,
                records=index.records, fetch=fetch)
    out: list[dict[str, Any]] = []
    for depth, node in wf.root.walk():
        rec = index.get(node.id) if node.kind == TASK else None
        if rec is not None:
            out.append(row(rec, workflow=wf.root.id, depth=depth))
    return out
