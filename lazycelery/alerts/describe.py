"""A rule's condition in a few words, for the CLI, the logs and the notifications."""

from __future__ import annotations

from lazycelery.alerts.rule import Rule

__all__ = ["describe_rule", "seconds"]


def seconds(value: float | None) -> str:
    """A configured duration as it would be written: ``500ms``, ``30s``, ``5m``, ``2h``, ``7d``."""
    if value is None:
        return "?"
    if 0 < value < 1:
        return f"{value * 1000:g}ms"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if value >= size and value % size == 0:
            return f"{value / size:g}{unit}"
    return f"{value:g}s"


def describe_rule(rule: Rule) -> str:
    scope = f" of {rule.filter}" if rule.filter else ""
    window = seconds(rule.window)
    kind = rule.kind
    if kind == "failures":
        if rule.rate is not None:
            return f"failures{scope} >= {rule.rate:g}/s over {window}"
        return f"failures{scope} >= {rule.count or 1:g} in {window}"
    if kind == "failure_ratio":
        return f"failure ratio{scope} >= {rule.ratio or 0:.0%} in {window}"
    if kind == "queue_depth":
        return f"queue {rule.queue} ready >= {rule.threshold or 0:g}"
    if kind == "queue_age":
        return f"queue {rule.queue} oldest message >= {seconds(rule.threshold)}"
    if kind == "no_consumer":
        return f"queue {rule.queue} has no consumer"
    if kind == "worker_offline":
        after = f" (no heartbeat for {seconds(rule.threshold)})" if rule.threshold else ""
        return f"worker {rule.worker} offline or lost{after}"
    if kind == "runtime_p95":
        return f"runtime p95{scope} >= {seconds(rule.threshold)} over {window}"
    if kind == "periodic":
        return (f"no success{scope} within {seconds(rule.interval)}"
                f" + {seconds(rule.slack)}")
    if kind == "ingest_gap":
        return f"event stream down or a gap >= {seconds(rule.threshold or 0)} in {window}"
    return f"tasks{scope} STARTED for >= {seconds(rule.threshold)}"
