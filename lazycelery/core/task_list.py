"""The task list the dashboard shows, over the TaskIndex: filter, sort, a selection kept as a
record (not a row number), and follow mode.

Cost model (the dashboard must stay interactive with a million tasks):

* The list keeps its own arrival-ordered list, fed with the records each ingest batch touched
  (``core.feed.TaskFeed``), so a new task costs O(1) and nothing is re-sorted per event.
* A filter is applied to arrivals as they come, and a task whose state change makes it start or
  stop matching is inserted or removed in O(log n) (binary search on its arrival number).
* Whole-list work (a new filter, re-sorting by a column) runs as a *job* in chunks
  (``step()``), newest records first, so the first screen of matches shows after one chunk and
  key presses are handled between chunks.
* Tasks the index evicts leave the list at the next ``sync()`` (the index logs their ids; each
  is found by binary search and the lists are cut in one pass), so the count shown never
  exceeds what the index holds. A compaction job is the fallback when the log was outrun.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from lazycelery.core.haystack import CHUNK, Haystacks
from lazycelery.core.index import TaskIndex
from lazycelery.core.model import (
    FAILURE,
    PENDING,
    PURGED,
    RECEIVED,
    REJECTED,
    RETRY,
    REVOKED,
    STARTED,
    SUCCESS,
    TaskRecord,
)
from lazycelery.core.query import Predicate, compile_filter, narrows
from lazycelery.text import real

__all__ = ["SORT_COLUMNS", "TaskListView", "number_key"]

#: sort columns of the task list, in the order ``s`` cycles through them
SORT_COLUMNS: Final = ("time", "state", "name", "worker", "runtime")
# state "severity" for sorting: what needs attention first
_STATE_RANK: Final = {FAILURE: 0, RETRY: 1, REVOKED: 2, REJECTED: 3, PURGED: 4, STARTED: 5,
                      RECEIVED: 6, PENDING: 7, SUCCESS: 8}


_INF: Final = float("inf")
#: a word extended as it is typed re-checks the previous matches record by record while they
#: are fewer than this; more, and the joined text of every task is searched instead (faster)
NARROW_MAX: Final = 50_000
#: lists at least this long get their free-text chunks built while idle (``warm_text``):
#: below it a first record-by-record scan is already within the filter budget
WARM_MIN: Final = 100_000


def _text_key(value: object) -> str:
    # a field of another type (a record built without validation) sorts as empty, never raises
    return value if isinstance(value, str) else ""


def number_key(value: object) -> float:
    """A number to order by (runtimes, times); unknown or odd values (None, NaN, inf, a
    string, 10**400) give -1, with the tasks that have no runtime."""
    if value.__class__ is float and -_INF < value < _INF:  # the common case; NaN fails it
        return value
    finite = real(value)
    return -1.0 if finite is None else finite


def _state_key(value: object) -> int:
    return _STATE_RANK.get(value, 9) if isinstance(value, str) else 9


_SORT_KEYS: Final[Mapping[str, Callable[[TaskRecord], Any]]] = {
    "state": lambda r: _state_key(r.state),
    "name": lambda r: _text_key(r.name),
    "worker": lambda r: _text_key(r.worker),
    "runtime": lambda r: number_key(r.runtime),
}
_DEFAULT_DESCENDING: Final = {"time": True, "state": False, "name": False, "worker": False,
                              "runtime": True}


class _Rows(Protocol):
    def __len__(self) -> int: ...
    def __getitem__(self, i: int, /) -> TaskRecord: ...


class _Bidi:
    """An arrival-ordered sequence that grows at both ends in O(1): ``front`` holds the older
    part newest-first (a backwards scan appends to it), ``back`` the newer part in order."""

    __slots__ = ("back", "front")

    def __init__(self, front: list[TaskRecord] | None = None,
                 back: list[TaskRecord] | None = None) -> None:
        self.front = front if front is not None else []
        self.back = back if back is not None else []

    def __len__(self) -> int:
        return len(self.front) + len(self.back)

    def __getitem__(self, i: int) -> TaskRecord:
        f = len(self.front)
        return self.front[f - 1 - i] if i < f else self.back[i - f]

    def remove_at(self, positions: Sequence[int]) -> None:
        """Remove the rows at these (sorted, distinct) logical positions."""
        f = len(self.front)
        _remove_at(self.front, sorted(f - 1 - i for i in positions if i < f))
        _remove_at(self.back, [i - f for i in positions if i >= f])

    def insert(self, i: int, rec: TaskRecord) -> None:
        f = len(self.front)
        if i <= f and f:
            self.front.insert(f - i, rec)
        else:
            self.back.insert(i - f, rec)

    def pop(self, i: int) -> TaskRecord:
        f = len(self.front)
        return self.front.pop(f - 1 - i) if i < f else self.back.pop(i - f)


def _remove_at(rows: list[TaskRecord], positions: Sequence[int]) -> None:
    """Remove rows at sorted, distinct positions, in place. Only the span between the first and
    the last position is rebuilt: evicted tasks are the least recently active, so they cluster
    at the old end of the list, and touching every record would cost a cache miss each."""
    if not positions:
        return
    if len(positions) <= 4:
        for i in reversed(positions):
            del rows[i]
        return
    first = positions[0]
    kept: list[TaskRecord] = []
    start = first
    for i in positions:
        kept += rows[start:i]
        start = i + 1
    rows[first:start] = kept


@dataclass
class _Job:
    """Chunked whole-list work; ``steps`` yields after each chunk."""

    kind: str  # "scan" | "compact" | "sort"
    steps: Iterator[None]
    progress: Callable[[], float] = lambda: 0.0


class TaskListView:
    """The task pane's model: rows newest first (or sorted by a column), an optional filter,
    a selection held as a record (not a row number) and follow mode.

    Single-threaded: call everything from the UI thread; records come in through ``sync()``.
    """

    def __init__(self, index: TaskIndex, *, chunk: int = 25_000,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] | None = None, text_chunk: int = CHUNK,
                 warm_min: int = WARM_MIN) -> None:
        self.index = index
        self.chunk = chunk
        self._clock = clock
        self._wall = wall_clock or index.clock
        self._base: list[TaskRecord] = []  # every known task, arrival order
        self._seq: dict[str, int] = {}  # uuid -> arrival number (also the "known" set)
        self._next_seq = 0
        self.predicate: Predicate | None = None
        self._matches: _Rows = self._base  # arrival order; the base list when unfiltered
        self.sort_column = "time"
        self.descending = True
        self._ordered: list[TaskRecord] | None = None  # display order, non-time sorts only
        self._ordered_stale = False
        self._job: _Job | None = None
        self._deferred: list[TaskRecord] = []  # changed while a scan ran: re-check after it
        self._evicted_mark = index.evicted
        self._last_rescan = clock()
        self._rescan_cost = 0.0
        self._last_sort = clock()
        self._sort_cost = 0.0
        self.follow = True
        self.selected: TaskRecord | None = None
        self._hint = 0  # display index where ``selected`` was last seen
        # matches read from the history store that memory does not hold, newest first: shown
        # after (older than) the matches in memory; cleared when the filter changes
        self._history: list[TaskRecord] = []
        self._history_ids: dict[str, int] = {}  # uuid -> FROM_HISTORY | BACKFILLED
        #: bumped whenever rows or the selection may have changed (views key caches on it)
        self.generation = 0
        # joined lowercased text of the tasks by arrival-number range, for free text and
        # regular expressions (core.haystack); kept current through the index's change log
        self._text = Haystacks(text_chunk)
        self._text_mark = index.changes
        #: search free text through the joined text (False: record by record, as before)
        self.joined_text = True
        self.warm_min = warm_min
        self.rebuild()

    # ------------------------------------------------------------------ rows

    def __len__(self) -> int:
        if self._ordered is not None:
            return len(self._ordered)
        return len(self._matches) + len(self._history)

    def row(self, d: int) -> TaskRecord:
        """The record shown at display row ``d`` (0 = top); in time order, tasks read from
        the store come after (older than) those in memory."""
        if self._ordered is not None:
            return self._ordered[d]
        rows, older = self._matches, self._history
        if self.descending:
            n = len(rows)
            return rows[n - 1 - d] if d < n else older[d - n]
        h = len(older)
        return older[h - 1 - d] if d < h else rows[d - h]

    # ------------------------------------------------------------------ from the store

    @property
    def history_count(self) -> int:
        """Matches shown from the history store (not in memory)."""
        return len(self._history)

    def history_mark(self, uuid: str) -> int:
        """FROM_HISTORY / BACKFILLED bits of a task shown from the store (0 otherwise)."""
        return self._history_ids.get(uuid, 0)

    def add_history(self, records: Sequence[tuple[TaskRecord, int]]) -> int:
        """Add tasks read from the store (newest first, each with its marks) that match the
        filter and that memory does not hold; returns how many were added."""
        predicate = self.predicate
        get = self.index.get
        known = self._history_ids
        added: list[TaskRecord] = []
        for rec, mark in records:
            if rec.uuid in known or get(rec.uuid) is not None:
                continue
            if predicate is not None and not predicate(rec):
                continue
            known[rec.uuid] = mark
            added.append(rec)
        if added:
            self._history.extend(added)
            if self._ordered is not None:
                for rec in added:
                    self._insort(rec)
            self._changed()
        return len(added)

    def clear_history(self) -> None:
        if self._history:
            gone = {id(r) for r in self._history}
            self._history = []
            self._history_ids = {}
            if self._ordered is not None:
                self._ordered[:] = [r for r in self._ordered if id(r) not in gone]
            self._changed()

    def _drop_history(self, uuids: Sequence[str]) -> None:
        """Tasks now in memory leave the history part (their live record is listed)."""
        gone = {u for u in uuids if u in self._history_ids}
        if not gone:
            return
        removed = {id(r) for r in self._history if r.uuid in gone}
        self._history = [r for r in self._history if r.uuid not in gone]
        for uuid in gone:
            del self._history_ids[uuid]
        if self._ordered is not None:
            self._ordered[:] = [r for r in self._ordered if id(r) not in removed]

    @property
    def text_memory(self) -> int:
        """Bytes the joined text of free-text search holds (core.haystack)."""
        return self._text.memory()

    def snapshot(self) -> list[TaskRecord]:
        """Every row, in no particular order: a copy made at C speed for work off the UI
        thread (the timeline's layout)."""
        if self._ordered is not None:
            return list(self._ordered)
        rows = self._matches
        if isinstance(rows, _Bidi):
            return rows.front + rows.back + self._history
        if isinstance(rows, list):
            return rows + self._history
        return [rows[i] for i in range(len(rows))] + self._history

    def rows(self, start: int, stop: int) -> list[TaskRecord]:
        """Display rows ``start:stop`` (clamped): what a virtual table formats."""
        stop = min(stop, len(self))
        return [self.row(d) for d in range(max(0, start), stop)]

    @property
    def total(self) -> int:
        """Tasks in the index (what the list shows when unfiltered)."""
        return len(self.index)

    @property
    def filter_text(self) -> str:
        return self.predicate.text if self.predicate is not None else ""

    @property
    def busy(self) -> bool:
        """Whole-list work is pending; call ``step()`` until it is not."""
        return self._job is not None

    @property
    def busy_kind(self) -> str | None:
        return self._job.kind if self._job is not None else None

    @property
    def progress(self) -> float:
        return self._job.progress() if self._job is not None else 1.0

    # ------------------------------------------------------------------ building

    def rebuild(self) -> None:
        """Reload every task from the index (start-up, or after the feed overflowed).

        Arrival order is unknown for tasks already indexed; first-seen time approximates it.
        """
        with self.index.lock:
            records = list(self.index.iter_newest())
        try:
            records.sort(key=lambda r: r.first_seen or r.last_seen)
        except TypeError:  # a time of an odd type (a record built without validation)
            records.sort(key=lambda r: number_key(r.first_seen or r.last_seen))
        self._base = records
        self._text.clear()  # arrival numbers start again
        self._seq = {r.uuid: i for i, r in enumerate(records)}
        self._next_seq = len(records)
        self._evicted_mark = self.index.evicted
        self._job = None
        if self._history_ids:
            self._drop_history([u for u in self._history_ids if self.index.get(u) is not None])
        self._restart(progressive=True)

    def _restart(self, progressive: bool, source: list[TaskRecord] | None = None) -> None:
        """Recompute matches (and order) for the current filter and sort; ``source``: the
        records to scan when not every task (see ``_narrowed_source``)."""
        self._job = None
        if self.predicate is None:
            self._matches = self._base
            self._after_matches()
        else:
            self._start_scan(progressive, source)
        self._changed()

    def _after_matches(self) -> None:
        if self.sort_column == "time":
            self._ordered = None
        else:
            self._sort_now()

    # ------------------------------------------------------------------ filter & sort

    def set_filter(self, text: str) -> None:
        """Apply filter text (empty clears it); raises ``FilterError`` and keeps the old one."""
        text = text.strip()
        predicate = compile_filter(text, now=self._wall()) if text else None
        if predicate is not None and predicate.is_empty:
            predicate = None
        if (predicate is None and self.predicate is None) or (
                predicate is not None and self.predicate is not None
                and predicate.text == self.predicate.text):
            return
        source = self._narrowed_source(predicate)
        self.predicate = predicate
        self.clear_history()
        if predicate is not None:
            self.selected = None  # a new filter starts at the top, as in lazygit and k9s
            self._hint = 0
        self._restart(progressive=True, source=source)

    def _narrowed_source(self, new: Predicate | None) -> list[TaskRecord] | None:
        """The current matches (arrival order) when ``new`` can only match a subset of them
        (a word extended as it is typed): the new scan then reads those, not every task.
        Only when they are complete and current: no job running (the flips of changed tasks
        are applied), and no clock-relative term (its cutoff moved since)."""
        old, matches = self.predicate, self._matches
        if new is None or old is None or self._job is not None or not isinstance(matches, _Bidi):
            return None
        if old.time_dependent or new.time_dependent or not narrows(old.text, new.text):
            return None
        return matches.front[::-1] + matches.back

    def set_sort(self, column: str, descending: bool | None = None) -> None:
        if column not in SORT_COLUMNS:
            raise ValueError(f"unknown sort column {column!r}")
        self.sort_column = column
        self.descending = _DEFAULT_DESCENDING[column] if descending is None else descending
        if self._job is not None and self._job.kind == "scan":
            return  # the scan sorts when it finishes
        self._after_matches()
        self._changed()

    def cycle_sort(self) -> None:
        i = SORT_COLUMNS.index(self.sort_column)
        self.set_sort(SORT_COLUMNS[(i + 1) % len(SORT_COLUMNS)])

    def reverse_sort(self) -> None:
        self.set_sort(self.sort_column, not self.descending)

    def _sort_now(self) -> None:
        key = _SORT_KEYS[self.sort_column]
        start = self._clock()
        rows = self._matches
        newest_first = [rows[i] for i in range(len(rows) - 1, -1, -1)] + self._history
        # sorted() is stable with reverse=True too, so equal keys stay newest first
        self._ordered = sorted(newest_first, key=key, reverse=self.descending)
        self._sort_cost = self._clock() - start
        self._last_sort = self._clock()
        self._ordered_stale = False

    # ------------------------------------------------------------------ jobs

    def step(self, budget: float = 0.02) -> bool:
        """Run pending whole-list work for about ``budget`` seconds; True if more remains."""
        deadline = self._clock() + budget
        while self._job is not None:
            job = self._job
            try:
                next(job.steps)
            except StopIteration:
                if self._job is job:
                    self._job = None
                self._changed()
                continue
            if self.selected is None and len(self):
                self.select_index(0)
            if self._clock() >= deadline:
                break
        if self.selected is None and len(self):
            self.select_index(0)
        self._changed()
        return self._job is not None

    def settle(self) -> None:
        """Finish all pending work now (tests, benchmarks, small lists)."""
        while self.step(budget=3600.0):
            pass

    def _start_scan(self, progressive: bool, source: list[TaskRecord] | None = None) -> None:
        predicate = self.predicate
        if progressive:
            self._deferred = []  # the scan sees every record as it is now
        assert predicate is not None
        assert source is None or progressive  # a narrowed scan replaces the shown matches
        predicate.refresh(self._wall())
        joined = self.joined_text and getattr(predicate, "probe", None) is not None and (
            source is None or len(source) > NARROW_MAX)
        if joined:
            source = None  # the joined text of every task is searched (faster than re-checking)
            self._drain_changes()
        base = self._base if source is None else source
        limit = len(base)
        found = _Bidi()
        if progressive:
            self._matches = found  # partial results show as they are found
            self._ordered = None
        chunk = self.chunk
        state = {"pos": limit}
        started = self._clock()

        def chunks() -> Iterator[tuple[int, list[TaskRecord]]]:
            """Matches of each chunk, newest chunk first: its start and its matches."""
            pos = limit
            if not joined:
                while pos > 0:
                    lo = max(0, pos - chunk)
                    yield lo, predicate.filter(base[lo:pos])
                    pos = lo
                return
            text = self._text
            size = text.chunk
            seq_of = self._seq
            keys: set[int] = set()
            while pos > 0:
                seq = seq_of.get(base[pos - 1].uuid)
                if seq is None:  # not expected (every listed task has one): record by record
                    yield 0, predicate.filter(base[:pos])
                    break
                key = seq // size
                lo = min(self._search(base, key * size)[0], pos - 1)  # (always progresses)
                keys.add(key)
                yield lo, text.search(key, base[lo:pos], predicate)
                pos = lo
            text.keep_only(keys)  # ranges no longer listed: their tasks were evicted

        def steps() -> Iterator[None]:
            for lo, hits in chunks():
                hits.reverse()
                found.front.extend(hits)
                state["pos"] = lo
                yield
            # arrivals during the scan were appended to the live list; bring them over
            if not progressive:
                found.back.extend(predicate.filter(self._base[limit:]))
                self._matches = found
            self._rescan_cost = self._clock() - started
            self._last_rescan = self._clock()
            deferred, self._deferred = self._deferred, []
            if predicate.mutable:
                self._apply_flips(predicate, deferred)
            self._after_matches()
            self._locate()

        self._job = _Job("scan", steps(), lambda: 1.0 - state["pos"] / limit if limit else 1.0)

    def warm_text(self, budget: float = 0.01) -> bool:
        """Build the joined free-text chunks of full arrival ranges not built yet, newest
        first, for about ``budget`` seconds (at least one chunk); True if more remain.

        Called while the dashboard is idle, so that the first free-text or regex filter over
        a long list searches built chunks instead of building them all (1-2 s over a million
        tasks). Only lists of ``warm_min`` tasks or more; never during whole-list work; the
        newest range, still filling, and ranges already built (stale ones included: a scan
        rebuilds those it needs) are left to the scan."""
        base = self._base
        if not self.joined_text or self._job is not None or len(base) < self.warm_min:
            return False
        text, seq_of = self._text, self._seq
        size = text.chunk
        newest, oldest = seq_of.get(base[-1].uuid), seq_of.get(base[0].uuid)
        if newest is None or oldest is None:
            return False
        self._drain_changes()
        deadline = self._clock() + budget
        for key in range(newest // size - 1, oldest // size - 1, -1):
            if text.holds(key):
                continue
            lo = self._search(base, key * size)[0]
            hi = self._search(base, (key + 1) * size)[0]
            if lo < hi:
                text.get(key, base[lo:hi])
            if self._clock() >= deadline:
                return True
        return False

    def _drain_changes(self) -> None:
        """Mark the joined text of records the index changed since the last call as stale."""
        text = self._text
        if not len(text):  # (the common case: no free-text filter was applied)
            self._text_mark = self.index.changes  # nothing cached: read before anything is
            return
        self._text_mark, uuids = self.index.changed_since(self._text_mark)
        if uuids is None:  # changed faster than the log keeps: start afresh
            text.clear()
        elif uuids:
            seq = self._seq
            text.invalidate([seq.get(u) for u in uuids])

    def _start_compaction(self) -> None:
        """Drop evicted records (and pick up re-created ones) in chunks, then rescan."""
        base = self._base
        limit = len(base)
        get = self.index.get
        seq = self._seq
        chunk = self.chunk
        state = {"pos": 0}

        def steps() -> Iterator[None]:
            kept: list[TaskRecord] = []
            pos = 0
            while pos < limit:
                for rec in base[pos:pos + chunk]:
                    current = get(rec.uuid)
                    if current is None:
                        seq.pop(rec.uuid, None)
                    else:
                        kept.append(current)  # the index may hold a newer record object
                pos = state["pos"] = pos + chunk
                yield
            kept.extend(self._base[limit:])
            self._base = kept
            if self.predicate is None:
                self._matches = kept
                self._after_matches()
                self._locate()
            else:
                self._start_scan(progressive=False)  # chained: replaces this job

        self._evicted_mark = self.index.evicted
        self._job = _Job("compact", steps(), lambda: state["pos"] / limit if limit else 1.0)

    # ------------------------------------------------------------------ live updates

    def sync(self, records: Sequence[object] = ()) -> None:
        """Take in records touched by ingest batches (in order) and schedule upkeep."""
        revived = self._drop_evicted()
        if revived:
            records = [*revived, *records]
        self._drain_changes()
        predicate = self.predicate
        new: list[TaskRecord] = []
        changed: list[TaskRecord] = []
        seq = self._seq
        get = self.index.get
        for rec in records:
            if type(rec) is not TaskRecord:
                continue
            if rec.uuid in seq:
                changed.append(rec)
            elif get(rec.uuid) is rec:  # not evicted within the same batches
                seq[rec.uuid] = self._next_seq
                self._next_seq += 1
                self._base.append(rec)
                new.append(rec)
        if new and self._history_ids:
            self._drop_history([r.uuid for r in new])
        if new or changed:
            if predicate is not None:
                hits = predicate.filter(new)
                if isinstance(self._matches, _Bidi):
                    self._matches.back.extend(hits)
                if self._ordered is not None:
                    for rec in hits:
                        self._insort(rec)
                if predicate.mutable:
                    if self._job is not None:
                        self._deferred.extend(changed)
                    else:
                        self._apply_flips(predicate, changed)
            elif self._ordered is not None:
                for rec in new:
                    self._insort(rec)
            if changed and self._ordered is not None:
                self._ordered_stale = True
            self._changed()
        self._upkeep()
        if len(self) and (self.follow or self.selected is None):
            self.selected = self.row(0)
            self._hint = 0

    def _drop_evicted(self) -> list[TaskRecord]:
        """Remove the records the index evicted since the last call (none while a job runs: it
        takes positions in the lists). Returns the live records that replace a removed one
        (the task came back as a new record), to be added as new."""
        if self._job is not None or self.index.evicted == self._evicted_mark:
            return []
        uuids = self.index.evicted_since(self._evicted_mark)
        if uuids is None:  # evicted faster than the log keeps: compact in chunks instead
            self._start_compaction()
            return []
        self._evicted_mark += len(uuids)
        get = self.index.get
        base = self._base
        dead: dict[str, tuple[int, TaskRecord]] = {}
        revived: list[TaskRecord] = []
        for uuid in dict.fromkeys(uuids):
            seq = self._seq.get(uuid)
            if seq is None:
                continue
            pos, found = self._search(base, seq)
            if not found:
                continue
            current = get(uuid)
            if current is base[pos]:
                continue  # evicted, then taken back from limbo: still the same record
            dead[uuid] = (pos, base[pos])
            if current is not None:
                revived.append(current)
        if not dead:
            return revived
        matches = self._matches
        if matches is not base:
            hits = [self._search(matches, self._seq[uuid]) for uuid in dead]
            at = sorted(pos for pos, found in hits if found)
            if isinstance(matches, _Bidi):
                matches.remove_at(at)
            elif isinstance(matches, list):
                _remove_at(matches, at)
        _remove_at(base, sorted(pos for pos, _ in dead.values()))
        if self._ordered is not None:
            gone = {id(rec) for _, rec in dead.values()}
            self._ordered[:] = [r for r in self._ordered if id(r) not in gone]
        for uuid in dead:
            del self._seq[uuid]
        self._changed()
        return revived

    def _apply_flips(self, predicate: Predicate, changed: Sequence[TaskRecord]) -> None:
        """Insert/remove tasks whose change made them start/stop matching: O(log n) each."""
        matches = self._matches
        if not isinstance(matches, _Bidi):
            return
        seen: set[int] = set()
        for rec in changed:
            if id(rec) in seen:
                continue
            seen.add(id(rec))
            seq = self._seq.get(rec.uuid)
            if seq is None:
                continue
            pos, found = self._search(matches, seq)
            hit = predicate(rec)
            if hit and not found:
                matches.insert(pos, rec)
                if self._ordered is not None:
                    self._insort(rec)
            elif found and not hit:
                matches.pop(pos)
                if self._ordered is not None:
                    self._ordered_stale = True

    def _search(self, rows: _Rows, seq: int) -> tuple[int, bool]:
        """Binary search of an arrival-ordered list by arrival number."""
        seq_of = self._seq
        lo, hi = 0, len(rows)
        while lo < hi:
            mid = (lo + hi) // 2
            s = seq_of.get(rows[mid].uuid, -1)
            if s < seq:
                lo = mid + 1
            else:
                hi = mid
        return lo, lo < len(rows) and seq_of.get(rows[lo].uuid, -1) == seq

    def _insort(self, rec: TaskRecord) -> None:
        """Insert a new match into the sorted display list, first among equal keys."""
        rows = self._ordered
        assert rows is not None
        key = _SORT_KEYS[self.sort_column]
        k = key(rec)
        lo, hi = 0, len(rows)
        while lo < hi:
            mid = (lo + hi) // 2
            km = key(rows[mid])
            if (km > k) if self.descending else (km < k):
                lo = mid + 1
            else:
                hi = mid
        rows.insert(lo, rec)

    def _upkeep(self) -> None:
        """Schedule compaction, periodic rescans and re-sorts; each at most every
        max(interval, 10-20 x its last cost) so large lists cost a bounded CPU share."""
        if self._job is not None:
            return
        now = self._clock()
        dead = self.index.evicted - self._evicted_mark
        if dead and dead >= max(64, len(self._base) // 10):
            self._start_compaction()
            return
        predicate = self.predicate
        if predicate is not None and predicate.time_dependent and \
                now - self._last_rescan >= max(5.0, 20 * self._rescan_cost):
            self._start_scan(progressive=False)
            return
        if self._ordered is not None and self._ordered_stale and \
                now - self._last_sort >= max(1.0, 20 * self._sort_cost):
            self._sort_now()
            self._locate()
            self._changed()

    def _changed(self) -> None:
        self.generation += 1

    # ------------------------------------------------------------------ selection

    def selected_index(self) -> int:
        """Display index of the selection (-1 if nothing is selected)."""
        if self.selected is None or not len(self):
            return -1
        return self._locate()

    def _locate(self) -> int:
        """Find the selected record's display row: O(1) if unchanged, O(log n) by arrival
        number in time order, else a linear scan (only after a re-sort)."""
        sel = self.selected
        n = len(self)
        if sel is None or not n:
            return -1
        hint = min(self._hint, n - 1)
        if self.row(hint) is sel:
            self._hint = hint
            return hint
        d = -1
        if self._ordered is None:
            seq = self._seq.get(sel.uuid)
            matched = len(self._matches)
            if seq is not None:
                pos, found = self._search(self._matches, seq)
                if found:
                    d = matched - 1 - pos if self.descending else pos + len(self._history)
            elif sel.uuid in self._history_ids:
                for i, rec in enumerate(self._history):
                    if rec is sel:
                        d = matched + i if self.descending else len(self._history) - 1 - i
                        break
        else:
            for i, rec in enumerate(self._ordered):
                if rec is sel:
                    d = i
                    break
        if d < 0:
            # the task left the list (filtered out or evicted): stay at the same row
            d = hint
            self.selected = self.row(d)
        self._hint = d
        return d

    def select_index(self, d: int) -> None:
        n = len(self)
        if not n:
            self.selected = None
            return
        d = max(0, min(d, n - 1))
        self.selected = self.row(d)
        self._hint = d
        self._changed()

    def select(self, record: TaskRecord) -> bool:
        """Select ``record`` if it is in the list; returns whether it was found."""
        previous, hint = self.selected, self._hint
        self.selected = record
        self._hint = 0
        if self._locate() >= 0 and self.selected is record:
            self.follow = False
            self._changed()
            return True
        self.selected, self._hint = previous, hint
        return False

    def move(self, delta: int) -> None:
        """Move the selection by ``delta`` rows; leaving the top row ends follow mode."""
        d = self.selected_index()
        self.select_index(max(0, d) + delta if d >= 0 else 0)
        if self.selected_index() > 0:
            self.follow = False

    def first(self) -> None:
        self.select_index(0)

    def last(self) -> None:
        self.select_index(len(self) - 1)
        if self.selected_index() > 0:
            self.follow = False

    def set_follow(self, on: bool) -> None:
        self.follow = on
        if on and len(self):
            self.select_index(0)
        self._changed()
