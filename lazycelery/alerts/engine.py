"""The evaluator: ingest batches feed the shared counters (``feed``), and each ``tick`` checks
every rule once (O(rules)), moves its state and hands each transition, as a
``Notification``, to the ``Notifier`` (or one log line when there is none)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from lazycelery.alerts.conditions import Check, Condition, World, build_condition, on_status
from lazycelery.alerts.describe import describe_rule
from lazycelery.alerts.feeds import Feeds
from lazycelery.alerts.rule import Rule
from lazycelery.alerts.state import FIRING, AlertState, Transition
from lazycelery.broker.model import QueueSnapshot
from lazycelery.core.ingest_status import IngestStatus
from lazycelery.core.model import TaskRecord, WorkerRecord
from lazycelery.notify.message import Notification, Notifier
from lazycelery.urls import error_line

__all__ = ["Evaluator", "notification_for", "transition_line"]

log = logging.getLogger(__name__)

#: task ids a notification links to, at most
MAX_LINKED = 20
_TASK_KINDS = frozenset({"failures", "failure_ratio", "runtime_p95", "periodic",
                         "stuck_started"})


class Evaluator:
    """All rules of one environment. Not thread-safe: one thread feeds and ticks it (the
    ``AlertRunner``, or a replay)."""

    def __init__(self, rules: Sequence[Rule], *, now: float, environment: str | None = None,
                 notifier: Notifier | None = None,
                 silences: Callable[[], Mapping[str, float]] | None = None,
                 say: Callable[[str], None] | None = None) -> None:
        self.rules = tuple(rules)
        self.environment = environment
        self.notifier = notifier
        self.silences = silences if silences is not None else dict
        self.say = say if say is not None else log.warning
        self.feeds = Feeds()
        self.world = World(started=now)
        self._checks = [(AlertState(rule), build_condition(rule, self.feeds))
                        for rule in self.rules]
        self.wanted = self.feeds.wanted
        self.ticks = 0
        self._broken: set[str] = set()
        #: notifications the notifier could not queue
        self.lost = 0

    @property
    def states(self) -> list[AlertState]:
        return [state for state, _ in self._checks]

    def feed(self, events: Sequence[Mapping[str, Any]],
             records: Sequence[TaskRecord | WorkerRecord | None], now: float) -> None:
        """One ingest batch (the records as they were after it: copies, or the replay's)."""
        workers = self.feeds.workers
        by_kind: dict[str, list[TaskRecord]] = {}
        for event, rec in zip(events, records, strict=False):
            if rec is None:
                continue
            kind = event.get("type")
            if rec.__class__ is TaskRecord and isinstance(kind, str):
                found = by_kind.get(kind)
                if found is None:
                    by_kind[kind] = [rec]
                else:
                    found.append(rec)
            elif rec.__class__ is WorkerRecord and isinstance(kind, str):
                workers.add(rec, kind, now)
        on_tasks = self.feeds.on_tasks
        for kind, recs in by_kind.items():
            on_tasks(kind, recs, now)

    def on_queues(self, snapshot: QueueSnapshot) -> None:
        self.world.queues = snapshot

    def on_status(self, status: IngestStatus, now: float) -> None:
        on_status(self.world, status, now)

    def tick(self, now: float) -> list[Transition]:
        """Check every rule once; returns the transitions (already told)."""
        self.ticks += 1
        silences = self.silences()
        transitions = []
        for state, check in self._checks:
            silenced = silences.get(state.rule.name, 0.0) > now
            transition = state.update(self._check(state, check, now), now, silenced)
            if transition is not None:
                transitions.append(transition)
                self._tell(transition)
        return transitions

    def _check(self, state: AlertState, check: Condition, now: float) -> Check | None:
        """One rule's check; one that raises is reported once and counts as not known (the
        other rules go on)."""
        try:
            return check(now, self.world)
        except Exception as exc:
            name = state.rule.name
            if name not in self._broken:
                self._broken.add(name)
                self.say(f"alert {name}: its check failed ({error_line(exc, limit=200)})")
            return None

    def _tell(self, transition: Transition) -> None:
        line = transition_line(transition)
        if not transition.told:
            self.say(f"{line} (not notified: {transition.why})")
            return
        notifier, channels = self.notifier, transition.rule.notify
        if notifier is None or not channels:
            self.say(line)
            return
        if not notifier.submit(notification_for(transition, self.environment), channels):
            self.lost += 1
            self.say(f"{line} (notification lost: the delivery queue is full)")

    def snapshot(self, now: float) -> list[dict[str, Any]]:
        silences = self.silences()
        return [state.as_dict(now, _until(silences, state.rule.name, now))
                for state, _ in self._checks]

    def firing(self) -> list[AlertState]:
        return [state for state, _ in self._checks if state.state == FIRING]


def _until(silences: Mapping[str, float], name: str, now: float) -> float | None:
    until = silences.get(name)
    return until if until is not None and until > now else None


def transition_line(t: Transition) -> str:
    """``alert billing-failures firing: 12 failures in 5m (threshold 10)``."""
    return f"alert {t.rule.name} {t.kind}: {t.check.summary}"


def notification_for(t: Transition, environment: str | None) -> Notification:
    rule, check = t.rule, t.check
    labels = {"rule": rule.name, "kind": rule.kind}
    if check.members:
        labels["members"] = ", ".join(check.members[:MAX_LINKED])
    links: dict[str, str] = {}
    if rule.kind in _TASK_KINDS:
        state = " state:failure" if rule.kind in ("failures", "failure_ratio") else ""
        links["filter"] = f"{rule.filter}{state}".strip()
    if check.tasks:
        links["tasks"] = ",".join(check.tasks[:MAX_LINKED])
    text = "\n".join(part for part in (
        rule.description, f"condition: {describe_rule(rule)}", f"now: {check.summary}") if part)
    return Notification(
        kind=f"alert.{t.kind}", key=f"{environment or '-'}/{rule.name}",
        title=f"[{t.kind.upper()}] {rule.name}: {check.summary}", text=text, created=t.at,
        severity=rule.severity if t.kind == FIRING else "info", environment=environment,
        labels=labels, links=links,
        payload={"value": check.value, "threshold": rule.threshold, "count": rule.count,
                 "rate": rule.rate, "ratio": rule.ratio, "state": t.kind,
                 "members": list(check.members), "for": rule.for_, "window": rule.window})
