"""Queue depths from a ``lazycelery serve`` (``/api/v1/queues``) for a remote dashboard: the
server's snapshot, read every ``interval`` seconds by a thread of its own and swapped in whole
(the dashboard's queue monitor interface). httpx is imported when the thread starts."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import msgspec

from lazycelery.broker.model import QueueSnapshot
from lazycelery.urls import error_line, mask_url

__all__ = ["RemoteQueues"]

Listener = Callable[[QueueSnapshot], None]


class RemoteQueues:
    def __init__(self, server: str, *, token: str | None = None, interval: float = 2.0,
                 verify: bool | str = True) -> None:
        self.server = server.rstrip("/")
        self.token = token
        self.interval = interval
        self.verify = verify
        self.snapshot = QueueSnapshot(taken_at=0.0, queues=(), source=mask_url(self.server))
        self._listeners: list[Listener] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def on_update(self, callback: Listener) -> Callable[[], None]:
        self._listeners = [*self._listeners, callback]

        def unsubscribe() -> None:
            self._listeners = [cb for cb in self._listeners if cb is not callback]

        return unsubscribe

    def start(self) -> RemoteQueues:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="lazycelery-remote-queues",
                                            daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        with httpx.Client(base_url=self.server, headers=headers, verify=self.verify,
                          timeout=10.0) as client:
            while not self._stop.is_set():
                self._publish(self._read(client))
                self._stop.wait(self.interval)

    def _read(self, client: Any) -> QueueSnapshot:
        try:
            response = client.get("/api/v1/queues")
            if response.status_code == 200:
                body = response.json()
                for queue in body.get("queues", ()):
                    prio = queue.get("by_priority")
                    if prio:
                        queue["by_priority"] = {int(k): v for k, v in prio.items()}
                return msgspec.convert(body, QueueSnapshot)
            error = f"the server answered {response.status_code}"
        except Exception as exc:
            error = error_line(exc, limit=200)
        return msgspec.structs.replace(self.snapshot, error=error, stale=True,
                                       taken_at=self.snapshot.taken_at or time.time())

    def _publish(self, snapshot: QueueSnapshot) -> None:
        self.snapshot = snapshot
        for listener in self._listeners:
            try:
                listener(snapshot)
            except Exception:  # a listener's bug never stops the reads
                continue
