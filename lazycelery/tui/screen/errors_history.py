"""The errors pane's history: a thread of its own that opens the store and replays the stored
failures of the last ``WINDOW`` seconds before the dashboard started into the live error
groups (their counts per minute and hour then hold the store's too), each failure marked as
from history. The UI never waits on the database: the groups take the replay in small batches
under their own lock, as they take live batches, and the pane re-ranks when they change.

The stored events are named from a private index of the replayed tasks (a failure event
carries no task name), never from the dashboard's index, which has one writer."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from lazycelery.core.index import TaskIndex
from lazycelery.text import counted, number
from lazycelery.urls import error_line

if TYPE_CHECKING:
    from lazycelery.analysis import ErrorGroups
    from lazycelery.store import Store

__all__ = ["BATCH", "MAX_TASKS", "WINDOW", "ErrorsHistory"]

log = logging.getLogger(__name__)

#: how far back the dashboard reads stored failures (seconds): the minute counts keep a day
WINDOW: Final = 86_400.0
#: events per batch handed to the groups (each batch holds their lock briefly)
BATCH: Final = 500
#: tasks the private index keeps to name failure events (the task-received of a failure
#: comes before it, usually by far less than this many tasks)
MAX_TASKS: Final = 200_000


class ErrorsHistory:
    """Replays the store's failures into ``groups`` once, on a thread; ``status`` says how far
    it got (one line for the pane's title)."""

    def __init__(self, url: str, groups: ErrorGroups, *, window: float = WINDOW,
                 until: float | None = None, quiet_missing: bool = False,
                 on_change: Callable[[], None] = lambda: None,
                 opener: Callable[[str], Store] | None = None) -> None:
        from lazycelery.store import mask_store_url

        self.url = url
        self.masked = mask_store_url(url)
        self.groups = groups
        self.window = window
        self.until = until
        self.quiet_missing = quiet_missing
        self.on_change = on_change
        self._opener = opener
        #: loading / done / off
        self.state = "loading"
        self.status = "history: loading failures…"
        #: stored failures replayed so far
        self.failures = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._store: Store | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="lazycelery-errors-history",
                                            daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        store = self._store
        if store is not None:
            try:
                store.interrupt()
            except Exception:
                log.debug("interrupting the errors history failed", exc_info=True)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the replay to end (tests); whether it did."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.state != "loading"

    # ------------------------------------------------------------------ the thread

    def _open(self) -> Store | None:
        from lazycelery.store import StoreError, open_store

        try:
            if self._opener is not None:
                return self._opener(self.url)
            return open_store(self.url, create=False, writer=False)
        except StoreError as exc:
            if self.quiet_missing and "no such file" in str(exc):
                self._end("off", "")
                return None
            self._end("off", f"history: {exc}")
        except Exception as exc:
            self._end("off", f"history: store {self.masked}: {error_line(exc, limit=200)}")
        return None

    def _end(self, state: str, status: str) -> None:
        self.state, self.status = state, status
        self.on_change()

    def _run(self) -> None:
        store = self._store = self._open()
        if store is None:
            return
        try:
            self._replay(store)
        except Exception as exc:  # a database error mid-way: what was read stays
            if not self._stop.is_set():
                self._end("off", f"history: {counted(self.failures, 'failure')} read, then "
                                 f"{error_line(exc, limit=200)}")
        finally:
            self._store = None
            try:
                store.close()
            except Exception:
                log.debug("closing the errors history store failed", exc_info=True)

    def _replay(self, store: Store) -> None:
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
