"""Text for ``lazycelery queues routes`` (the exchange -> binding -> queue tree with consumers)
and ``queues route TASKNAME``; every broker-supplied value shown through ``visible``."""

from __future__ import annotations

from lazycelery.broker.routing import DEFAULT_EXCHANGE, RoutingTree, TaskRoute
from lazycelery.text import number, visible

__all__ = ["ROUTES_SCHEMA", "format_task_route", "format_tree"]

ROUTES_SCHEMA = "lazycelery.routes/1"


def _consumers(hosts: list[str]) -> str:
    return ", ".join(visible(h) for h in hosts) if hosts else "none"


def _queue_line(tree: RoutingTree, queue: str) -> str:
    ready = tree.ready.get(queue)
    return (f"queue {visible(queue)}  ready {number(ready, missing='-')}  "
            f"consumers: {_consumers(tree.consumers.get(queue, []))}")


def format_tree(tree: RoutingTree, app_spec: str | None) -> str:
    lines: list[str] = []
    for exchange, kind in tree.exchanges.items():
        edges = [e for e in tree.edges if e.exchange == exchange]
        lines.append(f"exchange {visible(exchange or DEFAULT_EXCHANGE)}"
                     + (f" ({visible(kind)})" if kind else ""))
        for i, edge in enumerate(edges):
            branch = "└─" if i == len(edges) - 1 else "├─"
            key = visible(edge.routing_key) if edge.routing_key else "(any)"
            via = "  [declared by workers]" if edge.source == "workers" else ""
            lines.append(f"  {branch} {key} -> {_queue_line(tree, edge.queue)}{via}")
    unbound = [q for q in tree.ready if all(e.queue != q for e in tree.edges)]
    if unbound:
        lines.append("queues without a binding (default exchange only):")
        lines.extend(f"  {_queue_line(tree, q)}" for q in unbound)
    if not lines:
        lines.append("no exchanges or queues found")
    if tree.task_routes is None:
        lines.append("task_routes: pass -A/--app to include the app's routes")
    else:
        lines.append(f"task_routes (-A {visible(app_spec or '?')}):"
                     + ("" if tree.task_routes else " none (every task goes to "
                        "task_default_queue)"))
        lines.extend(f"  {visible(rule)}" for rule in tree.task_routes)
    lines.extend(f"note: {visible(note)}" for note in tree.notes)
    return "\n".join(lines)


def format_task_route(route: TaskRoute) -> str:
    lines = [f"task {visible(route.task)}",
             f"  routed by: {visible(route.rule)}",
             f"  published to exchange {visible(route.exchange)}"
             + (f" ({visible(route.exchange_type)})" if route.exchange_type else "")
             + f" with routing key {visible(route.routing_key) or '(empty)'}"]
    if not route.delivered_to:
        lines.append("  delivered to: NO queue is bound for this routing key (the message "
                     "would be dropped)")
    if not route.declared:
        lines.append("  (no binding yet: Celery declares the queue on its first publish)")
    for queue in route.delivered_to:
        hosts = route.consumers.get(queue, [])
        lines.append(f"  delivered to queue {visible(queue)}: consumed by {_consumers(hosts)}"
                     + ("  <- nobody eats it" if not hosts else ""))
    return "\n".join(lines)
