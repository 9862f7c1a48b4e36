"""Error groups maintained incrementally from task and worker events: a failure (task-failed or
task-retried) joins the group of its fingerprint; the group counts it by task name, worker, host,
queue, worker version and argument value, by minute and hour, and keeps its latest task ids.

Feed it events in the order they were applied to a ``TaskIndex``, with the record each event
touched (``observe_batch(events, records)``: the ``on_batch`` signature), so failure events,
which carry no task name, are named from the record. It also counts every finished task per
worker, host, queue, version and task name: the baselines the root-cause hints compare with.
One thread feeds it; readers on another thread take ``lock``."""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from lazycelery.analysis.counts import OTHER, BoundedCounter, Buckets
from lazycelery.analysis.fingerprint import Fingerprint, fingerprint

__all__ = ["DEFAULT_MAX_GROUPS", "FAILURE_EVENTS", "ErrorGroup", "ErrorGroups", "WorkerSeen",
           "host_of"]

FAILURE_EVENTS: Final = frozenset({"task-failed", "task-retried"})
#: the events whose task record is read (for its name, args, queue)
_NAMED: Final = FAILURE_EVENTS | {"task-succeeded"}
DEFAULT_MAX_GROUPS: Final = 10_000
#: the bound of every counter of unbounded groups (``ErrorGroups(bounded=False)``)
UNBOUNDED: Final = 1 << 62
#: task ids kept per group (the newest): what "open the group's tasks" and bulk actions take
TASK_IDS: Final = 500
#: failure times kept per group (the newest): the time-window hint reads them
TIMES: Final = 2_000
MINUTES_KEPT: Final = 24 * 60
HOURS_KEPT: Final = 24 * 31
#: fingerprints remembered per exact (exception, traceback) text: repeats skip the regexes
_CACHE: Final = 4_096


#: (name, worker, host, queue, args, version) of a finished task or failure
_Fields = tuple[str | None, str | None, str | None, str | None, str | None, str | None]


def _per_name(table: dict[str, BoundedCounter], name: str, limit: int,
              names: int = 4096) -> BoundedCounter:
    """The counter of ``name`` in ``table`` (at most ``names`` names; later ones share one)."""
    counter = table.get(name)
    if counter is None:
        if len(table) >= names:
            name = OTHER
            counter = table.get(name)
        if counter is None:
            counter = table[name] = BoundedCounter(limit)
    return counter


def host_of(worker: str | None) -> str | None:
    """``celery@web-3`` -> ``web-3`` (a hostname without ``@`` is its own host)."""
    if worker is None:
        return None
    return worker.rpartition("@")[2] or worker


@dataclass
class ErrorGroup:
    """One fingerprint's failures."""

    fp: Fingerprint
    #: the first failure's ``type: message`` as raised (before normalisation)
    example: str
    traceback: str | None
    first_seen: float
    last_seen: float
    count: int = 0
    failed: int = 0
    retried: int = 0
    names: BoundedCounter = field(default_factory=BoundedCounter)
    workers: BoundedCounter = field(default_factory=BoundedCounter)
    hosts: BoundedCounter = field(default_factory=BoundedCounter)
    queues: BoundedCounter = field(default_factory=BoundedCounter)
    versions: BoundedCounter = field(default_factory=BoundedCounter)
    args: BoundedCounter = field(default_factory=lambda: BoundedCounter(256))
    minutes: Buckets = field(default_factory=lambda: Buckets(60, MINUTES_KEPT))
    hours: Buckets = field(default_factory=lambda: Buckets(3600, HOURS_KEPT))
    task_ids: deque[str] = field(default_factory=lambda: deque(maxlen=TASK_IDS))
    times: deque[float] = field(default_factory=lambda: deque(maxlen=TIMES))
    #: first failure time per worker
    worker_first: dict[str, float] = field(default_factory=dict)
    #: failures replayed from the history store (events marked ``history``)
    from_history: int = 0

    @property
    def key(self) -> str:
        return self.fp.key

    def is_new(self, now: float, within: float) -> bool:
        """First seen in the last ``within`` seconds."""
        return self.first_seen >= now - within

    def sparkline_counts(self, now: float, minutes: int) -> list[int]:
        return [n for _, n in self.minutes.series(now - (minutes - 1) * 60, now)]


