"""One condition per rule kind, reading the shared feeds: ``check(now, world)`` costs O(1) (or
the queues, workers or stuck tasks it reports), never O(tasks)."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field

from lazycelery.alerts.describe import seconds
from lazycelery.alerts.feeds import FAILED, SUCCEEDED, Feeds
from lazycelery.alerts.rule import Rule
from lazycelery.broker.model import QueueSnapshot, QueueStats
from lazycelery.core.ingest_status import CONNECTED, IngestStatus
from lazycelery.text import counted

__all__ = ["Check", "Condition", "World", "build_condition"]


@dataclass(frozen=True)
class Check:
    """What a condition found at one tick. ``members`` are what it is about (queues, workers,
    task names: one notification groups them), ``tasks`` the task ids to link to."""

    breached: bool
    value: float | None
    summary: str
    members: tuple[str, ...] = ()
    tasks: tuple[str, ...] = ()


@dataclass
class World:
    """The latest of what is not an event: the queue snapshot, the ingest status, when the
    evaluator started (a periodic task is given its interval from then)."""

    started: float
    queues: QueueSnapshot | None = None
    status: IngestStatus | None = None
    #: time (evaluator clock) the stream stopped being connected; None while connected
    down_since: float | None = None
    #: (evaluator time it was seen, seconds) of each gap reported, newest last
    gaps: list[tuple[float, float]] = field(default_factory=list)
    _matching: dict[str, tuple[QueueStats, ...]] = field(default_factory=dict)
    _matched_in: QueueSnapshot | None = None

    def matching(self, pattern: str) -> tuple[QueueStats, ...]:
        """The latest snapshot's queues whose name matches ``pattern``; each pattern is
        matched once per snapshot, whatever the number of rules using it."""
        snapshot = self.queues
        if snapshot is None:
            return ()
        if snapshot is not self._matched_in:
            self._matched_in = snapshot
            self._matching = {}
        found = self._matching.get(pattern)
        if found is None:
            found = self._matching[pattern] = tuple(
                stats for stats in snapshot.queues if _matches(pattern, stats.name))
        return found


Condition = Callable[[float, World], "Check | None"]


def _matches(pattern: str, name: str) -> bool:
    return pattern in ("", "*") or fnmatch.fnmatchcase(name, pattern)


def _failures(rule: Rule, feeds: Feeds) -> Condition:
    recent = feeds.recent(FAILED, rule.filter, rule.window)
    window = seconds(rule.window)

    def check(now: float, world: World) -> Check:
        n = recent.total(now)
        ids, names = recent.tasks(now)
        if rule.rate is not None:
            rate = n / rule.window
            return Check(rate >= rule.rate and n > 0, rate,
                         f"{rate:.3g} failures/s over {window} (threshold {rule.rate:g}/s)",
                         tuple(names), tuple(ids))
        threshold = rule.count or 1.0
        return Check(n >= threshold, float(n),
                     f"{counted(n, 'failure')} in {window} (threshold {threshold:g})",
                     tuple(names), tuple(ids))

    return check


def _failure_ratio(rule: Rule, feeds: Feeds) -> Condition:
    failed = feeds.recent(FAILED, rule.filter, rule.window)
    succeeded = feeds.recent(SUCCEEDED, rule.filter, rule.window)
    ratio = rule.ratio or 0.0

    def check(now: float, world: World) -> Check:
        bad, good = failed.total(now), succeeded.total(now)
        done = bad + good
        value = bad / done if done else 0.0
        ids, names = failed.tasks(now)
        return Check(done >= rule.min_tasks and value >= ratio, value,
                     f"{value:.0%} of {counted(done, 'task')} failed in {seconds(rule.window)} "
                     f"(threshold {ratio:.0%}, at least {counted(rule.min_tasks, 'task')})",
                     tuple(names), tuple(ids))

    return check


def _queue_figure(rule: Rule, feeds: Feeds) -> Condition:
    depth = rule.kind == "queue_depth"
    threshold = rule.threshold or 0.0

    def check(now: float, world: World) -> Check | None:
        snapshot = world.queues
        if snapshot is None or snapshot.stale:
            return None  # not known: the state stays as it is
        found: list[tuple[float, str]] = []
        for stats in world.matching(rule.queue):
            figure = stats.ready if depth else stats.oldest_age_s
            if figure is not None and figure >= threshold:
                found.append((float(figure), stats.name))
        found.sort(reverse=True)
        top = found[0][0] if found else 0.0
        shown = ", ".join(f"{name} {int(v) if depth else seconds(round(v))}"
                          for v, name in found[:5])
        what = "ready" if depth else "oldest message"
        limit = f"{threshold:g}" if depth else seconds(threshold)
        summary = (f"{len(found)} queue(s) over {limit} {what}: {shown}" if found
                   else f"no queue {rule.queue} over {limit} {what}")
        return Check(bool(found), top, summary, tuple(n for _, n in found))

    return check


def _no_consumer(rule: Rule, feeds: Feeds) -> Condition:
    def check(now: float, world: World) -> Check | None:
        snapshot = world.queues
        if snapshot is None or snapshot.stale:
            return None
        empty = sorted(s.name for s in world.matching(rule.queue) if s.consumers == 0)
        summary = (f"no consumer on {', '.join(empty[:10])}" if empty
                   else f"every queue {rule.queue} has a consumer")
        return Check(bool(empty), float(len(empty)), summary, tuple(empty))

    return check


def _worker_offline(rule: Rule, feeds: Feeds) -> Condition:
    tracker = feeds.workers

    def check(now: float, world: World) -> Check:
        down: list[str] = []
        for host, (last, freq, offline) in tracker.workers.items():
            if not _matches(rule.worker, host):
                continue
            lost_after = rule.threshold if rule.threshold else 3 * freq
            if offline or now - last > lost_after:
                down.append(host)
        down.sort()
        summary = (f"{len(down)} worker(s) offline or lost: {', '.join(down[:10])}" if down
                   else f"every worker {rule.worker} seen is online")
        return Check(bool(down), float(len(down)), summary, tuple(down))

    return check


def _runtime_p95(rule: Rule, feeds: Feeds) -> Condition:
    histogram = feeds.runtimes(rule.filter, rule.window)
    threshold = rule.threshold or 0.0

    def check(now: float, world: World) -> Check:
        n = histogram.count(now)
        p95 = histogram.percentile(now, 0.95)
        if p95 is None:
            return Check(False, None, f"no task of {rule.filter} finished in "
                                      f"{seconds(rule.window)}")
        return Check(n >= rule.min_tasks and p95 >= threshold, p95,
                     f"runtime p95 {p95:.3g}s over {counted(n, 'task')} in {seconds(rule.window)} "
                     f"(threshold {seconds(threshold)})", (rule.filter,))

    return check


def _periodic(rule: Rule, feeds: Feeds) -> Condition:
    last = feeds.last_success(rule.filter)
    allowed = (rule.interval or 0.0) + rule.slack

    def check(now: float, world: World) -> Check:
        since = last.at if last.at is not None else world.started
        late = now - since
        what = "last success" if last.at is not None else "watching"
        return Check(late > allowed, late,
                     f"{what} {seconds(round(late))} ago (allowed {seconds(allowed)})",
                     (rule.filter,), (last.uuid,) if last.uuid else ())

    return check


def _ingest_gap(rule: Rule, feeds: Feeds) -> Condition:
    threshold = rule.threshold or 0.0

    def check(now: float, world: World) -> Check:
        if world.down_since is not None and now - world.down_since >= threshold:
            state = world.status.describe() if world.status is not None else "not connected"
            return Check(True, now - world.down_since,
                         f"event stream {state} for {seconds(round(now - world.down_since))}")
        recent = [s for at, s in world.gaps if at >= now - rule.window and s >= threshold]
        if recent:
            return Check(True, max(recent), f"{len(recent)} gap(s) in the event stream in "
                                            f"{seconds(rule.window)}, longest {max(recent):.1f} s")
        return Check(False, 0.0, "event stream connected, no gap")

    return check


def _stuck_started(rule: Rule, feeds: Feeds) -> Condition:
    tracker = feeds.started(rule.filter)
    threshold = rule.threshold or 0.0

    def check(now: float, world: World) -> Check:
        count, ids = tracker.older_than(now, threshold)
        scope = f" of {rule.filter}" if rule.filter else ""
        return Check(count > 0, float(count),
                     f"{count} task(s){scope} STARTED for more than {seconds(threshold)}",
                     (), tuple(ids))

    return check


_BUILDERS: dict[str, Callable[[Rule, Feeds], Condition]] = {
    "failures": _failures,
    "failure_ratio": _failure_ratio,
    "queue_depth": _queue_figure,
    "queue_age": _queue_figure,
    "no_consumer": _no_consumer,
    "worker_offline": _worker_offline,
    "runtime_p95": _runtime_p95,
    "periodic": _periodic,
    "ingest_gap": _ingest_gap,
    "stuck_started": _stuck_started,
}


def build_condition(rule: Rule, feeds: Feeds) -> Condition:
    return _BUILDERS[rule.kind](rule, feeds)


def on_status(world: World, status: IngestStatus, now: float) -> None:
    """Note a new ingest status: when the stream went down, each gap it reported."""
    previous = world.status
    world.status = status
    if status.state == CONNECTED:
        world.down_since = None
    elif world.down_since is None and previous is not None:
        world.down_since = now  # the first status (connecting) is not a loss
    gap = status.gap
    if gap is not None and (previous is None or previous.gap is not gap):
        world.gaps.append((now, gap.seconds))
        del world.gaps[:-100]
