"""The errors pane's history: a thread of its own that opens the store and replays the stored
failures of the last ``WINDOW`` seconds before the dashboard started into the live error
groups (their counts per minute and hour then hold the store's too), each failure marked as
from history. The UI never waits on the database: the groups take the replay in small batches
under their own lock, as they take live batches, and the pane re-ranks when they change.

The stored events are named from a private index of the replayed tasks (a failure event
carries no task name), never from the dashboard's index, which has one writer."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from lazycelery.core.index import TaskIndex
from lazycelery.text import counted, number
from lazycelery.tui.screen.store_thread import StoreThread
from lazycelery.urls import error_line

if TYPE_CHECKING:
    from lazycelery.analysis import ErrorGroups
    from lazycelery.store import Store

__all__ = ["BATCH", "MAX_TASKS", "WINDOW", "ErrorsHistory"]

#: how far back the dashboard reads stored failures (seconds): the minute counts keep a day
WINDOW: Final = 86_400.0
#: events per batch handed to the groups (each batch holds their lock briefly)
BATCH: Final = 500
#: tasks the private index keeps to name failure events (the task-received of a failure
#: comes before it, usually by far less than this many tasks)
MAX_TASKS: Final = 200_000


class ErrorsHistory(StoreThread):
    """Replays the store's failures into ``groups`` once, on a thread; ``status`` says how far
    it got (one line for the pane's title)."""

    THREAD = "lazycelery-errors-history"

    def __init__(self, url: str, groups: ErrorGroups, *, window: float = WINDOW,
                 until: float | None = None, quiet_missing: bool = False,
                 on_change: Callable[[], None] = lambda: None,
                 opener: Callable[[str], Store] | None = None) -> None:
        super().__init__(url, on_change=on_change, quiet_missing=quiet_missing, opener=opener)
        self.groups = groups
        self.window = window
        self.until = until
        #: loading / done / off
        self.state = "loading"
        self.status = "history: loading failures…"
        #: stored failures replayed so far
        self.failures = 0

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the replay to end (tests); whether it did."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.state != "loading"

    # ------------------------------------------------------------------ the thread

    def _failed(self, why: str) -> None:
        self._end("off", f"history: {why}")

    def _broke(self, store: Store, exc: Exception) -> None:
        # a database error mid-way: what was read stays
        self._end("off", f"history: {counted(self.failures, 'failure')} read, then "
                         f"{error_line(exc, limit=200)}")

    def _work(self, store: Store) -> None:
        from lazycelery.analysis.groups import FAILURE_EVENTS
        from lazycelery.store import StoredGap
        from lazycelery.store.history import history_events

        until = self.until if self.until is not None else time.time()
        index = TaskIndex(max_tasks=MAX_TASKS)
        chunk: list[dict[str, Any]] = []

        def flush() -> None:
            self.groups.observe_batch(chunk, index.apply_batch(chunk))
            chunk.clear()
            self.status = f"history: loading… {counted(self.failures, 'failure', short=True)}"
            self.on_change()

        for item in history_events(store, until - self.window, until):
            if self._stop.is_set():
                return
            if isinstance(item, StoredGap):
                continue
            if item.get("type") in FAILURE_EVENTS:
                self.failures += 1
            chunk.append(item)
            if len(chunk) >= BATCH:
                flush()
        if chunk:
            flush()
        self._end("done", f"{number(self.failures)} from history (last "
                          f"{self.window / 3600:g} h)")
