"""`lazycelery queues [peek NAME | purge NAME]`: queue figures from the broker, one-shot or watched."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from lazycelery.commands.argtypes import positive_int, seconds
from lazycelery.errors import BrokerError, UsageError
from lazycelery.text import counted

if TYPE_CHECKING:
    from lazycelery.broker import BrokerInspector
    from lazycelery.broker.model import PeekedMessage, QueueSnapshot
    from lazycelery.broker.monitor import QueueMonitor, WorkerProbe
    from lazycelery.config import Settings

__all__ = ["register", "run"]

HANDLER = "lazycelery.commands.queues:run"
MANAGEMENT_ENV = "LAZYCELERY_MANAGEMENT_URL"

EPILOG = """\
examples:
  lazycelery queues                      ready, reserved, consumers, rates and oldest per queue
  lazycelery queues --json | jq .        the same as one JSON document (docs/queues.md)
  lazycelery queues --watch              refresh every second until Ctrl-C
  lazycelery queues --waits 30           + waits, p95, arrival/drain, time to empty (30 s of events)
  lazycelery queues peek celery -n 5     the next 5 messages, without consuming them (Redis)
  lazycelery queues purge celery         delete its waiting messages (asks first)
  lazycelery queues move celery slow --ids ID1,ID2     move two messages (by task id)
  lazycelery queues delete celery --ids ID1            delete one waiting message
  lazycelery queues requeue-dead celery.dlq --all      dead letters back to their queues
  lazycelery -A proj queues routes                     exchanges, bindings, consumers, routes
  lazycelery -A proj queues route proj.tasks.add       where it goes and who consumes it
