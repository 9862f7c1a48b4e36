"""Keeps the embedded broker's folder small: removes message files nobody will read."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Collection
from pathlib import Path

__all__ = ["Janitor", "queue_of", "sweep"]


def queue_of(filename: str) -> str | None:
    """The queue a message file belongs to (``<ms>_<uuid>.<queue>.msg``), else None."""
    if not filename.endswith(".msg"):
        return None
    _, dot, rest = filename.partition(".")
    return rest[: -len(".msg")] if dot and len(rest) > len(".msg") else None


def sweep(folder: Path, keep_queues: Collection[str], max_age: float,
          now: float | None = None) -> int:
    """Delete message files older than ``max_age`` seconds except those of ``keep_queues``;
    returns how many were deleted (files taken by a consumer meanwhile are skipped).

    kombu's filesystem transport has no message TTL and no queue expiry. A consumer that dies
    without unbinding (a killed `lazycelery tail`, a crashed worker) leaves its event or
    remote-control queue bound, and every event is still written for it; the task queues
    (``keep_queues``) are never touched.
    """
    cutoff = (time.time() if now is None else now) - max_age
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return 0
    for entry in entries:
        queue = queue_of(entry.name)
        if queue is None or queue in keep_queues:
            continue
        with contextlib.suppress(FileNotFoundError):
            if entry.stat().st_mtime < cutoff:
                os.unlink(entry.path)
                removed += 1
    return removed


class Janitor:
    """Runs ``sweep`` every ``interval`` seconds in a daemon thread until ``stop``."""

    def __init__(self, folder: Path, keep_queues: Collection[str], *, max_age: float = 60.0,
                 interval: float = 10.0) -> None:
        self.folder = folder
        self.keep_queues = frozenset(keep_queues)
        self.max_age = max_age
        self.interval = interval
        self.removed = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Janitor:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="lazycelery-demo-janitor",
                                            daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(OSError):
                self.removed += sweep(self.folder, self.keep_queues, self.max_age)
