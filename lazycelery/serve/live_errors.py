"""The error groups serve keeps live: an ``OutcomeWindow`` following the task index through
its change and eviction logs (``TaskIndex.changed_since`` / ``evicted_since``), which the
ingest thread writes anyway, so the ingest never waits for it. A helper thread follows
them after each batch; a request catches up first, so it answers what memory holds at that
moment, exactly as the rebuild from records would. When the logs no longer reach back (the
follower fell more than ``CHANGE_LOG`` changes behind) the window is made again from every
record, counted in ``resyncs``: never a stall of the ingest."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Final

from lazycelery.analysis.groups import ErrorGroups
from lazycelery.analysis.sources import outcome_of
from lazycelery.analysis.window import Outcome, OutcomeWindow
from lazycelery.core.index import TaskIndex
from lazycelery.core.model import TaskRecord
from lazycelery.serve.admission import BEHIND_AFTER

__all__ = ["LiveErrors"]

log = logging.getLogger(__name__)

#: records read per hold of the index lock
SLICE: Final = 5_000
#: seconds the follower waits for a batch before looking anyway
IDLE: Final = 1.0
#: seconds at least between two catch-ups of the follower: a busy ingest's changes are read
#: in bulk (a task's several events once), the ingest thread keeping the GIL meanwhile
INTERVAL: Final = 0.5


def _outcome(rec: TaskRecord) -> Outcome | None:
    found = outcome_of(rec)
    if found is None:
        return None
    kind, when = found
    return Outcome(when, kind, rec.uuid, rec.last_seen, rec.worker, rec.name, rec.queue,
                   rec.routing_key, rec.args, rec.exception, rec.traceback)


class _Activity:
    """Every followed task's last activity, by second: how many were active since a time
    (the window's ``tasks``) without reading every record."""

    def __init__(self) -> None:
        self._of: dict[str, float] = {}
        self._by_second: dict[int, set[str]] = {}

    def put(self, uuid: str, last_seen: float | None) -> None:
        old = self._of.get(uuid)
        if old == last_seen:
            return
        if old is not None:
            second = int(old // 1)
            bucket = self._by_second[second]
            bucket.discard(uuid)
            if not bucket:
                del self._by_second[second]
        if last_seen is None:
            self._of.pop(uuid, None)
            return
        self._of[uuid] = last_seen
        self._by_second.setdefault(int(last_seen // 1), set()).add(uuid)

    def clear(self) -> None:
        self._of.clear()
        self._by_second.clear()

    def since(self, since: float) -> int:
        edge = int(since // 1)
        seen = self._of
        n = sum(1 for u in self._by_second.get(edge, ()) if seen[u] >= since)
        return n + sum(len(b) for s, b in self._by_second.items() if s > edge)


class LiveErrors:
    """The index's outcomes, followed; ``groups(since)`` the window's error groups."""

    def __init__(self, index: TaskIndex) -> None:
        self.index = index
        self.window = OutcomeWindow()
        self.activity = _Activity()
        #: serialises following (the helper thread's and the requests')
        self._follow = threading.Lock()
        self._changes = -1  # -1: never read (a resync first)
        self._evicted = 0
        #: times the logs no longer reached back and every record was read again
        self.resyncs = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: follow on a helper thread from the first request on (serve's; tests catch up per
        #: request); off: every request rebuilds
        self.background = False
        self.enabled = True
        #: windows answered from the live groups, and left to the rebuild
        self.answered = 0
        self.declined = 0
        #: seconds the ingest has been behind its broker (serve sets it): the follower waits
        #: meanwhile, the change log keeps what it will read (or a counted resync)
        self.behind: Callable[[], float] = lambda: 0.0
        #: follower turns skipped because the ingest was behind
        self.yielded = 0

    # ------------------------------------------------------------------ following

    def catch_up(self) -> None:
        """Apply the index's changes since the last call (blocking; not on the ingest
        thread)."""
        with self._follow:
            index = self.index
            evicted_mark = index.evicted
            changes, changed = index.changed_since(self._changes) if self._changes >= 0 \
                else (index.changes, None)
            evicted = index.evicted_since(self._evicted)
            if changed is None or evicted is None:
                self._resync()
                return
            ids = list(dict.fromkeys([*evicted, *changed]))
            found: list[tuple[str, TaskRecord | None, Outcome | None]] = []
            for start in range(0, len(ids), SLICE):
                with index.lock:
                    for uuid in ids[start:start + SLICE]:
                        rec = index.get(uuid)
                        found.append((uuid, rec, _outcome(rec) if rec is not None else None))
            self._apply(found)
            self._changes, self._evicted = changes, evicted_mark

    def _apply(self, found: list[tuple[str, TaskRecord | None, Outcome | None]]) -> None:
        window, activity = self.window, self.activity
        with window.lock:
            for uuid, rec, outcome in found:
                activity.put(uuid, rec.last_seen if rec is not None else None)
                if outcome is None:
                    window.drop(uuid)
                else:
                    window.put(outcome)

    def _resync(self) -> None:
        """Every record read again (the marks taken first: a change after them comes again)."""
        index = self.index
        with index.lock:
            changes, evicted = index.changes, index.evicted
        if self._changes >= 0:
            self.resyncs += 1
        records = index.records()
        found: list[tuple[str, TaskRecord | None, Outcome | None]] = []
        for start in range(0, len(records), SLICE):
            with index.lock:
                found.extend((r.uuid, r, _outcome(r)) for r in records[start:start + SLICE]
                             if index.get(r.uuid) is r)
        with self.window.lock:
            self.window.clear()
            self.activity.clear()
        self._apply(found)
        self._changes, self._evicted = changes, evicted

    # ------------------------------------------------------------------ reading

    def groups(self, since: float) -> tuple[ErrorGroups, int] | None:
        """The error groups of ``[since, now)`` as memory holds them now, and how many tasks
        were active since then; None: rebuild."""
        if not self.enabled:
            return None
        if self.background and self._thread is None:
            self.start()
        self.catch_up()
        index = self.index
        with index.lock:
            versions = {h: w.sw_ver for h, w in index.workers.items()}
        with self.window.lock:
            found = self.window.groups(since, versions)
            tasks = self.activity.since(since)
        if found is None:
            self.declined += 1
            return None
        self.answered += 1
        return found, tasks

    # ------------------------------------------------------------------ the helper thread

    def notify(self) -> None:
        """A batch was applied (the ingest thread's call: sets a flag, nothing more)."""
        self._wake.set()

    def start(self) -> LiveErrors:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="lazycelery-live-errors",
                                        daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(IDLE)
            self._wake.clear()
            if self.behind() >= BEHIND_AFTER:
                # the ingest goes first: a request still catches up for itself
                self.yielded += 1
                self._stop.wait(INTERVAL)
                continue
            if not self._stop.is_set():
                try:
                    self.catch_up()
                except Exception:  # pragma: no cover - a bug: requests catch up themselves
                    log.exception("live error groups: following the index failed")
                self._stop.wait(INTERVAL)

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
