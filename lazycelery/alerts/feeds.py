"""What the rules read, fed from the ingest batches and shared between rules: rules with the
same filter and window share one counter, so the cost per event grows with the number of
distinct filters, not of rules, and the cost per tick with the number of rules, never tasks."""

from __future__ import annotations

import operator
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Final

from lazycelery.alerts.window import BucketCounter, RuntimeHistogram
from lazycelery.core.model import STARTED as STATE_STARTED
from lazycelery.core.model import TaskRecord, WorkerRecord
from lazycelery.core.query import compile_filter

__all__ = ["FAILED", "STARTED", "SUCCEEDED", "Feeds", "Matcher", "Recent", "Route", "StartedTracker",
           "WorkerTracker"]

FAILED: Final = "task-failed"
SUCCEEDED: Final = "task-succeeded"
STARTED: Final = "task-started"
#: events that end a run: a task no longer STARTED
ENDS: Final = frozenset({"task-succeeded", "task-failed", "task-retried", "task-revoked",
                         "task-rejected"})
#: record attributes with few distinct values: a filter reading only these is decided once
#: per distinct combination
_LOW_CARDINALITY: Final = frozenset({"name", "queue", "worker", "state", "client", "retries"})
_MEMO_MAX: Final = 10_000
#: at most this many tasks tracked as STARTED per filter (more are counted, not tracked)
STARTED_MAX: Final = 100_000

#: takes the records of one batch that a filter matched (one call per batch, not per record)
Sink = Callable[[list[TaskRecord], float], None]


class Matcher:
    """A filter of the filter language as a predicate over records. ``attrs``: the record
    attributes it reads when they all have few distinct values (then one answer serves every
    record with the same values), else None."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.predicate = compile_filter(text)
        attrs = sorted(self.predicate.attrs)
        self.attrs: tuple[str, ...] | None = (
            tuple(attrs) if set(attrs) <= _LOW_CARDINALITY else None)

    def __call__(self, rec: TaskRecord) -> bool:
        return self.predicate(rec)


class Route:
    """The sinks of one event type. Filters on low-cardinality attributes are decided once
    per distinct (name, queue, worker, ...) combination: the sinks to call for it are
    memoised, so an event costs one tuple and one dict lookup however many such filters
    there are; other filters are tested record by record."""

    def __init__(self) -> None:
        self.memoised: list[tuple[Matcher, list[Sink]]] = []
        self.others: list[tuple[Matcher, list[Sink]]] = []
        self._key: Callable[[TaskRecord], object] = lambda rec: ()
        self._memo: dict[object, list[Sink]] = {}

    def add(self, matcher: Matcher, sink: Sink) -> None:
        entries = self.memoised if matcher.attrs is not None else self.others
        for known, sinks in entries:
            if known is matcher:
                sinks.append(sink)
                break
        else:
            entries.append((matcher, [sink]))
        attrs = sorted({a for m, _ in self.memoised for a in m.attrs or ()})
        # attrgetter of one attribute returns the value, of several a tuple: either is a key
        self._key = operator.attrgetter(*attrs) if attrs else (lambda rec: ())
        self._memo.clear()

    def __call__(self, records: list[TaskRecord], now: float) -> None:
        """The records of one batch (of this event type) to the sinks whose filter they
        match: grouped by their memo key first, so each sink is called once per group."""
        groups: dict[object, list[TaskRecord]] = {}
        odd: list[TaskRecord] = []
        key_of = self._key
        for rec in records:
            try:
                key = key_of(rec)
                found = groups.get(key)
            except TypeError:  # an unhashable value (a record built without validation)
                odd.append(rec)
                continue
            if found is None:
                groups[key] = [rec]
            else:
                found.append(rec)
        for key, recs in groups.items():
            sinks = self._memo.get(key)
            if sinks is None:
                sinks = self._sinks_for(recs[0])
                if len(self._memo) >= _MEMO_MAX:
                    self._memo.clear()
                self._memo[key] = sinks
            for sink in sinks:
                sink(recs, now)
        for rec in odd:
            for sink in self._sinks_for(rec):
                sink([rec], now)
        for matcher, found_sinks in self.others:
            matched = [rec for rec in records if matcher(rec)]
            if matched:
                for sink in found_sinks:
                    sink(matched, now)

    def _sinks_for(self, rec: TaskRecord) -> list[Sink]:
        return [sink for matcher, found in self.memoised if matcher(rec) for sink in found]


class Recent:
    """A counter over a window, with the last task ids and names it counted (what a
    notification links to)."""

    def __init__(self, window: float) -> None:
        self.counter = BucketCounter(window)
        self.last: deque[tuple[float, str, str | None]] = deque(maxlen=20)

    def add(self, records: list[TaskRecord], now: float) -> None:
        self.counter.add(now, len(records))
        self.last.extend((now, rec.uuid, rec.name) for rec in records[-20:])

    def total(self, now: float) -> int:
        return self.counter.total(now)

    def tasks(self, now: float) -> tuple[list[str], list[str]]:
        """Ids and distinct names of the last counted tasks still inside the window."""
        since = now - self.counter.window
        recent = [(uuid, name) for at, uuid, name in self.last if at >= since]
        names = sorted({name for _, name in recent if name})
        return [uuid for uuid, _ in recent], names


class Runtimes:
    def __init__(self, window: float) -> None:
        self.histogram = RuntimeHistogram(window)

    def add(self, records: list[TaskRecord], now: float) -> None:
        add = self.histogram.add
        for rec in records:
            runtime = rec.runtime
            if isinstance(runtime, float) and runtime >= 0:
                add(now, runtime)


class LastSeen:
    def __init__(self) -> None:
        self.at: float | None = None
        self.uuid: str | None = None

    def add(self, records: list[TaskRecord], now: float) -> None:
        self.at = now
        self.uuid = records[-1].uuid


class StartedTracker:
    """Tasks STARTED and not ended yet, oldest start first: the stuck ones are read from the
    front, so a read costs the number of stuck tasks, not of running ones. ``holders`` (one
    per ``Feeds``) says which trackers hold a task, so its end costs one lookup, not one per
    tracker."""

    def __init__(self, holders: dict[str, list[StartedTracker]]) -> None:
        self.running: OrderedDict[str, float] = OrderedDict()
        self.holders = holders
        self.untracked = 0

    def start(self, records: list[TaskRecord], now: float) -> None:
        running, holders = self.running, self.holders
        for rec in records:
            if rec.state != STATE_STARTED:
                # it ended in the same batch (the record is as the batch left it); events of
                # one batch reach the sinks grouped by type, so its end may have come first
                continue
            uuid = rec.uuid
            if uuid in running:
                running.move_to_end(uuid)
            elif len(running) >= STARTED_MAX or len(holders) >= 4 * STARTED_MAX:
                self.untracked += 1
                continue
            else:
                holders.setdefault(uuid, []).append(self)
            running[uuid] = now

    def older_than(self, now: float, age: float, limit: int = 20) -> tuple[int, list[str]]:
        """How many started more than ``age`` ago, and the first ``limit`` ids."""
        count, ids = 0, list[str]()
        for uuid, at in self.running.items():
            if now - at < age:
                break
            count += 1
            if len(ids) < limit:
                ids.append(uuid)
        return count, ids


class WorkerTracker:
    """Each worker's last sign of life and whether it said goodbye."""

    def __init__(self) -> None:
        #: hostname -> (local time of its last event, heartbeat interval, offline)
        self.workers: dict[str, tuple[float, float, bool]] = {}

    def add(self, rec: WorkerRecord, kind: str, now: float) -> None:
        freq = rec.freq if isinstance(rec.freq, (int, float)) and rec.freq > 0 else 2.0
        self.workers[rec.hostname] = (now, float(freq), kind == "worker-offline")


