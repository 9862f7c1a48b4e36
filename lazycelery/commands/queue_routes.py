"""`lazycelery queues routes` and `queues route TASKNAME`: exchanges, bindings and queues with
their consumers and the app's task_routes; where one task goes and who consumes it."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lazycelery.broker import BrokerInspector
    from lazycelery.broker.routing import RoutingTree
    from lazycelery.config import Settings

__all__ = ["register_routes", "run_routes"]

Opener = Callable[[argparse.Namespace, "Settings"], "BrokerInspector"]


def register_routes(actions: argparse._SubParsersAction[argparse.ArgumentParser],
                    common: argparse.ArgumentParser) -> None:
    routes = actions.add_parser(
        "routes", parents=[common], help="exchanges -> bindings -> queues, consumers, routes",
        description="The routing tree: each exchange's bindings to queues, with ready "
                    "messages and the workers consuming each queue (asked by name), and the "
                    "app's task_routes (with -A). RabbitMQ: bindings need the management API; "
                    "without it only the workers' own bindings are known.")
    routes.add_argument("--json", action="store_true", help="one JSON document")
    route = actions.add_parser(
        "route", parents=[common], help="where does a task go, and who consumes it",
        description="Celery's router (task_routes of -A) names the queue and exchange; the "
                    "bindings say which queues get it; the workers say who consumes them.")
    route.add_argument("task", metavar="TASKNAME", help="a task name, e.g. proj.tasks.add")
    route.add_argument("--json", action="store_true", help="one JSON document")


def _tree(settings: Settings, inspector: BrokerInspector) -> RoutingTree:
    from lazycelery.broker.routing import build_tree
    from lazycelery.broker.workers import active_queue_replies

    bindings, types = inspector.bindings()
    snapshot = inspector.snapshot()
    app = settings.celery_app()
    notes: list[str] = []
    try:
        replies = active_queue_replies(app, inspector)
    except Exception as exc:
        replies = {}
        notes.append(f"asking workers for their queues failed: {exc}")
    tree = build_tree(bindings, types, replies, {q.name: q.ready for q in snapshot.queues},
                      app if settings.app_spec else None)
    if inspector.transport == "amqp" and not bindings:
        notes.append("no bindings from the management API: showing what workers declared")
    tree.notes.extend(notes)
    return tree


def run_routes(args: argparse.Namespace, settings: Settings, open_inspector: Opener) -> int:
    import msgspec

    from lazycelery.broker.route_report import ROUTES_SCHEMA, format_task_route, format_tree
    from lazycelery.broker.routing import route_task
    from lazycelery.text import json_visible

    inspector = open_inspector(args, settings)
    try:
        tree = _tree(settings, inspector)
    finally:
        inspector.close()
    document: Any
    if args.queues_action == "route":
        route = route_task(settings.celery_app(), args.task, tree)
        if not settings.app_spec:
            tree.notes.append("no -A: Celery's defaults route every task to "
                              "task_default_queue")
        text = format_task_route(route) + "".join(f"\nnote: {n}" for n in tree.notes)
        document = {"schema": ROUTES_SCHEMA, "route": route, "notes": tree.notes}
    else:
        text = format_tree(tree, settings.app_spec)
        document = {"schema": ROUTES_SCHEMA, "tree": tree}
    if args.json:
        data = msgspec.json.format(msgspec.json.encode(document), indent=2)
        print(json_visible(data).decode())
    else:
        print(text)
    return 0
