"""What the dashboard's two store readers share (the task history, ``history.py``, and the
errors pane's replay, ``errors_history.py``): a daemon thread of its own that opens the store
read-only, does its work, and closes it; ``stop`` interrupts a running query. A store that
cannot be opened turns the reader off with one line; the default store that does not exist yet
(nothing recorded) turns it off silently."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from lazycelery.urls import error_line

if TYPE_CHECKING:
    from lazycelery.store import Store

__all__ = ["StoreThread"]

log = logging.getLogger(__name__)


class StoreThread:
    """The thread and the store's life; a subclass says what to do with the open store
    (``_work``), what a failure mid-way means (``_broke``) and how it is turned off
    (``_failed``). ``state`` and ``status`` are swapped whole (the UI thread reads them)."""

    #: the thread's name
    THREAD = "lazycelery-store"

    def __init__(self, url: str, *, on_change: Callable[[], None], quiet_missing: bool,
                 opener: Callable[[str], Store] | None) -> None:
        from lazycelery.store import mask_store_url

        self.url = url
        self.masked = mask_store_url(url)
        self.on_change = on_change
        #: the default store that does not exist yet is not worth a line (nothing recorded)
        self.quiet_missing = quiet_missing
        self._opener = opener
        self.state = ""
        self.status = ""
        self._store: Store | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.THREAD, daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._stopping()
        store = self._store
        if store is not None:
            try:
                store.interrupt()
            except Exception:
                log.debug("interrupting %s failed", self.THREAD, exc_info=True)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    # ------------------------------------------------------------------ for the subclass

    def _stopping(self) -> None:
        """Called by ``stop`` before the store is interrupted (wake the thread up)."""

    def _failed(self, why: str) -> None:
        """The store could not be opened: turn off with ``why``."""
        raise NotImplementedError

    def _work(self, store: Store) -> None:
        raise NotImplementedError

    def _broke(self, store: Store, exc: Exception) -> None:
        """``_work`` raised ``exc`` (not while stopping)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ the thread

    def _end(self, state: str, status: str) -> None:
        self.state, self.status = state, status
        self.on_change()

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
            self._failed(str(exc))
        except Exception as exc:
            self._failed(f"store {self.masked}: {error_line(exc, limit=200)}")
        return None

    def _run(self) -> None:
        store = self._store = self._open()
        if store is None:
            return
        try:
            self._work(store)
        except Exception as exc:
            if not self._stop.is_set():
                self._broke(store, exc)
        finally:
            self._store = None
            try:
                store.close()
            except Exception:
                log.debug("closing the store of %s failed", self.THREAD, exc_info=True)