class Feeds:
    """The shared inputs, by event type: ``dispatch[type]`` routes a record to its sinks."""

    def __init__(self) -> None:
        self.dispatch: dict[str, Route] = {}
        self.workers = WorkerTracker()
        self._shared: dict[tuple[str, ...], object] = {}
        self._matchers: dict[str, Matcher] = {}
        #: task id -> the STARTED trackers holding it (see ``StartedTracker``)
        self._holders: dict[str, list[StartedTracker]] = {}

    def _matcher(self, text: str) -> Matcher:
        if text not in self._matchers:
            self._matchers[text] = Matcher(text)
        return self._matchers[text]

    def _subscribe(self, kind: str, text: str, sink: Sink) -> None:
        self.dispatch.setdefault(kind, Route()).add(self._matcher(text), sink)

    def recent(self, kind: str, text: str, window: float) -> Recent:
        key = ("recent", kind, text, repr(window))
        if key not in self._shared:
            feed = Recent(window)
            self._shared[key] = feed
            self._subscribe(kind, text, feed.add)
        found = self._shared[key]
        assert isinstance(found, Recent)
        return found

    def runtimes(self, text: str, window: float) -> RuntimeHistogram:
        key = ("runtimes", text, repr(window))
        if key not in self._shared:
            feed = Runtimes(window)
            self._shared[key] = feed
            self._subscribe(SUCCEEDED, text, feed.add)
        found = self._shared[key]
        assert isinstance(found, Runtimes)
        return found.histogram

    def last_success(self, text: str) -> LastSeen:
        key = ("last", text)
        if key not in self._shared:
            feed = LastSeen()
            self._shared[key] = feed
            self._subscribe(SUCCEEDED, text, feed.add)
        found = self._shared[key]
        assert isinstance(found, LastSeen)
        return found

    def started(self, text: str) -> StartedTracker:
        key = ("started", text)
        if key not in self._shared:
            if not any(k[0] == "started" for k in self._shared):
                for kind in ENDS:
                    # an end is matched with no filter: the record changed since it started
                    self._subscribe(kind, "", self._ended)
            feed = StartedTracker(self._holders)
            self._shared[key] = feed
            self._subscribe(STARTED, text, feed.start)
        found = self._shared[key]
        assert isinstance(found, StartedTracker)
        return found

    def _ended(self, records: list[TaskRecord], now: float) -> None:
        holders = self._holders
        if not holders:
            return
        for rec in records:
            for tracker in holders.pop(rec.uuid, ()):
                tracker.running.pop(rec.uuid, None)

    def on_tasks(self, kind: str, records: list[TaskRecord], now: float) -> None:
        """The records one batch's events of type ``kind`` touched, in order."""
        route = self.dispatch.get(kind)
        if route is not None:
            route(records, now)

    @property
    def wanted(self) -> frozenset[str]:
        """The task event types some rule reads (the others are not even copied)."""
        return frozenset(self.dispatch)
