"""The dashboard's history: a thread of its own that opens the store, takes the most recent
tasks, the workers seen and the recent gaps into the index at start, and then answers what the
UI asks (a task by id, pages of a ``since:`` / ``before:`` range). The UI never waits on the
database: requests go to the thread through a queue, answers come back through ``take()``
(drained before each frame) and a redraw request.

What goes into the index is handed to its one writer, the ingest thread, which merges it
before its next batch (``TaskIndex.hand_over``); only when no batch comes within a second (an
idle cluster, a broker that is down) does this thread merge it, under the index's lock. The
UI thread copies what it shows."""

from __future__ import annotations

import logging
import queue
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from lazycelery.core.index import BACKFILLED, FROM_HISTORY, TaskIndex
from lazycelery.core.model import TaskRecord
from lazycelery.text import counted
from lazycelery.tui.screen.store_thread import StoreThread

if TYPE_CHECKING:
    from lazycelery.core.query import Predicate
    from lazycelery.store import Store, StoredGap
    from lazycelery.store.query import StoredTask as QueriedTask
    from lazycelery.store.query import TaskFilter
    from lazycelery.store.reader import StoredTask

__all__ = ["MAX_MATCHES", "MAX_SCANNED", "PRELOAD", "HistorySource", "LookupDone", "RangePage",
           "pushdown"]

log = logging.getLogger(__name__)

#: tasks taken into memory from the store at start (at most the index's free room)
PRELOAD: Final = 5_000
#: a range query stops after this many matches (the title says the list is cut) ...
MAX_MATCHES: Final = 10_000
#: ... or after reading this many tasks
MAX_SCANNED: Final = 500_000
#: workers and gaps shown from the last ... seconds
RECENT: Final = 86_400.0
#: how long the start-up load waits for the ingest thread (the index's one writer) to take it
#: in before its next batch; an idle or disconnected stream: the history thread does, under
#: the index's lock (``TaskIndex.hand_over``)
WRITER_WAIT: Final = 1.0
#: the store pages by sender time (``last_time``, indexed), the filter compares the recorder's
#: receive time (``last_seen``, as for live tasks): read this much more on each side
CLOCK_SLACK: Final = 300.0
#: a ``name:`` term is pushed down to the store when it matches at most this many stored names
MAX_PUSHED_NAMES: Final = 1000


@dataclass(frozen=True)
class LookupDone:
    """The answer to ``lookup(uuid)``: the stored record and its marks, or None."""

    uuid: str
    record: TaskRecord | None
    mark: int


@dataclass(frozen=True)
class RangePage:
    """A page of a range query (query ``generation``); ``done`` with the reason it ended."""

    generation: int
    records: list[tuple[TaskRecord, int]]
    done: bool = False
    cut: bool = False


def _mark(task: StoredTask | QueriedTask) -> int:
    return FROM_HISTORY | (BACKFILLED if task.backfilled else 0)


def _record(task: StoredTask | QueriedTask) -> TaskRecord:
    rec = task.record
    if not rec.last_seen and task.last_time is not None:
        rec.last_seen = task.last_time  # a backfilled task has no local receive time
    return rec


def pushdown(predicate: Predicate, names: Callable[[], list[str] | None]
             ) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """The states and the task names every match of ``predicate`` must have, from its
    ``state:`` and ``name:`` terms that are not negated (all terms must match), for the store
    to select by its index; empty: that column is not constrained. ``names()`` gives the
    stored names (None: too many), each tested with the term itself, so ``name:`` keeps its
    substring / wildcard / ``re:`` / smart-case meaning. None when nothing can match."""
    from lazycelery.core.model import STATES
    from lazycelery.core.query import compile_filter, tokenize

    states: set[str] | None = None
    wanted: set[str] | None = None
    stored: list[str] | None = None
    for tok in tokenize(predicate.text):
        field = tok.raw.partition(":")[0]
        if field not in ("state", "name"):
            continue  # a negated or quoted term is left to the predicate
        term = compile_filter(tok.raw)
        if field == "state":
            found = {s for s in STATES if term(TaskRecord(uuid="", state=s))}
            states = found if states is None else states & found
            continue
        if stored is None:
            stored = names()
            if stored is None:
                continue  # too many names: filtered here, not in the store
        found = {n for n in stored if term(TaskRecord(uuid="", name=n))}
        wanted = found if wanted is None else wanted & found
    if states == set() or wanted == set():
        return None
    return tuple(sorted(states or ())), tuple(sorted(wanted or ()))


