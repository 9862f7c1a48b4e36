"""Routing: exchanges, bindings and queues as a tree with each queue's consumers (the workers'
``active_queues``) and the app's ``task_routes``; and where one task name goes and who eats it."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from lazycelery.broker.dead_letters import topic_matches
from lazycelery.broker.keys import Binding

__all__ = [
    "Edge",
    "RoutingTree",
    "TaskRoute",
    "build_tree",
    "consumer_edges",
    "route_task",
    "task_route_rules",
]

#: the default exchange ("" in AMQP) as shown
DEFAULT_EXCHANGE = "(default)"


class Edge(msgspec.Struct, frozen=True):
    """exchange --routing_key--> queue, and who reported it (``broker`` or ``workers``)."""

    exchange: str
    routing_key: str
    queue: str
    source: str = "broker"


class RoutingTree(msgspec.Struct, kw_only=True):
    """Everything ``queues routes`` shows; ``--json`` is this, as builtins."""

    #: exchange -> its type, None when the broker doesn't record it (Redis)
    exchanges: dict[str, str | None]
    edges: list[Edge]
    #: queue -> worker hostnames consuming it
    consumers: dict[str, list[str]]
    #: queue -> ready messages (None: unknown)
    ready: dict[str, int | None]
    #: the app's task_routes, one readable rule each (``-A``); None without an app
    task_routes: list[str] | None = None
    notes: list[str] = msgspec.field(default_factory=list)


class TaskRoute(msgspec.Struct, kw_only=True):
    """Where ``task`` is published and which queues and workers get it."""

    task: str
    rule: str
    queue: str | None
    exchange: str
    exchange_type: str | None
    routing_key: str
    #: queues the exchange delivers it to (from the bindings)
    delivered_to: list[str]
    #: queue -> consuming workers
    consumers: dict[str, list[str]]
    #: False when no binding delivers it yet: Celery declares the queue (and binds it) on its
    #: first publish, so it lands there, but nobody has consumed from it so far
    declared: bool = True


def consumer_edges(replies: Mapping[str, Any] | None) -> tuple[list[Edge], dict[str, list[str]],
                                                                 dict[str, str]]:
    """From ``inspect().active_queues()`` replies: the bindings workers declared, queue ->
    hostnames, and exchange -> type."""
    edges: list[Edge] = []
    consumers: dict[str, list[str]] = {}
    types: dict[str, str] = {}
    for host, queues in sorted((replies or {}).items()):
        for queue in queues or ():
            if not isinstance(queue, Mapping) or not isinstance(queue.get("name"), str):
                continue
            name = queue["name"]
            consumers.setdefault(name, []).append(str(host))
            exchange = queue.get("exchange") or {}
            exchange_name = exchange.get("name") if isinstance(exchange, Mapping) else None
            if isinstance(exchange_name, str):
                if isinstance(exchange.get("type"), str):
                    types[exchange_name] = exchange["type"]
                edges.append(Edge(exchange_name, str(queue.get("routing_key") or ""), name,
                                  "workers"))
    return edges, consumers, types


def _rule_text(pattern: str, route: Any) -> str:
    target = route if isinstance(route, str) else dict(route) if isinstance(route, Mapping) \
        else repr(route)
    return f"{pattern} -> {target}"


def _configured(app: Any) -> list[Any]:
    routes = app.conf.task_routes
    if routes is None:
        return []
    return [routes] if isinstance(routes, (Mapping, str)) else list(routes)


def _globs(app: Any) -> dict[str, str]:
    """compiled regex pattern -> the glob the user wrote (Celery keeps only the regex)."""
    return {re.compile(fnmatch.translate(key)).pattern: key
            for table in _configured(app) if isinstance(table, Mapping)
            for key in table if isinstance(key, str) and "*" in key}


def _router_name(router: Any) -> str:
    return f"router {getattr(router, '__name__', type(router).__name__)}"


def task_route_rules(app: Any) -> list[str]:
    """``task_routes`` as readable rules, in the order Celery tries them (globs as written)."""
    rules: list[str] = []
    for table in _configured(app):
        if isinstance(table, Mapping):
            rules.extend(_rule_text(str(getattr(key, "pattern", key)), route)
                         for key, route in table.items())
        else:
            rules.append(_router_name(table))
    return rules


def _matched_rule(app: Any, name: str) -> str:
    from celery.app.routes import MapRoute

    globs = _globs(app)
    for router in app.amqp.routes:
        if isinstance(router, MapRoute):
            if name in router.map:
                return f"task_routes[{name!r}]"
            for regex in router.patterns:
                if regex.match(name):
                    shown = globs.get(regex.pattern, f"/{regex.pattern}/")
                    return f"task_routes pattern {shown!r}"
        elif app.amqp.router.query_router(router, name, (), {}, {}, None) is not None:
            return _router_name(router)
    return f"no route matched: task_default_queue {app.conf.task_default_queue!r}"


def build_tree(bindings: Sequence[Binding], exchange_types: Mapping[str, str | None],
               replies: Mapping[str, Any] | None, ready: Mapping[str, int | None],
               app: Any | None = None) -> RoutingTree:
    """The broker's bindings, completed by what workers declared (RabbitMQ without its API)."""
    edges = {Edge(b.exchange, b.routing_key, b.queue) for b in bindings}
    worker_edges, consumers, worker_types = consumer_edges(replies)
    known = {(e.exchange, e.routing_key, e.queue) for e in edges}
    edges.update(e for e in worker_edges if (e.exchange, e.routing_key, e.queue) not in known)
    types: dict[str, str | None] = {**{k: v for k, v in worker_types.items()},
                                    **{k: v for k, v in exchange_types.items() if v}}
    for edge in edges:
        types.setdefault(edge.exchange, None)
    names = {e.queue for e in edges} | set(consumers) | set(ready)
    return RoutingTree(
        exchanges=dict(sorted(types.items())),
        edges=sorted(edges, key=lambda e: (e.exchange, e.routing_key, e.queue)),
        consumers={q: sorted(set(hosts)) for q, hosts in sorted(consumers.items())},
        ready={q: ready.get(q) for q in sorted(names)},
        task_routes=task_route_rules(app) if app is not None else None,
    )


