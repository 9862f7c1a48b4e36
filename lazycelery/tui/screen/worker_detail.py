"""The worker detail's model: which worker is shown, its last fetched detail or the one-line
error, the fetch running in a background thread (never on the UI thread), the refresh throttle
and the scroll offset. The lines are made by the worker detail pane."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Final

from lazycelery.core.worker_detail import WorkerDetail

__all__ = ["MIN_INTERVAL", "WorkerDetailModel"]

#: at most one fetch per worker this often (each is 7 inspect round trips to that worker)
MIN_INTERVAL: Final = 3.0


class WorkerDetailModel:
    """State of the worker detail; ``fetcher`` (set by the pane) asks the worker."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        #: hostname -> its detail, run in a worker thread (set by the pane when mounted)
        self.fetcher: Callable[[str], WorkerDetail] | None = None
        #: called from the fetch thread when a result (or error) arrived
        self.on_done: Callable[[], None] = lambda: None
        self.hostname: str | None = None
        self.detail: WorkerDetail | None = None
        self.error: str | None = None
        self.top = 0
        self._lock = threading.Lock()
        self._fetching = False
        self._last = float("-inf")
        self._thread: threading.Thread | None = None

    @property
    def fetching(self) -> bool:
        return self._fetching

    def show(self, hostname: str) -> None:
        """Open ``hostname`` (a new worker starts empty) and fetch it."""
        if hostname != self.hostname:
            with self._lock:
                self.hostname, self.detail, self.error, self.top = hostname, None, None, 0
                self._last = float("-inf")
        self.refresh()

    def refresh(self) -> str | None:
        """Start a fetch; returns why it did not start (None: started)."""
        with self._lock:
            host = self.hostname
            if host is None or self.fetcher is None:
                return "no worker selected"
            if self._fetching:
                return "already fetching"
            wait = self._last + MIN_INTERVAL - self.clock()
            if wait > 0:
                return f"refreshed just now: again in {wait:.0f}s"
            self._fetching, self._last = True, self.clock()
            fetcher = self.fetcher
        thread = threading.Thread(target=self._fetch, args=(fetcher, host), daemon=True,
                                  name=f"lazycelery-worker-detail-{host}")
        self._thread = thread
        thread.start()
        return None

    def _fetch(self, fetcher: Callable[[str], WorkerDetail], host: str) -> None:
        detail: WorkerDetail | None = None
        error: str | None = None
        try:
            detail = fetcher(host)
        except Exception as exc:  # one line in the pane, never a traceback
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            error = text
        with self._lock:
            self._fetching = False
            other = host != self.hostname  # another worker was opened meanwhile
            if not other:
                if detail is not None:
                    self.detail, self.error = detail, None
                else:
                    self.error = error
        if other:
            self.refresh()  # its own fetch (its throttle was reset when it was opened)
        self.on_done()

    def wait(self, timeout: float = 10.0) -> None:
        """Wait for the running fetch (tests)."""
        deadline = time.monotonic() + timeout
        while (thread := self._thread) is not None and thread.is_alive():
            thread.join(max(0.0, deadline - time.monotonic()))
            if time.monotonic() >= deadline:
                return

