"""What ``/api/workers`` answers: each worker's ``inspect`` replies (stats, active_queues,
registered, conf; with one worker named also scheduled, active, reserved, revoked), as Flower
keeps them. Asked only of the workers the event stream shows online (``destination=[...]``,
never a broadcast), when one appears that was not asked yet, and on ``refresh``."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any, Final

from lazycelery.core.index import TaskIndex
from lazycelery.core.placement import online_workers
from lazycelery.urls import error_line

__all__ = ["WorkerInfo"]

METHODS: Final = ("stats", "active_queues", "registered", "conf")
#: a worker that did not answer is not asked again unprompted for this many seconds
RETRY_AFTER: Final = 30.0
TASK_METHODS: Final = ("scheduled", "active", "reserved", "revoked")


class WorkerInfo:
    """A cache of inspect replies by hostname; ``ask`` blocks (run it off the event loop)."""

    def __init__(self, app: Any, index: TaskIndex, timeout: float = 1.0) -> None:
        self.app = app
        self.index = index
        self.timeout = timeout
        self._lock = threading.Lock()
        self._ask_lock = threading.Lock()
        self._info: dict[str, dict[str, Any]] = {}
        self._asked: dict[str, float] = {}  # hostname -> monotonic time it was last asked

    def known(self, name: str) -> bool:
        with self._lock:
            if name in self._info:
                return True
        with self.index.lock:
            return name in self.index.workers

    def copy(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {name: dict(info) for name, info in self._info.items()}

    def unasked(self) -> list[str]:
        """Online workers with no answer yet, not asked within ``RETRY_AFTER`` seconds."""
        now = time.monotonic()
        online = online_workers(self.index)
        with self._lock:
            return [w for w in online if w not in self._info
                    and now - self._asked.get(w, -RETRY_AFTER) >= RETRY_AFTER]

    def ask(self, names: Sequence[str] | None = None, *, tasks: bool = False) -> str | None:
        """Inspect ``names`` (default: every online worker); None, or why it failed."""
        dest = list(dict.fromkeys(names if names is not None else online_workers(self.index)))
        if not dest:
            return None
        methods = METHODS + (TASK_METHODS if tasks else ())
        with self._lock:
            self._asked.update(dict.fromkeys(dest, time.monotonic()))
        with self._ask_lock:
            inspect = self.app.control.inspect(destination=dest, timeout=self.timeout)
            for method in methods:
                try:
                    replies = (getattr(inspect, method)(safe=True) if method == "active"
                               else getattr(inspect, method)())
                except Exception as exc:
                    return f"inspect {method} failed: {error_line(exc)}"
                self._store(method, replies)
        return None

    def _store(self, method: str, replies: Any) -> None:
        if not isinstance(replies, dict):
            return
        now = time.time()
        with self._lock:
            for worker, response in replies.items():
                if response is None or not isinstance(worker, str):
                    continue
                if method == "stats" and isinstance(response, dict):
                    broker = (response.get("consumer") or response).get("broker")
                    if isinstance(broker, dict):
                        broker.pop("alternates", None)
                info = self._info.setdefault(worker, {})
                info[method] = response
                info["timestamp"] = now

    def forget(self, name: str) -> None:
        with self._lock:
            self._info.pop(name, None)
