"""The life of one rule's alert: ok -> pending (for ``for``) -> firing -> resolved, and which
transitions are told (not while silenced, not again within the cooldown)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from lazycelery.alerts.conditions import Check
from lazycelery.alerts.describe import describe_rule
from lazycelery.alerts.rule import Rule

__all__ = ["FIRING", "OK", "PENDING", "RESOLVED", "AlertState", "Transition"]

OK: Final = "ok"
PENDING: Final = "pending"
FIRING: Final = "firing"
RESOLVED: Final = "resolved"


@dataclass(frozen=True)
class Transition:
    """A rule went firing or resolved at ``at``; ``told`` is False when it was kept quiet
    (``why``: silenced, cooldown)."""

    rule: Rule
    kind: str  # "firing" or "resolved"
    at: float
    check: Check
    told: bool
    why: str = ""


class AlertState:
    """One rule's state. ``update`` is called once per tick with the condition's check."""

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.state = OK
        self.since: float | None = None  # when the current state began
        self.last: Check | None = None
        self.fired_at: float | None = None
        self.resolved_at: float | None = None
        self.told_at: float | None = None  # the last firing that was told
        self._told_firing = False

    def update(self, check: Check | None, now: float, silenced: bool) -> Transition | None:
        if check is None:  # not known this tick (queue figures stale): no change
            return None
        self.last = check
        if check.breached:
            if self.state in (OK, RESOLVED):
                self.state, self.since = PENDING, now
            if self.state == PENDING and now - (self.since or now) >= self.rule.for_:
                return self._fire(check, now, silenced)
            return None
        if self.state == PENDING:
            self.state = RESOLVED if self.fired_at is not None else OK
            self.since = now
        elif self.state == FIRING:
            self.state, self.since, self.resolved_at = RESOLVED, now, now
            told = self._told_firing
            self._told_firing = False
            return Transition(self.rule, RESOLVED, now, check, told,
                              "" if told else "its firing was not told")
        return None

    def _fire(self, check: Check, now: float, silenced: bool) -> Transition:
        self.state, self.since, self.fired_at = FIRING, now, now
        why = ""
        if silenced:
            why = "silenced"
        elif self.told_at is not None and now - self.told_at < self.rule.cooldown:
            why = "cooldown"
        self._told_firing = not why
        if not why:
            self.told_at = now
        return Transition(self.rule, FIRING, now, check, not why, why)

    def as_dict(self, now: float, silenced_until: float | None = None) -> dict[str, Any]:
        rule, last = self.rule, self.last
        return {
            "name": rule.name, "kind": rule.kind, "condition": describe_rule(rule),
            "severity": rule.severity, "notify": list(rule.notify),
            "environment": rule.environment, "state": self.state, "since": self.since,
            "value": last.value if last else None, "summary": last.summary if last else "",
            "members": list(last.members) if last else [],
            "tasks": list(last.tasks) if last else [],
            "fired_at": self.fired_at, "resolved_at": self.resolved_at,
            "silenced_until": silenced_until,
        }
