"""`lazycelery queues move | delete | requeue-dead`: bulk operations on waiting messages, with
confirmation (default no), the read-only refusal and an audit line; exact counts printed."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from lazycelery.commands.argtypes import positive_int
from lazycelery.errors import BrokerError, UsageError

if TYPE_CHECKING:
    from lazycelery.broker import BrokerInspector
    from lazycelery.broker.bulk import BulkOutcome, Selection
    from lazycelery.broker.model import QueueStats
    from lazycelery.config import Settings
    from lazycelery.core.action_result import ActionResult

__all__ = ["register_bulk", "run_bulk"]

Opener = Callable[[argparse.Namespace, "Settings"], "BrokerInspector"]


def _selection_args(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--ids", action="append", metavar="ID[,ID...]",
                       help="task ids of the messages (repeat or comma-separate)")
    which.add_argument("--all", action="store_true", help="every waiting message")
    parser.add_argument("--limit", type=positive_int, default=10_000, metavar="N",
                        help="examine at most the next N messages (default 10000)")
    parser.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument("--json", action="store_true", help="the outcome as one JSON document")
    from lazycelery.commands.task import add_action_server_options

    add_action_server_options(parser)  # --server URL: run on serve, audited there


def register_bulk(actions: argparse._SubParsersAction[argparse.ArgumentParser],
                  common: argparse.ArgumentParser) -> None:
    move = actions.add_parser(
        "move", parents=[common], help="move waiting messages to another queue",
        description="Move waiting messages (by task id, or all) to the back of another queue, "
                    "keeping their priority. Counts what was moved and what was no longer "
                    "there (docs/queues.md: guarantees per broker).")
    move.add_argument("name", metavar="SRC", help="queue to take them from")
    move.add_argument("target", metavar="DST", help="queue to put them in")
    _selection_args(move)
    delete = actions.add_parser(
        "delete", parents=[common], help="delete some waiting messages",
        description="Delete waiting messages of one queue, by task id (or all of them).")
    delete.add_argument("name", metavar="SRC", help="queue name")
    _selection_args(delete)
    requeue = actions.add_parser(
        "requeue-dead", parents=[common], help="send dead letters back to their queue",
        description="Move messages of a dead-letter queue back to the queue they were "
                    "dead-lettered from (RabbitMQ: their x-death header; Redis: the "
                    "[queues] dead_letter naming pattern).")
    requeue.add_argument("name", metavar="DLQ", help="the dead-letter queue")
    _selection_args(requeue)


def _ids(args: argparse.Namespace) -> list[str] | None:
    if args.all:
        return None
    ids = [part.strip() for chunk in args.ids for part in chunk.split(",") if part.strip()]
    if not ids:
        raise UsageError("--ids: no task id given")
    return list(dict.fromkeys(ids))


def _question(args: argparse.Namespace, ids: list[str] | None, waiting: int | None) -> str:
    from lazycelery.text import number, visible

    what = (f"{number(len(ids))} message{'' if len(ids) == 1 else 's'} (by task id)"
            if ids is not None else
            f"all {number(waiting)} waiting messages" if waiting is not None else "all messages")
    source = visible(args.name)
    if args.queues_action == "move":
        return f"Move {what} from {source} to {visible(args.target)}? [y/N] "
    if args.queues_action == "delete":
        return f"Delete {what} from {source}? [y/N] "
    return f"Requeue {what} from {source} to the queue each was dead-lettered from? [y/N] "


def _confirmed(args: argparse.Namespace, ids: list[str] | None,
               stats: Callable[[str], QueueStats]) -> bool:
    if args.yes:
        return True
    waiting = None
    if ids is None:
        waiting = stats(args.name).ready
    try:
        answer = input(_question(args, ids, waiting)).strip().lower()
    except EOFError:
        answer = ""
    return answer in ("y", "yes")


def _print(outcome: BulkOutcome | None, message: str, args: argparse.Namespace) -> None:
    from lazycelery.text import visible

    if args.json:
        import msgspec

        from lazycelery.text import json_visible

        document = {"schema": "lazycelery.queue-bulk/1", "message": message,
                    "outcome": msgspec.to_builtins(outcome) if outcome else None}
        data = json_visible(msgspec.json.format(msgspec.json.encode(document), indent=2))
        print(data.decode())
        return
    print(f"{args.queues_action} {visible(args.name)}: {visible(message)}")
    if outcome is None:
        return
    for label, ids in (("no longer there", outcome.gone), ("not found", outcome.not_found)):
        if ids:
            print(f"  {label}: {visible(', '.join(ids[:20]))}"
                  + (f" (+{len(ids) - 20} more)" if len(ids) > 20 else ""))
    for task_id, why in list(outcome.skipped.items())[:20]:
        print(f"  left in place: {visible(task_id)}: {visible(why)}")
    print(f"  ({visible(outcome.guarantee)})")


def _operation(args: argparse.Namespace, inspector: BrokerInspector,
               selection: Selection) -> Callable[[], BulkOutcome]:
    if args.queues_action == "move":
        return lambda: inspector.move(args.name, args.target, selection)
    if args.queues_action == "delete":
        return lambda: inspector.delete(args.name, selection)
    return lambda: inspector.requeue_dead(args.name, selection)


def run_bulk(args: argparse.Namespace, settings: Settings, open_inspector: Opener) -> int:
    from lazycelery.broker.bulk import Selection
    from lazycelery.core.actions import Actions
    from lazycelery.core.queue_ops import bulk_action
    from lazycelery.store.audit import store_sink

    action = args.queues_action
    if getattr(args, "server", None):
        return _run_remote(args, bool(settings.read_only))
    actions = Actions.from_settings(settings, audit_sink=store_sink(settings.store_url))
    actions.guard(action)
    ids = _ids(args)
    _terminal_or_yes(args)
    selection = Selection.of(ids, args.limit)
    inspector = open_inspector(args, settings)
    try:
        if not _confirmed(args, ids, inspector.stats):
            print("Nothing changed.")
            return 1
        operation = _operation(args, inspector, selection)
        targets = (args.name, args.target) if action == "move" else (args.name,)
        result, outcome = bulk_action(actions, action, targets, operation)
    finally:
        inspector.close()
    return _finish(args, ids, result, outcome)


def _terminal_or_yes(args: argparse.Namespace) -> None:
    action = args.queues_action
    if not args.yes and not sys.stdin.isatty():
        raise UsageError(f"refusing to {action} messages of {args.name!r} without "
                         "confirmation: stdin is not a terminal, pass --yes")


def _finish(args: argparse.Namespace, ids: list[str] | None, result: ActionResult,
            outcome: BulkOutcome | None) -> int:
    action = args.queues_action
    if outcome is None:
        raise BrokerError(f"{action} {args.name!r}: {result.message}")
    if result.audit_error:
        print(f"lazycelery: warning: not written to the audit log: {result.audit_error}",
              file=sys.stderr)
    _print(outcome, result.message, args)
    incomplete = outcome.gone or outcome.not_found or outcome.skipped
    return 1 if ids is not None and incomplete else 0


def _run_remote(args: argparse.Namespace, read_only: bool) -> int:
    """The same question (the count from serve's /api/v1/queues) and output, the operation run
    and audited by serve (``POST /api/v1/actions/queues/ACTION``) with the token's name."""
    from lazycelery.core.actions import guard
    from lazycelery.core.actions_remote import RemoteActions, RemoteQueueOps
    from lazycelery.core.ingest_remote import remote_target

    action = args.queues_action
    server, token = remote_target(args.server, args.token)
    assert server is not None
    guard(read_only, action)  # this process's --read-only: refused before asking serve
    ids = _ids(args)
    _terminal_or_yes(args)
    if not _confirmed(args, ids, RemoteQueueOps(server, token).stats):
        print("Nothing changed.")
        return 1
    actions = RemoteActions(server, token, read_only=read_only)
    result, outcome = actions.queue_bulk(action, args.name, getattr(args, "target", None), ids,
                                         args.limit)
    return _finish(args, ids, result, outcome)
