"""Queue figures for the API and the metrics: one broker inspector behind a lock, read again
when a snapshot is over a second old (``/api/queues/length``) and every ``interval`` seconds by
its own thread (``/metrics`` reads the latest)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from lazycelery.broker.inspector import BrokerInspector
from lazycelery.broker.model import QueueSnapshot
from lazycelery.urls import error_line

__all__ = ["QueueReader"]

#: a snapshot this recent is answered as is
FRESH = 1.0


class QueueReader:
    def __init__(self, inspector: BrokerInspector, interval: float = 5.0) -> None:
        self.inspector = inspector
        self.interval = interval
        self._lock = threading.Lock()
        self._watched: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.latest: QueueSnapshot | None = None

    def read(self, names: Iterable[str] = (), max_age: float = FRESH) -> QueueSnapshot:
        with self._lock:
            new = set(names) - self._watched
            if new:
                self._watched |= new
                self.inspector.watch_queues(sorted(self._watched))
            latest = self.latest
            if latest is not None and not new and time.time() - latest.taken_at <= max_age:
                return latest
            try:
                snapshot = self.inspector.snapshot()
            except Exception as exc:
                failed = QueueSnapshot(taken_at=time.time(), queues=(), source=self.inspector.source,
                                       error=error_line(exc), stale=True)
                snapshot = failed if latest is None else QueueSnapshot(
                    taken_at=latest.taken_at, queues=latest.queues, source=latest.source,
                    error=error_line(exc), stale=True)
            self.latest = snapshot
            return snapshot

    def start(self) -> QueueReader:
        self._thread = threading.Thread(target=self._run, name="lazycelery-serve-queues",
                                        daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0 if self.latest is None else self.interval):
            self.read(max_age=0.0)

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.inspector.close()