def _delivers(kind: str | None, edge: Edge, routing_key: str) -> bool:
    if kind == "fanout":
        return True
    if kind == "topic":
        return topic_matches(edge.routing_key, routing_key)
    return edge.routing_key == routing_key


def route_task(app: Any, name: str, tree: RoutingTree) -> TaskRoute:
    """Celery's own router decides (``app.amqp.router``); the tree says who gets it."""
    options = app.amqp.router.route({}, name)
    queue = options.get("queue")
    queue_name = getattr(queue, "name", None)
    exchange_obj = getattr(queue, "exchange", None)
    exchange = options.get("exchange") or getattr(exchange_obj, "name", "") or ""
    exchange = getattr(exchange, "name", exchange)
    routing_key = options.get("routing_key") or getattr(queue, "routing_key", None) \
        or queue_name or ""
    kind = tree.exchanges.get(exchange) or getattr(exchange_obj, "type", None)
    if exchange in ("", DEFAULT_EXCHANGE):
        delivered = [routing_key]
    else:
        delivered = sorted({e.queue for e in tree.edges
                            if e.exchange == exchange and _delivers(kind, e, routing_key)})
    declared = bool(delivered)
    if not delivered and queue_name:
        delivered = [queue_name]
    return TaskRoute(
        task=name, rule=_matched_rule(app, name), queue=queue_name, declared=declared,
        exchange=exchange or DEFAULT_EXCHANGE, exchange_type=kind, routing_key=routing_key,
        delivered_to=delivered,
        consumers={q: tree.consumers.get(q, []) for q in delivered},
    )

