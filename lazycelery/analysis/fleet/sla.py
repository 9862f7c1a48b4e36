"""SLA monitoring: per task name a target runtime and / or wait (the config's
``[sla."task.name"]`` table, ``runtime = "2s"``, ``wait = "30s"``), the finished tasks that
broke one, counted per name and listed newest first.

A name may be a glob (``"reports.*"``); an exact name wins over a glob, and of several globs
the longest. ``runtime`` is compared with the task's runtime, ``wait`` with the time between
task-sent (else task-received) and task-started (``samples.TaskSample``)."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from lazycelery.analysis.fleet.samples import TaskSample

__all__ = ["Breach", "SlaReport", "SlaRow", "SlaTarget", "evaluate", "target_for", "targets"]

#: breaches listed by ``evaluate`` (the counts are always complete)
LISTED: Final = 200

Kind = Literal["runtime", "wait"]


@dataclass(frozen=True)
class SlaTarget:
    pattern: str
    runtime: float | None = None
    wait: float | None = None

    def limit(self, kind: Kind) -> float | None:
        return self.runtime if kind == "runtime" else self.wait


def targets(config: Mapping[str, tuple[float | None, float | None]]) -> list[SlaTarget]:
    """The settings' ``sla`` (name -> (runtime, wait) seconds) as targets."""
    return [SlaTarget(name, runtime, wait) for name, (runtime, wait) in sorted(config.items())
            if runtime is not None or wait is not None]


def target_for(name: str, found: Sequence[SlaTarget]) -> SlaTarget | None:
    exact = [t for t in found if t.pattern == name]
    if exact:
        return exact[0]
    globs = [t for t in found if any(c in t.pattern for c in "*?[")
             and fnmatch.fnmatchcase(name, t.pattern)]
    return max(globs, key=lambda t: (len(t.pattern), t.pattern)) if globs else None


@dataclass(frozen=True)
class Breach:
    uuid: str
    name: str
    worker: str
    finished: float
    kind: Kind
    value: float
    limit: float

    def as_json(self) -> dict[str, Any]:
        return {"uuid": self.uuid, "name": self.name, "worker": self.worker,
                "finished": self.finished, "kind": self.kind, "value": self.value,
                "limit": self.limit}


@dataclass
class SlaRow:
    """One task name under a target: tasks checked and breaches of each kind."""

    name: str
    target: SlaTarget
    checked: int = 0
    runtime_breaches: int = 0
    wait_breaches: int = 0
    worst: dict[str, float] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "target": self.target.pattern,
                "runtime_limit": self.target.runtime, "wait_limit": self.target.wait,
                "checked": self.checked, "runtime_breaches": self.runtime_breaches,
                "wait_breaches": self.wait_breaches, "worst": dict(self.worst)}


@dataclass(frozen=True)
class SlaReport:
    rows: tuple[SlaRow, ...]
    breaches: tuple[Breach, ...]  # newest first, at most LISTED
    total_breaches: int

    def as_json(self) -> dict[str, Any]:
        return {"rows": [r.as_json() for r in self.rows], "total_breaches": self.total_breaches,
                "breaches": [b.as_json() for b in self.breaches]}


def evaluate(samples: Iterable[TaskSample], found: Sequence[SlaTarget],
             listed: int = LISTED) -> SlaReport:
    rows: dict[str, SlaRow] = {}
    breaches: list[Breach] = []
    resolved: dict[str, SlaTarget | None] = {}
    for s in samples:
        if s.name not in resolved:
            resolved[s.name] = target_for(s.name, found)
        target = resolved[s.name]
        if target is None:
            continue
        row = rows.get(s.name)
        if row is None:
            row = rows[s.name] = SlaRow(s.name, target)
        row.checked += 1
        checks: tuple[tuple[Kind, float | None], ...] = (("runtime", s.runtime),
                                                         ("wait", s.wait))
        for kind, value in checks:
            limit = target.limit(kind)
            if limit is None or value is None or value <= limit:
                continue
            if kind == "runtime":
                row.runtime_breaches += 1
            else:
                row.wait_breaches += 1
            row.worst[kind] = max(row.worst.get(kind, value), value)
            breaches.append(Breach(s.uuid, s.name, s.worker, s.finished,
                                   kind, value, limit))
    breaches.sort(key=lambda b: (-b.finished, b.uuid, b.kind))
    ordered = sorted(rows.values(), key=lambda r: (-(r.runtime_breaches + r.wait_breaches),
                                                   r.name))
    return SlaReport(tuple(ordered), tuple(breaches[:listed]), len(breaches))