"""


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    parser = subparsers.add_parser(
        "queues", parents=[common], help="queue depths, consumers and rates; peek; purge",
        usage="lazycelery queues [options] [--json] [--watch] [--interval S] [--workers]\n"
              "                         [--management-url URL]\n"
              "       lazycelery queues peek NAME [-n N] [--json]\n"
              "       lazycelery queues purge NAME [--yes]\n"
              "       lazycelery queues move SRC DST (--ids ID,... | --all) [--yes] [--server URL]\n"
              "       lazycelery queues delete SRC (--ids ID,... | --all) [--yes] [--server URL]\n"
              "       lazycelery queues requeue-dead DLQ (--ids ID,... | --all) [--yes] "
              "[--server URL]\n"
              "       lazycelery queues routes [--json]\n"
              "       lazycelery queues route TASKNAME [--json]",
        description="Queue figures read from the broker (Redis or RabbitMQ); each figure "
                    "says where it came from in --json.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(handler=HANDLER)
    parser.add_argument("--json", action="store_true",
                        help="one JSON document (with --watch: one per line)")
    parser.add_argument("--watch", action="store_true", help="refresh until Ctrl-C")
    parser.add_argument("--interval", type=seconds, default=1.0, metavar="S",
                        help="seconds between refreshes with --watch (default 1)")
    parser.add_argument("--workers", action="store_true",
                        help="also ask live workers which queues they consume (by name; on "
                             "RabbitMQ without the management API a read-only inspect "
                             "broadcast finds them): adds their queues and, on Redis, "
                             "consumer counts")
    parser.add_argument("--waits", type=seconds, default=None, metavar="S",
                        help="also listen to task events for S seconds and report per queue "
                             "the wait (task-sent -> task-received), its p95, arrival vs "
                             "drain rate and time to empty")
    parser.add_argument("--management-url", metavar="URL", default=None,
                        help="RabbitMQ management API, e.g. http://host:15672/api/ (default: "
                             f"derived from the broker URL, or ${MANAGEMENT_ENV}; 'none' "
                             "disables it)")
    actions = parser.add_subparsers(title="actions", metavar="ACTION", dest="queues_action")
    peek = actions.add_parser("peek", parents=[common], help="show the next messages of a queue",
                              description="The next messages in consumption order, decoded "
                                          "without consuming them (never unpickled).")
    peek.add_argument("name", metavar="NAME", help="queue name")
    peek.add_argument("-n", type=positive_int, default=10, metavar="N",
                      help="how many messages (default 10)")
    peek.add_argument("--json", action="store_true", help="one JSON document")
    purge = actions.add_parser("purge", parents=[common], help="delete a queue's waiting messages",
                               description="Delete the ready messages of one queue (all "
                                           "priorities). Reserved (unacked) messages are kept.")
    purge.add_argument("name", metavar="NAME", help="queue name")
    purge.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    from lazycelery.commands.queue_bulk import register_bulk

    register_bulk(actions, common)
    from lazycelery.commands.queue_routes import register_routes

    register_routes(actions, common)


def run(args: argparse.Namespace) -> int:
    from lazycelery import config

    settings = config.resolve(args)
    action = getattr(args, "queues_action", None)
    if action == "purge":
        return _purge(args, settings)
    if action in ("move", "delete", "requeue-dead"):
        from lazycelery.commands.queue_bulk import run_bulk

        return run_bulk(args, settings, _open)
    if action in ("routes", "route"):
        from lazycelery.commands.queue_routes import run_routes

        return run_routes(args, settings, _open)
    inspector = _open(args, settings)
    try:
        if action == "peek":
            return _peek(args, settings, inspector)
        return _list(args, settings, inspector)
    finally:
        inspector.close()


def _open(args: argparse.Namespace, settings: Settings) -> BrokerInspector:
    from lazycelery.broker import open_inspector
    from lazycelery.config import check_url

    management = getattr(args, "management_url", None)
    if management is not None and management.strip().lower() in ("", "none", "off"):
        management = ""
    elif management is None:
        management = settings.management_url  # LAZYCELERY_MANAGEMENT_URL or the environment's
    else:
        management = check_url(management, "--management-url")
    return open_inspector(settings.broker_url, settings.transport_options, settings.queues,
                          management_url=management, dead_letter=settings.dead_letter,
                          ssl_options=settings.broker_ssl())


def _print_json(document: Any, *, pretty: bool) -> None:
    import msgspec

    from lazycelery.text import json_visible

    data = msgspec.json.encode(document)
    data = json_visible(msgspec.json.format(data, indent=2) if pretty else data)
    sys.stdout.write(data.decode() + "\n")
    sys.stdout.flush()


def _worker_probe(settings: Settings, inspector: BrokerInspector) -> WorkerProbe:
    from lazycelery.broker.workers import worker_probe

    return worker_probe(settings.celery_app, inspector)


def _list(args: argparse.Namespace, settings: Settings, inspector: BrokerInspector) -> int:
    from lazycelery.broker.monitor import QueueMonitor

    workers = _worker_probe(settings, inspector) if args.workers else None
    monitor = QueueMonitor(inspector, interval=args.interval, workers=workers)
    first = monitor.refresh()
    if first.error:
        raise BrokerError(first.error)
    if getattr(args, "waits", None) and not args.watch:
        return _show_waits(first, args, settings, monitor)
    if not args.watch:
        _show(first, args, settings, pretty=True)
        return 0
    return _watch(monitor, first, args, settings)


def _show_waits(first: QueueSnapshot, args: argparse.Namespace, settings: Settings,
                monitor: QueueMonitor) -> int:
    from lazycelery.broker.report import format_snapshot, snapshot_document
    from lazycelery.commands.queue_waits_cmd import collect_waits, format_waits, wait_json

    waits = collect_waits(settings, args.waits)
    snapshot = monitor.refresh()  # depths at the end of the window, for the time to empty
    if snapshot.error:
        snapshot = first
    summary = waits.summary({q.name: q.ready for q in snapshot.queues})
    if args.json:
        document = snapshot_document(snapshot, settings.masked_broker())
        for row in document["queues"]:
            row["wait"] = wait_json(summary.get(row["name"]))
        _print_json(document, pretty=True)
    else:
        print(format_snapshot(snapshot, settings.masked_broker()) + "\n")
        print(format_waits(snapshot, summary))
    return 0


def _show(snapshot: QueueSnapshot, args: argparse.Namespace, settings: Settings, *,
          pretty: bool) -> None:
    from lazycelery.broker.report import format_snapshot, snapshot_document

    if args.json:
        _print_json(snapshot_document(snapshot, settings.masked_broker()), pretty=pretty)
        return
    text = format_snapshot(snapshot, settings.masked_broker())
    if args.watch and sys.stdout.isatty():
        # Home + clear, then the whole table: one write per refresh, no flicker of partial rows.
        text = f"\x1b[H\x1b[2J{text}\n\n(refreshing every {args.interval:g}s; Ctrl-C quits)"
    elif args.watch:
        text += "\n"
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _watch(monitor: QueueMonitor, first: QueueSnapshot, args: argparse.Namespace,
           settings: Settings) -> int:
    import queue as queue_module

    updates: queue_module.Queue[QueueSnapshot] = queue_module.Queue()
    monitor.on_update(updates.put)
    _show(first, args, settings, pretty=False)
    monitor.start()
    try:
        while True:
            try:
                snapshot = updates.get(timeout=0.5)  # a timeout keeps Ctrl-C responsive
            except queue_module.Empty:
                continue
            _show(snapshot, args, settings, pretty=False)
    except KeyboardInterrupt:
        return 0
    finally:
        monitor.stop()


def _peek(args: argparse.Namespace, settings: Settings, inspector: BrokerInspector) -> int:
    from lazycelery.broker.report import format_peek, peek_document

    messages = _masked(inspector.peek(args.name, args.n), settings)
    if args.json:
        _print_json(peek_document(args.name, settings.masked_broker(), messages), pretty=True)
    else:
        print(format_peek(args.name, messages))  # escapes made visible there
    return 0


def _masked(messages: list[PeekedMessage], settings: Settings) -> list[PeekedMessage]:
    """The messages with their arguments masked as ingest masks events (docs/masking.md)."""
    from lazycelery.core.queue_ops import mask_peeked
    from lazycelery.mask.settings import masker_for

    return mask_peeked(messages, masker_for(settings, save_counts=False))


def _answer(prompt: str) -> str:
    try:
        return input(prompt).strip()
    except EOFError:
        return ""


def _confirm(prompt: str) -> bool:
    return _answer(prompt).lower() in ("y", "yes")


def _purge(args: argparse.Namespace, settings: Settings) -> int:
    # The same guard, audit line and typed confirmation as the dashboard's purge.
    from lazycelery.core.actions import TYPED_CONFIRM_THRESHOLD, Actions
    from lazycelery.store.audit import store_sink
    from lazycelery.text import visible

    actions = Actions.from_settings(settings, audit_sink=store_sink(settings.store_url))
    actions.guard("purge")
    if not args.yes and not sys.stdin.isatty():
        raise UsageError(f"refusing to purge queue {args.name!r} without confirmation: "
                         "stdin is not a terminal, pass --yes")
    inspector = _open(args, settings)
    try:
        waiting = inspector.stats(args.name).ready
        if not args.yes:
            if not waiting:
                print(f"Queue {visible(args.name)} has no waiting messages: nothing to purge.")
                return 0
            if waiting > TYPED_CONFIRM_THRESHOLD:
                question = (f"Purge {counted(waiting, 'message', short=True)} from queue "
                            f"{visible(args.name)}? Type the queue name to confirm: ")
                confirmed = _answer(question) == args.name
            else:
                confirmed = _confirm(f"Purge {counted(waiting, 'message', short=True)} from queue "
                                     f"{visible(args.name)}? [y/N] ")
            if not confirmed:
                print("Not purged.")
                return 1
        result = actions.purge(args.name, inspector.purge, expected=None if args.yes else waiting)
    finally:
        inspector.close()
    if not result.ok:
        raise BrokerError(f"queue {args.name!r}: {result.message}")
    if result.audit_error:
        print(f"lazycelery: warning: the purge was not written to the audit log: "
              f"{result.audit_error}", file=sys.stderr)
    purged = "the messages" if result.count is None else counted(result.count, "message", short=True)
    print(f"Purged {purged} from queue {visible(args.name)} "
          "(reserved messages, held by workers, were not touched).")
    return 0
