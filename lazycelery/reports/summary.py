"""The activity report of a period, read from the history store: volume, failure rate, top
error groups, slowest tasks, queue peaks, worker availability and monitoring gaps, as one
JSON-able document (``lazycelery.reports.render`` formats it).

Each section is one aggregate query (or one pass over the period's failures), so a report over
a million tasks reads the store, not the tasks, into memory."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from lazycelery.analysis.fingerprint import fingerprint
from lazycelery.store.backend import Store

__all__ = ["SCHEMA", "build_summary", "failure_filter"]

SCHEMA = "lazycelery.report/1"
TOP = 10
#: a worker unheard for longer than this counts as unavailable (heartbeats are kept once a
#: minute at most, workers send one every 2 s by default)
HEARTBEAT_SLACK = 180.0


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="seconds")


def failure_filter(name: str | None = None) -> str:
    """The filter to paste into the dashboard for the failures (of one task name)."""
    return f"state:FAILURE name:{name}" if name else "state:FAILURE"


def build_summary(store: Store, since: float, until: float, *,
                  environment: str | None = None, top: int = TOP) -> dict[str, Any]:
    """The report of [since, until) as a JSON-able document (schema ``lazycelery.report/1``)."""
    volume = _volume(store, since, until)
    return {
        "schema": SCHEMA,
        "since": _iso(since),
        "until": _iso(until),
        "environment": environment,
        "volume": volume,
        "tasks": _per_name(store, since, until, top),
        "errors": _error_groups(store, since, until, top),
        "slowest": _slowest(store, since, until, top),
        "queues": _queue_peaks(store, since, until),
        "workers": _workers(store, since, until),
        "gaps": _gaps(store, since, until),
        "links": {"filter": failure_filter()},
    }


def _volume(store: Store, since: float, until: float) -> dict[str, Any]:
    rows = store.query("SELECT state, COUNT(*) FROM tasks WHERE last_time >= ? AND last_time < ? "
                       "GROUP BY state", (since, until))
    states = {str(state): int(n) for state, n in rows}
    finished = states.get("SUCCESS", 0) + states.get("FAILURE", 0)
    return {"total": sum(states.values()), "states": dict(sorted(states.items())),
            "failure_rate": states.get("FAILURE", 0) / finished if finished else 0.0}


def _per_name(store: Store, since: float, until: float, top: int) -> list[dict[str, Any]]:
    rows = store.query(
        "SELECT name, COUNT(*), SUM(CASE WHEN state = 'FAILURE' THEN 1 ELSE 0 END) FROM tasks "
        "WHERE last_time >= ? AND last_time < ? GROUP BY name ORDER BY COUNT(*) DESC, name "
        f"LIMIT {int(top)}", (since, until))
    return [{"name": name or "?", "count": int(n), "failed": int(failed or 0),
             "failure_rate": int(failed or 0) / int(n) if n else 0.0} for name, n, failed in rows]


def _error_groups(store: Store, since: float, until: float, top: int) -> list[dict[str, Any]]:
    """Failures grouped by the fingerprint of their exception and traceback (the errors pane's
    groups), most frequent first, with a few task ids to open."""
    counts: Counter[str] = Counter()
    first: dict[str, dict[str, Any]] = {}
    names: dict[str, Counter[str]] = defaultdict(Counter)
    for uuid, name, exception, traceback, when in store.query(
            "SELECT uuid, name, exception, traceback, last_time FROM tasks WHERE state = 'FAILURE' "
            "AND last_time >= ? AND last_time < ? ORDER BY last_time", (since, until)):
        found = fingerprint(exception, traceback)
        key = found.key
        counts[key] += 1
        names[key][name or "?"] += 1
        group = first.setdefault(key, {"title": found.title, "first": when, "tasks": []})
        group["last"] = when
        if len(group["tasks"]) < 5:
            group["tasks"].append(uuid)
    out = []
    for key, n in counts.most_common(top):
        group = first[key]
        task_name = names[key].most_common(1)[0][0]
        out.append({"fingerprint": key, "title": group["title"], "count": n,
                    "task_names": dict(names[key].most_common(5)),
                    "first": _iso(group["first"]), "last": _iso(group["last"]),
                    "tasks": group["tasks"], "filter": failure_filter(task_name)})
    return out


def _slowest(store: Store, since: float, until: float, top: int) -> list[dict[str, Any]]:
    rows = store.query(
        "SELECT name, COUNT(runtime), AVG(runtime), MAX(runtime) FROM tasks "
        "WHERE runtime IS NOT NULL AND last_time >= ? AND last_time < ? GROUP BY name "
        f"ORDER BY MAX(runtime) DESC LIMIT {int(top)}", (since, until))
    out = []
    for name, n, mean, worst in rows:
        slowest = store.query(
            "SELECT uuid FROM tasks WHERE name = ? AND runtime IS NOT NULL AND last_time >= ? "
            "AND last_time < ? ORDER BY runtime DESC LIMIT 1", (name, since, until))
        out.append({"name": name or "?", "count": int(n), "mean_s": float(mean),
                    "max_s": float(worst), "slowest_task": slowest[0][0] if slowest else None})
    return out


def _queue_peaks(store: Store, since: float, until: float) -> dict[str, Any]:
    rows = store.query(
        "SELECT queue, MAX(ready), MIN(consumers), COUNT(*) FROM queue_samples "
        "WHERE time >= ? AND time < ? GROUP BY queue ORDER BY MAX(ready) DESC", (since, until))
    if not rows:
        return {"peaks": [], "note": "no queue depths recorded in this period (the recorder "
                                     "samples them when it can read the broker's queues)"}
    return {"peaks": [{"queue": q, "max_ready": int(ready or 0),
                       "min_consumers": None if c is None else int(c), "samples": int(n)}
                      for q, ready, c, n in rows]}


def _workers(store: Store, since: float, until: float) -> list[dict[str, Any]]:
    """Per worker: the share of the period it was heard from (online or heartbeat samples no
    further apart than ``HEARTBEAT_SLACK``, until an offline), and how often it went offline."""
    rows = store.query("SELECT hostname, time, kind FROM worker_samples WHERE time >= ? AND "
                       "time < ? ORDER BY hostname, time", (since, until))
    per_host: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for host, when, kind in rows:
        per_host[host].append((float(when), str(kind)))
    period = max(until - since, 1e-9)
    out = []
    for host, samples in sorted(per_host.items()):
        up = _seconds_up(samples, until)
        out.append({"hostname": host, "availability": min(1.0, up / period),
                    "offline": sum(1 for _, kind in samples if kind == "offline"),
                    "last_seen": _iso(samples[-1][0])})
    return out


def _seconds_up(samples: Sequence[tuple[float, str]], until: float) -> float:
    total = 0.0
    for (when, kind), following in zip(samples, [*samples[1:], (until, "end")], strict=True):
        if kind == "offline":
            continue
        total += min(following[0], when + HEARTBEAT_SLACK) - when
    return total


def _recorded_seconds(store: Store, since: float, until: float) -> float:
    """Seconds of the period a recorder was running (the union of its runs)."""
    runs = store.query("SELECT started, alive FROM recorders WHERE alive >= ? AND started <= ?",
                       (since, until))
    total, reach = 0.0, since
    for start, end in sorted((max(float(a), since), min(float(b), until)) for a, b in runs):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def _gaps(store: Store, since: float, until: float) -> dict[str, Any]:
    gaps = store.gaps(since, until)
    return {"count": len(gaps), "recorded_s": _recorded_seconds(store, since, until),
            "period_s": until - since,
            "seconds": sum(min(g.end, until) - max(g.start, since) for g in gaps),
            "lost_events": sum(g.lost_events or 0 for g in gaps),
            "gaps": [{"start": _iso(g.start), "end": _iso(g.end), "cause": g.cause,
                      "lost_events": g.lost_events} for g in gaps[:TOP]]}