@dataclass
class WorkerSeen:
    """What the events said about one worker: its version and when it came online."""

    hostname: str
    first_seen: float
    sw_ver: str | None = None
    #: times of its worker-online events (a restart adds one)
    online: list[float] = field(default_factory=list)


class ErrorGroups:
    """Error groups and the baselines of finished tasks, fed one event at a time."""

    def __init__(self, max_groups: int = DEFAULT_MAX_GROUPS, *, bounded: bool = True) -> None:
        self.lock = threading.Lock()
        #: unbounded: no counter, table or group count has a bound (a part of a stream, to be
        #: ``absorb``-ed exactly by bounded groups; its memory grows with its distinct values)
        self.bounded = bounded
        self.max_groups = max_groups if bounded else UNBOUNDED
        self._names = 4096 if bounded else UNBOUNDED
        #: least recently failing first
        self.groups: OrderedDict[str, ErrorGroup] = OrderedDict()
        self.workers: dict[str, WorkerSeen] = {}
        #: first time each worker version was seen, and on which worker
        self.versions_first: dict[str, tuple[float, str]] = {}
        # finished tasks (succeeded or failed) by dimension: the hints' baselines
        self.finished = 0
        self.finished_by: dict[str, BoundedCounter] = {
            dim: BoundedCounter(256 if bounded else UNBOUNDED)
            for dim in ("worker", "host", "queue", "version")}
        #: finished tasks per task name, by worker
        self.finished_name_worker: dict[str, BoundedCounter] = {}
        #: succeeded tasks per task name, by args
        self.succeeded_name_args: dict[str, BoundedCounter] = {}
        self.failures = 0
        #: of which replayed from the history store
        self.from_history = 0
        self.evicted = 0
        self.first_time: float | None = None
        self.last_time: float | None = None
        #: bumped per observed failure (views cache per version)
        self.version = 0
        self._cache: OrderedDict[tuple[str | None, str | None], Fingerprint] = OrderedDict()
        self._by_first: tuple[int, list[float], list[ErrorGroup]] | None = None

    # ------------------------------------------------------------------ feeding

    def observe_batch(self, events: Sequence[Mapping[str, Any]],
                      records: Sequence[object] = (), *,
                      lookup: Callable[[str], object] | None = None) -> None:
        """``on_batch``'s arguments: the events and, position for position, the records the
        index returned for them; or, without records, ``lookup`` finds a task's record by id
        (``TaskIndex.get``) for the events that need one."""
        n = len(records)
        with self.lock:
            for i, event in enumerate(events):
                kind = event.get("type")
                if kind not in _NAMED:
                    if isinstance(kind, str) and kind.startswith("task-"):
                        # most events (sent, received, started): only their time counts
                        t = event.get("timestamp")
                        if type(t) is float or type(t) is int:
                            first = self.first_time
                            if first is None or t < first:
                                self.first_time = t
                            last = self.last_time
                            if last is None or t > last:
                                self.last_time = t
                        continue
                    self._observe(event, None)
                    continue
                record = records[i] if i < n else None
                if record is None and lookup is not None:
                    uuid = event.get("uuid")
                    record = lookup(uuid) if isinstance(uuid, str) else None
                # _observe's path for a finished task or a failure
                t = event.get("timestamp")
                if isinstance(t, (int, float)) and not isinstance(t, bool):
                    when = float(t)
                    self._saw(when)
                    fields = self._fields(event, record)
                    if kind == "task-succeeded":
                        self._finished(fields, succeeded=True)
                    else:
                        if kind == "task-failed":
                            self._finished(fields, succeeded=False)
                        self._failure(kind, event, fields, when)

    def _saw(self, when: float) -> None:
        if self.first_time is None or when < self.first_time:
            self.first_time = when
        if self.last_time is None or when > self.last_time:
            self.last_time = when

    def observe(self, event: Mapping[str, Any], record: object = None) -> ErrorGroup | None:
        with self.lock:
            return self._observe(event, record)

    def _observe(self, event: Mapping[str, Any], record: object) -> ErrorGroup | None:
        kind = event.get("type")
        if not isinstance(kind, str):
            return None
        t = event.get("timestamp")
        when = float(t) if isinstance(t, (int, float)) and not isinstance(t, bool) else None
        if kind.startswith("worker-"):
            self._worker(kind, event, when)
            return None
        if when is None:
            return None
        self._saw(when)
        if kind == "task-succeeded":
            self._finished(self._fields(event, record), succeeded=True)
        elif kind in FAILURE_EVENTS:
            fields = self._fields(event, record)
            if kind == "task-failed":
                self._finished(fields, succeeded=False)
            return self._failure(kind, event, fields, when)
        return None

    def _worker(self, kind: str, event: Mapping[str, Any], when: float | None) -> None:
        host = event.get("hostname")
        if not isinstance(host, str) or when is None:
            return
        seen = self.workers.get(host)
        if seen is None:
            if len(self.workers) >= 4096:
                return
            seen = self.workers[host] = WorkerSeen(host, when)
        ver = event.get("sw_ver")
        if isinstance(ver, str) and ver:
            seen.sw_ver = ver
            first = self.versions_first.get(ver)
            if first is None or when < first[0]:
                self.versions_first[ver] = (when, host)
        if kind == "worker-online" and len(seen.online) < 256:
            seen.online.append(when)

    def _fields(self, event: Mapping[str, Any], record: object) -> _Fields:
        """(name, worker, host, queue, args, version): the event's field, else the record's."""
        get = event.get
        if record is None:
            name, queue, routing_key, args = (get("name"), get("queue"), get("routing_key"),
                                              get("args"))
            worker: object = None
        else:
            name = get("name")
            if name is None:
                name = getattr(record, "name", None)
            worker = get("worker")
            if worker is None:
                worker = getattr(record, "worker", None)
            queue = get("queue")
            if queue is None:
                queue = getattr(record, "queue", None)
            routing_key = get("routing_key")
            if routing_key is None:
                routing_key = getattr(record, "routing_key", None)
            args = get("args")
            if args is None:
                args = getattr(record, "args", None)
        hostname = get("hostname")
        if isinstance(hostname, str) and not hostname.startswith("gen"):
            worker = hostname  # the worker that sent the failure
        elif not isinstance(worker, str):
            worker = None
        if not isinstance(queue, str) or not queue:
            queue = routing_key if isinstance(routing_key, str) else None
        if worker is None:
            host = version = None
        else:
            host = worker.rpartition("@")[2] or worker
            seen = self.workers.get(worker)
            version = seen.sw_ver if seen is not None else None
        return (name if isinstance(name, str) else None, worker, host, queue,
                args if isinstance(args, str) else None, version)

    def _finished(self, f: _Fields, *, succeeded: bool) -> None:
        self.finished += 1
        name, worker, host, queue, args, version = f
        by = self.finished_by
        by["worker"].add(worker)
        by["host"].add(host)
        by["queue"].add(queue)
        by["version"].add(version)
        if worker is not None:
            counter = self.finished_name_worker.get(name or "?")
            if counter is None:
                counter = _per_name(self.finished_name_worker, name or "?",
                                    64 if self.bounded else UNBOUNDED, self._names)
            counter.add(worker)
        if succeeded and args is not None:
            counter = self.succeeded_name_args.get(name or "?")
            if counter is None:
                counter = _per_name(self.succeeded_name_args, name or "?",
                                    256 if self.bounded else UNBOUNDED, self._names)
            counter.add(args)

    def _fingerprint(self, exception: str | None, traceback: str | None) -> Fingerprint:
        key = (exception, traceback)
        cache = self._cache
        fp = cache.get(key)
        if fp is None:
            fp = cache[key] = fingerprint(exception, traceback)
            if len(cache) > _CACHE:
                cache.popitem(last=False)
        return fp

    def _failure(self, kind: str, event: Mapping[str, Any], f: _Fields,
                 when: float) -> ErrorGroup:
        exception = event.get("exception")
        traceback = event.get("traceback")
        if not isinstance(traceback, str):
            traceback = None
        fp = self._fingerprint(exception if isinstance(exception, str) else None, traceback)
        key = fp.key
        groups = self.groups
        group = groups.get(key)
        if group is None:
            group = ErrorGroup(fp, example=fp.raw, traceback=traceback,
                               first_seen=when, last_seen=when)
            if not self.bounded:
                for counter in _counters(group):
                    counter.limit = UNBOUNDED
            groups[key] = group
            if len(groups) > self.max_groups:
                groups.popitem(last=False)
                self.evicted += 1
        else:
            groups.move_to_end(key)
        group.count += 1
        if kind == "task-failed":
            group.failed += 1
        else:
            group.retried += 1
        if when < group.first_seen:
            group.first_seen = when
        if when > group.last_seen:
            group.last_seen = when
        name, worker, host, queue, args, version = f
        group.names.add(name or "?")
        group.workers.add(worker)
        group.hosts.add(host)
        group.queues.add(queue)
        group.versions.add(version)
        group.args.add(args)
        group.minutes.add(when)
        group.hours.add(when)
        uuid = event.get("uuid")
        if isinstance(uuid, str):
            task_ids = group.task_ids
            if not task_ids or task_ids[-1] != uuid:
                task_ids.append(uuid)
        group.times.append(when)
        if worker is not None:
            first = group.worker_first
            if worker not in first and len(first) < 256:
                first[worker] = when
        if event.get("history") is True:
            group.from_history += 1
            self.from_history += 1
        self.failures += 1
        self.version += 1
        return group

    # ------------------------------------------------------------------ merging

    def absorb(self, other: ErrorGroups) -> bool:
        """Add ``other``'s task failures and finished tasks as if its task events had been fed
        here after this one's (``other``'s worker events are not taken: both must have been
        fed the same worker versions first). ``other`` is best unbounded: each counter's
        values then come in the order they first came, and this one's bounds apply as
        feeding would apply them. False, with this one unchanged, when the result could
        differ from that feeding: ``other`` reached a bound, groups would be evicted, time
        buckets pruned, or a per-name table overflow. Both locks are the caller's."""
        if not self._absorbable(other):
            return False
        for key, theirs in other.groups.items():
            mine = self.groups.get(key)
            if mine is None:
                mine = self.groups[key] = ErrorGroup(theirs.fp, example=theirs.example,
                                                     traceback=theirs.traceback,
                                                     first_seen=theirs.first_seen,
                                                     last_seen=theirs.last_seen)
                if not self.bounded:
                    for counter in _counters(mine):
                        counter.limit = UNBOUNDED
            else:
                self.groups.move_to_end(key)
            _merge_group(mine, theirs)
        self.finished += other.finished
        for dim, counter in other.finished_by.items():
            _merge_counter(self.finished_by[dim], counter)
        for table, theirs_by, limit in ((self.finished_name_worker, other.finished_name_worker,
                                         64),
                                        (self.succeeded_name_args, other.succeeded_name_args,
                                         256)):
            for name, counter in theirs_by.items():
                _merge_counter(_per_name(table, name, limit if self.bounded else UNBOUNDED,
                                         self._names), counter)
        self.failures += other.failures
        self.from_history += other.from_history
        for t in (other.first_time, other.last_time):
            if t is not None:
                self._saw(t)
        self.version += other.version
        return True

    def _absorbable(self, other: ErrorGroups) -> bool:
        if self.evicted or other.evicted or \
                len(self.groups.keys() | other.groups.keys()) > self.max_groups:
            return False
        for key, theirs in other.groups.items():
            mine = self.groups.get(key)
            if not all(_whole(c) for c in _counters(theirs)):
                return False
            if mine is not None and any(
                    len(a.counts) + len(b.counts) > 2 * a.keep
                    for a, b in ((mine.minutes, theirs.minutes), (mine.hours, theirs.hours))):
                return False
        counters = [*other.finished_by.values(), *other.finished_name_worker.values(),
                    *other.succeeded_name_args.values()]
        if not all(_whole(c) for c in counters):
            return False
        return all(len(mine.keys() | theirs.keys()) < self._names and OTHER not in theirs
                   for mine, theirs in ((self.finished_name_worker, other.finished_name_worker),
                                        (self.succeeded_name_args, other.succeeded_name_args)))

    # ------------------------------------------------------------------ reading

    def __len__(self) -> int:
        return len(self.groups)

    def __iter__(self) -> Iterator[ErrorGroup]:
        return iter(list(self.groups.values()))

    def get(self, key: str) -> ErrorGroup | None:
        """A group by key or a unique prefix of it."""
        group = self.groups.get(key)
        if group is not None:
            return group
        found = [g for k, g in self.groups.items() if k.startswith(key)] if key else []
        return found[0] if len(found) == 1 else None

    def started_between(self, start: float, end: float) -> list[ErrorGroup]:
        """Groups first seen in ``[start, end)`` (a sorted index rebuilt once per version;
        call with ``lock`` held)."""
        cached = self._by_first
        if cached is None or cached[0] != self.version:
            ordered = sorted(self.groups.values(), key=lambda g: g.first_seen)
            cached = self._by_first = (self.version, [g.first_seen for g in ordered], ordered)
        _, firsts, ordered = cached
        return ordered[bisect.bisect_left(firsts, start):bisect.bisect_left(firsts, end)]

    def ranked(self) -> list[ErrorGroup]:
        """Groups, most failures first (then the most recent)."""
        return sorted(self.groups.values(), key=lambda g: (-g.count, -g.last_seen, g.key))


