"""Root-cause hints: statements of fact about an error group, each with the numbers behind it.
Never a guess: a hint says where the failures are concentrated compared with where the work
went, what came online just before the group started, or which group's failures came just
before it. Each hint carries its evidence as data (``evidence``) and one sentence (``text``).

Kinds:

* ``worker`` / ``host`` / ``queue`` / ``version``: at least ``SHARE`` of the group's failures
  (and at least ``MIN_FAILURES``) have one value, while that value had at most
  ``share - MARGIN`` of the finished tasks of the same task names (workers) or of all finished
  tasks (host, queue, version), and more than one value was seen;
* ``argument``: at least ``SHARE`` of the failures had one argument value, and tasks of the same
  name with other arguments succeeded;
* ``window``: at least ``SHARE`` of the failures (at least twice ``MIN_FAILURES``) fell in a
  window no longer than ``WINDOW_PART`` of the time observed;
* ``online``: the group started within ``AFTER`` seconds of a worker coming online (or of a
  worker version first seen), with ``SHARE`` of its failures on that worker (which ran at most
  ``share - MARGIN`` of those tasks) and none before;
* ``follows``: the group started within ``AFTER`` seconds after another group began failing,
  and at least ``SHARE`` of that group's failures (and at least twice ``MIN_FAILURES``) came
  before this group's first.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from lazycelery.analysis.counts import OTHER, BoundedCounter
from lazycelery.analysis.groups import ErrorGroup, ErrorGroups
from lazycelery.text import counted

__all__ = ["AFTER", "MARGIN", "MIN_FAILURES", "SHARE", "WINDOW_PART", "Hint", "hints_for"]

SHARE: Final = 0.8
MARGIN: Final = 0.25
MIN_FAILURES: Final = 5
WINDOW_PART: Final = 0.2
AFTER: Final = 300.0


@dataclass(frozen=True)
class Hint:
    kind: str
    text: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "text": self.text, "evidence": self.evidence}


def _clock(t: float) -> str:
    return datetime.fromtimestamp(t).strftime("%H:%M:%S")


def _pct(x: float) -> str:
    return f"{x * 100:.0f} %"


def _seconds(s: float) -> str:
    if s < 10:
        return f"{s:.1f} s"
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.0f} min"


def hints_for(group: ErrorGroup, groups: ErrorGroups) -> list[Hint]:
    """The hints about ``group`` that the observed events support (caller holds no lock: this
    takes ``groups.lock``)."""
    with groups.lock:
        out = [*_concentration(group, groups), *_argument(group, groups), *_window(group, groups),
               *_online(group, groups), *_follows(group, groups)]
    return out


# --------------------------------------------------------------------------- concentration


def _top(counter: BoundedCounter) -> tuple[str, int] | None:
    ranked = [(v, n) for v, n in counter.top() if v != OTHER]
    return ranked[0] if ranked else None


def _concentration(group: ErrorGroup, groups: ErrorGroups) -> list[Hint]:
    out: list[Hint] = []
    if group.count < MIN_FAILURES:
        return out
    worker_hint = _worker(group, groups)
    if worker_hint is not None:
        out.append(worker_hint)
    labels = {"host": "host", "queue": "queue", "version": "worker version"}
    for dim, counter in (("host", group.hosts), ("queue", group.queues),
                         ("version", group.versions)):
        top = _top(counter)
        baseline = groups.finished_by[dim]
        if top is None or len(baseline) < 2 or counter.total < MIN_FAILURES:
            continue
        value, n = top
        share = n / counter.total
        base = baseline.get(value) / baseline.total if baseline.total else 0.0
        if share < SHARE or base > share - MARGIN:
            continue
        if dim == "host" and worker_hint is not None and \
                len({w for w in group.workers.counts if w.endswith("@" + value)}) <= 1:
            continue  # one worker on that host: the worker hint says it
        out.append(Hint(dim, f"{_pct(share)} of {counted(counter.total, 'failure')} on {labels[dim]} "
                             f"{value}, which finished {_pct(base)} of all "
                             f"{counted(baseline.total, 'task')}",
                        {"value": value, "failures": n, "of": counter.total,
                         "share": round(share, 3), "baseline_share": round(base, 3),
                         "baseline_tasks": baseline.total}))
    return out


def _worker_baseline(group: ErrorGroup, groups: ErrorGroups,
                     worker: str) -> tuple[float, int, set[str]]:
    """(``worker``'s share of the finished tasks of the group's task names, those tasks,
    the workers that ran them)."""
    names = {name for name, _ in group.names.top() if name != OTHER}
    on_worker = total = 0
    workers_seen: set[str] = set()
    for name in names:
        counter = groups.finished_name_worker.get(name)
        if counter is None:
            continue
        total += counter.total
        workers_seen.update(w for w in counter.counts if w != OTHER)
        on_worker += counter.get(worker)
    return (on_worker / total if total else 0.0), total, workers_seen


def _names_text(group: ErrorGroup) -> str:
    names = [name for name, _ in group.names.top() if name != OTHER]
    return ", ".join(names[:3]) + (" …" if len(names) > 3 else "")


def _worker(group: ErrorGroup, groups: ErrorGroups) -> Hint | None:
    top = _top(group.workers)
    if top is None or group.workers.total < MIN_FAILURES:
        return None
    value, n = top
    share = n / group.workers.total
    base, total, workers_seen = _worker_baseline(group, groups, value)
    if len(workers_seen) < 2 or total == 0 or share < SHARE or base > share - MARGIN:
        return None
    return Hint("worker", f"{_pct(share)} of {counted(group.workers.total, 'failure')} on worker {value}, "
                          f"which ran {_pct(base)} of the {total:,} finished "
                          f"{_names_text(group)} tasks",
                {"value": value, "failures": n, "of": group.workers.total,
                 "share": round(share, 3), "baseline_share": round(base, 3),
                 "baseline_tasks": total, "workers": sorted(workers_seen)})


def _argument(group: ErrorGroup, groups: ErrorGroups) -> list[Hint]:
    top = _top(group.args)
    if top is None or group.args.total < MIN_FAILURES:
        return []
    value, n = top
    share = n / group.args.total
    if share < SHARE:
        return []
    names = {name for name, _ in group.names.top() if name != OTHER}
    other_ok = 0
    for name in names:
        counter = groups.succeeded_name_args.get(name)
        if counter is not None:
            other_ok += counter.total - counter.get(value)
    if other_ok == 0:
        return []
    return [Hint("argument", f"{_pct(share)} of {counted(group.args.total, 'failure')} had the arguments "
                             f"{value[:80]}; {counted(other_ok, 'task')} of the same name with other "
                             "arguments succeeded",
                 {"value": value, "failures": n, "of": group.args.total,
                  "share": round(share, 3), "succeeded_other_args": other_ok})]


# --------------------------------------------------------------------------- time


def _window(group: ErrorGroup, groups: ErrorGroups) -> list[Hint]:
    times = sorted(group.times)
    if len(times) < 2 * MIN_FAILURES or groups.first_time is None or groups.last_time is None:
        return []
    span = groups.last_time - groups.first_time
    if span <= 0:
        return []
    need = max(MIN_FAILURES, int(len(times) * SHARE + 0.999))
    # the shortest window holding `need` failures (a sliding window over sorted times)
    best = min(range(len(times) - need + 1), key=lambda i: times[i + need - 1] - times[i])
    start, end = times[best], times[best + need - 1]
    if end - start > span * WINDOW_PART:
        return []
    return [Hint("window", f"{_pct(need / len(times))} of {counted(len(times), 'failure')} between "
                           f"{_clock(start)} and {_clock(end)} ({_seconds(end - start)} of the "
                           f"{_seconds(span)} observed)",
                 {"start": start, "end": end, "failures": need, "of": len(times),
                  "observed_seconds": round(span, 3)})]


def _online(group: ErrorGroup, groups: ErrorGroups) -> list[Hint]:
    out: list[Hint] = []
    total = group.workers.total
    if total < MIN_FAILURES:
        return out
    for worker, seen in groups.workers.items():
        n = group.workers.get(worker)
        share = n / total
        starts = sorted(seen.online)
        i = bisect.bisect_right(starts, group.first_seen)
        if share < SHARE or i == 0:
            continue
        online = starts[i - 1]
        delay = group.first_seen - online
        if delay > AFTER or online <= (groups.first_time or online):
            continue
        base, tasks, workers_seen = _worker_baseline(group, groups, worker)
        if len(workers_seen) < 2 or base > share - MARGIN:
            continue  # the worker ran (nearly) all of these tasks: no contrast
        version = f" with {seen.sw_ver}" if seen.sw_ver else ""
        out.append(Hint("online", f"{_pct(share)} of {counted(total, 'failure')} on {worker}; none "
                                  f"before {_clock(online)} when {worker} came online{version}"
                                  f" (first failure {_clock(group.first_seen)}, "
                                  f"{_seconds(delay)} later)",
                        {"worker": worker, "online": online, "sw_ver": seen.sw_ver,
                         "first_failure": group.first_seen, "failures": n, "of": total,
                         "share": round(share, 3), "baseline_share": round(base, 3),
                         "baseline_tasks": tasks}))
    for version, (first, worker) in groups.versions_first.items():
        if len(groups.versions_first) < 2 or first <= (groups.first_time or first):
            continue
        n = group.versions.get(version)
        share = n / group.versions.total if group.versions.total else 0.0
        delay = group.first_seen - first
        if share >= SHARE and 0 <= delay <= AFTER:
            out.append(Hint("version", f"{_pct(share)} of {counted(group.versions.total, 'failure')} on "
                                       f"workers running {version}; none before "
                                       f"{_clock(first)} when {version} was first seen (on "
                                       f"{worker})",
                            {"version": version, "first_seen": first, "worker": worker,
                             "failures": n, "of": group.versions.total,
                             "share": round(share, 3)}))
    return out


def _follows(group: ErrorGroup, groups: ErrorGroups) -> list[Hint]:
    """The group whose failures came (mostly) before this group's first, within ``AFTER``
    seconds: the nearest one that began before it."""
    if group.count < MIN_FAILURES:
        return []
    best: tuple[int, ErrorGroup] | None = None
    for other in groups.started_between(group.first_seen - AFTER, group.first_seen):
        if other is group:
            continue
        before = sum(1 for t in other.times if t < group.first_seen)
        if before >= max(2 * MIN_FAILURES, SHARE * len(other.times)) and \
                (best is None or other.first_seen > best[1].first_seen):
            best = (before, other)
    if best is None:
        return []
    before, other = best
    delay = group.first_seen - other.first_seen
    last_before = max(t for t in other.times if t < group.first_seen)
    return [Hint("follows", f"started {_clock(group.first_seen)}, {_seconds(delay)} after group "
                            f"{other.key} ({other.fp.short_type} in {_names_text(other)}) began "
                            f"failing; {before:,} of its {counted(other.count, 'failure')} came before "
                            f"this group's first (the last {_seconds(group.first_seen - last_before)}"
                            " before)",
                 {"group": other.key, "delay_seconds": round(delay, 3),
                  "other_failures_before": before, "other_failures": other.count,
                  "other_first_seen": other.first_seen})]