class HistorySource(StoreThread):
    """The history thread and what it reports (all attributes are swapped whole)."""

    THREAD = "lazycelery-history"

    def __init__(self, url: str, index: TaskIndex, *, on_change: Callable[[], None] = lambda: None,
                 preload: int = PRELOAD, quiet_missing: bool = False,
                 opener: Callable[[str], Store] | None = None,
                 writer_wait: float = WRITER_WAIT) -> None:
        super().__init__(url, on_change=on_change, quiet_missing=quiet_missing, opener=opener)
        self.index = index
        self.preload = preload
        self.writer_wait = writer_wait
        #: opening / on / off
        self.state = "opening"
        #: one line for the header
        self.status = f"history: opening {self.masked}…"
        #: bumped when tasks were taken into the index (the list then rebuilds)
        self.loaded = 0
        self.gaps: list[StoredGap] = []
        self._summary_text = ""
        self._requests: queue.Queue[tuple[str, object] | None] = queue.Queue()
        self._answers: deque[LookupDone | RangePage] = deque()
        self._generation = 0
        self._pending: set[str] = set()

    # ------------------------------------------------------------------ UI thread

    @property
    def on(self) -> bool:
        return self.state != "off"

    def _stopping(self) -> None:
        self._generation += 1
        self._requests.put(None)

    def lookup(self, uuid: str) -> bool:
        """Ask for a task by id (answered through ``take``); False when history is off."""
        if not self.on:
            return False
        if uuid not in self._pending:
            self._pending.add(uuid)
            self._requests.put(("task", uuid))
        return True

    def loading(self, uuid: str) -> bool:
        return uuid in self._pending

    def query(self, predicate: Predicate, since: float | None, until: float | None) -> int:
        """Start reading the tasks last active in ``[since, until)`` that match ``predicate``
        (a running query is cancelled); returns the query's generation."""
        self._generation += 1
        if self.on:
            self._requests.put(("range", (self._generation, predicate, since, until)))
        return self._generation

    def cancel(self) -> None:
        self._generation += 1

    @property
    def generation(self) -> int:
        return self._generation

    def take(self) -> list[LookupDone | RangePage]:
        out: list[LookupDone | RangePage] = []
        while self._answers:
            answer = self._answers.popleft()
            if isinstance(answer, LookupDone):
                self._pending.discard(answer.uuid)
            out.append(answer)
        return out

    # ------------------------------------------------------------------ the thread

    def _answer(self, answer: LookupDone | RangePage) -> None:
        self._answers.append(answer)
        self.on_change()

    def _failed(self, why: str) -> None:
        self.state = "off"
        self.status = f"history off: {why}"
        for uuid in list(self._pending):
            self._answers.append(LookupDone(uuid, None, 0))
        self.on_change()

    def _broke(self, store: Store, exc: Exception) -> None:
        self._failed(store.describe_error(exc))

    def _work(self, store: Store) -> None:
        self._preload(store)
        while not self._stop.is_set():
            request = self._requests.get()
            if request is None:
                break
            kind, arg = request
            try:
                if kind == "task":
                    assert isinstance(arg, str)
                    self._lookup(store, arg)
                else:
                    self._range(store, arg)  # type: ignore[arg-type]
                if self.status != self._summary_text:  # works again after an error
                    self.status = self._summary_text
                    self.on_change()
            except Exception as exc:
                if self._stop.is_set():
                    break
                line = store.describe_error(exc)
                self.status = f"history: {line}"
                self._answer_failure(kind, arg)
                self.on_change()
                try:
                    store.reconnect()
                except Exception:
                    log.debug("history reconnect failed", exc_info=True)

    def _answer_failure(self, kind: str, arg: object) -> None:
        if kind == "task" and isinstance(arg, str):
            self._answer(LookupDone(arg, None, 0))
        elif isinstance(arg, tuple):
            self._answer(RangePage(int(arg[0]), [], done=True))

    def _preload(self, store: Store) -> None:
        from lazycelery.store.reader import recent_gaps, recent_tasks, workers_seen
        from lazycelery.store.rows import merge_records

        room = max(0, min(self.preload, self.index.max_tasks - len(self.index)))
        tasks = recent_tasks(store, room) if room else []
        taken = self.index.merge_stored(((_record(t), t.backfilled) for t in tasks),
                                        merge_records, self.writer_wait)
        since = time.time() - RECENT
        workers = self.index.merge_workers(workers_seen(store, since), self.writer_wait)
        self.gaps = recent_gaps(store, since)
        self.state = "on"
        self.status = self._summary_text = self._summary(taken, workers)
        self.loaded += 1
        self.on_change()

    def _summary(self, tasks: int, workers: int) -> str:
        def clock_time(t: float) -> str:
            return time.strftime("%H:%M:%S", time.localtime(t))

        # short: the header line has room for little (the store is in `config show`)
        text = f"history: {counted(tasks, 'task')}"
        if workers:
            text += f", {workers:,} worker{'s' if workers != 1 else ''}"
        if self.gaps:
            gap = self.gaps[-1]
            count = f"{len(self.gaps)} gaps in the last day, last" if len(self.gaps) > 1 \
                else "last gap"
            text += (f"; {count} {clock_time(gap.start)} ({gap.end - gap.start:,.0f} s, "
                     f"{gap.cause})")
        return text

    def _lookup(self, store: Store, uuid: str) -> None:
        found = store.get_task(uuid)
        if found is None:
            self._answer(LookupDone(uuid, None, 0))
            return
        rec, backfilled = found
        if not rec.last_seen:
            from lazycelery.store.rows import task_times

            rec.last_seen = task_times(rec)[1] or 0.0
        self._answer(LookupDone(uuid, rec, FROM_HISTORY | (BACKFILLED if backfilled else 0)))

    def _range(self, store: Store, arg: tuple[int, Predicate, float | None, float | None]) -> None:
        from lazycelery.store.query import MAX_SPLIT, TaskFilter, task_names

        generation, predicate, since, until = arg
        if since is not None:
            since -= CLOCK_SLACK
        if until is not None:
            until += CLOCK_SLACK
        pushed = pushdown(predicate, lambda: task_names(store, MAX_PUSHED_NAMES))
        if pushed is None:
            self._answer(RangePage(generation, [], done=True))  # no stored task can match
            return
        states, names = pushed
        if len(states) * max(1, len(names)) > MAX_SPLIT:
            names = ()  # one sorted IN query would read every match: split by state only
        if states or names:
            self._range_filtered(store, generation, predicate,
                                 TaskFilter(states=states, names=names, since=since, until=until))
        else:
            self._range_walk(store, generation, predicate, since, until)

    def _page_answer(self, generation: int, predicate: Predicate,
                     tasks: Sequence[StoredTask | QueriedTask], more: bool,
                     counts: list[int]) -> bool:
        """Answer one page; counts = [matches, scanned]. True when the range is done."""
        counts[1] += len(tasks)
        hits = [(rec, _mark(t)) for t in tasks
                if self.index.get(t.record.uuid) is None and predicate(rec := _record(t))]
        counts[0] += len(hits)
        cut = counts[0] >= MAX_MATCHES or counts[1] >= MAX_SCANNED
        done = not more or cut
        if generation != self._generation:
            return True  # cancelled while the page was read
        self._answer(RangePage(generation, hits, done=done, cut=cut and more))
        return done

    def _range_walk(self, store: Store, generation: int, predicate: Predicate,
                    since: float | None, until: float | None) -> None:
        """No state or name to select by: one backward walk of the time index."""
        from lazycelery.store.reader import task_page

        cursor: float | None = None
        counts = [0, 0]
        while generation == self._generation and not self._stop.is_set():
            page = task_page(store, since, until, cursor)
            if self._page_answer(generation, predicate, page.tasks, page.cursor is not None,
                                 counts):
                return
            cursor = page.cursor

    def _range_filtered(self, store: Store, generation: int, predicate: Predicate,
                        flt: TaskFilter) -> None:
        """The store selects the states / names (one index range per pair); the predicate
        still decides (its other terms, and ``last_seen`` against the exact bounds)."""
        from lazycelery.store.query import page
        from lazycelery.store.reader import PAGE

        before: tuple[float, int] | None = None
        counts = [0, 0]
        while generation == self._generation and not self._stop.is_set():
            found = page(store, flt, before, PAGE)
            if self._page_answer(generation, predicate, found.tasks, found.next is not None,
                                 counts):
                return
            before = found.next