def _whole(counter: BoundedCounter) -> bool:
    """No value was counted under OTHER for want of room."""
    return OTHER not in counter.counts and len(counter.counts) < counter.limit


def _counters(group: ErrorGroup) -> tuple[BoundedCounter, ...]:
    return (group.names, group.workers, group.hosts, group.queues, group.versions, group.args)


def _merge_counter(mine: BoundedCounter, theirs: BoundedCounter) -> None:
    """``theirs``' values added in the order they first came (as feeding them would: a value
    new here beyond the bound counts under OTHER). Once ``mine`` is full, the rest is added
    by set operations: its values known here to theirs, all others to OTHER."""
    counts = mine.counts
    pending = theirs.counts
    if len(counts) < mine.limit:
        items = iter(pending.items())
        for value, n in items:
            mine.add(value, n)
            if len(counts) >= mine.limit:
                pending = dict(items)
                break
        else:
            return
    total = sum(pending.values())
    inside = 0
    for value in pending.keys() & counts.keys():
        n = pending[value]
        counts[value] += n
        inside += n
    if total > inside:
        counts[OTHER] = counts.get(OTHER, 0) + total - inside
    mine.total += total


def _merge_group(mine: ErrorGroup, theirs: ErrorGroup) -> None:
    """``theirs``' failures after ``mine``'s (``ErrorGroups.absorb``)."""
    mine.count += theirs.count
    mine.failed += theirs.failed
    mine.retried += theirs.retried
    mine.first_seen = min(mine.first_seen, theirs.first_seen)
    mine.last_seen = max(mine.last_seen, theirs.last_seen)
    for a, b in zip(_counters(mine), _counters(theirs), strict=True):
        _merge_counter(a, b)
    for buckets, more in ((mine.minutes, theirs.minutes), (mine.hours, theirs.hours)):
        for start, n in more.counts.items():
            buckets.add(start, n)
    task_ids = mine.task_ids
    for uuid in theirs.task_ids:
        if not task_ids or task_ids[-1] != uuid:
            task_ids.append(uuid)
    mine.times.extend(theirs.times)
    first = mine.worker_first
    for worker, when in theirs.worker_first.items():
        if worker not in first and len(first) < 256:
            first[worker] = when
    mine.from_history += theirs.from_history
