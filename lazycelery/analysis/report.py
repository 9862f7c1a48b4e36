"""Error groups as JSON documents and text tables (the CLI's output, and serve's when it has
one), and trends: failures per minute, hour or day, per group or overall."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from lazycelery.analysis.counts import Buckets
from lazycelery.analysis.groups import ErrorGroup, ErrorGroups
from lazycelery.analysis.hints import hints_for
from lazycelery.analysis.similar import Cluster, clusters

__all__ = ["UNITS", "group_json", "groups_json", "trend", "trend_json"]

#: trend bucket widths in seconds
UNITS: Final = {"minute": 60, "hour": 3600, "day": 86400}


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t).astimezone().isoformat(timespec="seconds")


def group_json(group: ErrorGroup, groups: ErrorGroups, *, now: float, new_within: float,
               cluster: str | None = None, with_hints: bool = True) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "group": group.key,
        "exception": group.fp.exc_type,
        "message": group.fp.message,
        "frames": list(group.fp.frames),
        "example": group.example,
        "count": group.count,
        "failed": group.failed,
        "retried": group.retried,
        "from_history": group.from_history,
        "first_seen": _iso(group.first_seen),
        "last_seen": _iso(group.last_seen),
        "new": group.is_new(now, new_within),
        "tasks": dict(group.names.top()),
        "workers": dict(group.workers.top()),
        "queues": dict(group.queues.top()),
        "versions": dict(group.versions.top()),
        "task_ids": list(group.task_ids)[-20:],
        "cluster": cluster,
    }
    if with_hints:
        doc["hints"] = [h.to_json() for h in hints_for(group, groups)]
    return doc


def _cluster_of(found: Sequence[Cluster]) -> dict[str, str]:
    return {g.key: c.key for c in found for g in c.groups}


def groups_json(groups: ErrorGroups, *, now: float, new_within: float = 600.0,
                limit: int | None = None) -> dict[str, Any]:
    """Every group (most failures first), the clusters, and the totals."""
    ranked = groups.ranked()
    found = clusters(ranked)
    of = _cluster_of(found)
    shown = ranked if limit is None else ranked[:limit]
    return {
        "failures": groups.failures,
        "from_history": groups.from_history,
        "finished": groups.finished,
        "groups_total": len(ranked),
        "observed": {"from": _iso(groups.first_time) if groups.first_time else None,
                     "to": _iso(groups.last_time) if groups.last_time else None},
        "groups": [group_json(g, groups, now=now, new_within=new_within, cluster=of.get(g.key))
                   for g in shown],
        "clusters": [{"cluster": c.key, "groups": [g.key for g in c.groups], "count": c.count,
                      "min_similarity": round(c.min_similarity, 3)} for c in found],
    }


def trend(groups: ErrorGroups, key: str | None, unit: str, *,
          start: float | None = None, end: float | None = None) -> list[tuple[int, int]]:
    """(bucket start, failures) per ``unit`` from ``start`` to ``end`` (the observed range by
    default), zeros included; one group (``key``) or every group (None). Minutes come from the
    last 24 h kept per group, hours from the last 31 days; days sum hours."""
    width = UNITS[unit]
    chosen = list(groups) if key is None else [g for g in [groups.get(key)] if g is not None]
    if not chosen:
        return []
    total = Buckets(width, 1 << 30)
    for g in chosen:
        source = g.minutes if unit == "minute" else g.hours
        for b, n in source.counts.items():
            total.add(b, n)
    first = start if start is not None else min(g.first_seen for g in chosen)
    last = end if end is not None else max(g.last_seen for g in chosen)
    return total.series(first, last)


def trend_json(groups: ErrorGroups, key: str | None, unit: str) -> dict[str, Any]:
    series = trend(groups, key, unit)
    return {"group": key, "unit": unit, "total": sum(n for _, n in series),
            "buckets": [{"start": _iso(b), "count": n} for b, n in series]}
