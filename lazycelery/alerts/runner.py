"""The alert thread beside the ingest (``serve``, ``record``): the ingest thread only copies
the records the rules read into a bounded queue and never waits (a full queue is counted as
lost); this thread feeds the evaluator, ticks it every ``interval`` seconds, and publishes
the rules' state (``state-ENV.json``; ``firing()`` for the HTTP API and the dashboard)."""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import msgspec

from lazycelery.alerts.engine import Evaluator
from lazycelery.alerts.files import state_path, write_json
from lazycelery.alerts.state import FIRING
from lazycelery.broker.model import QueueSnapshot
from lazycelery.core.ingest_status import IngestStatus
from lazycelery.core.model import TaskRecord, WorkerRecord
from lazycelery.errors import ConfigError
from lazycelery.urls import error_line

__all__ = ["AlertRunner"]

log = logging.getLogger(__name__)

#: batches waiting for the alert thread, at most (a batch is at most 512 events)
MAX_BATCHES: Final = 4096
#: the state file is written when something changed, and at least this often
PUBLISH_EVERY: Final = 10.0

Batch = tuple[float, list[Mapping[str, Any]], list[TaskRecord | WorkerRecord]]


class AlertRunner:
    def __init__(self, evaluator: Evaluator, *, interval: float = 1.0,
                 directory: Path | None = None,
                 queues: Callable[[], QueueSnapshot | None] | None = None,
                 clock: Callable[[], float] = time.time, max_batches: int = MAX_BATCHES) -> None:
        self.evaluator = evaluator
        self.interval = interval
        self.directory = directory
        self.queues = queues
        self.clock = clock
        self._wanted = evaluator.wanted
        self._workers = any(rule.kind == "worker_offline" for rule in evaluator.rules)
        self._batches: queue.Queue[Batch] = queue.Queue(maxsize=max_batches)
        self._statuses: collections.deque[tuple[float, IngestStatus]] = collections.deque(
            maxlen=256)
        self._snapshot: QueueSnapshot | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._published: dict[str, Any] = {"updated": None, "rules": []}
        self._written: tuple[Any, float] | None = None
        #: events whose copies could not be queued (the alert thread fell behind)
        self.lost = 0
        self._unwritable = False

    # -- the ingest thread: copies only, never waits ---------------------------------------

    def on_batch(self, events: Sequence[Mapping[str, Any]],
                 records: Sequence[TaskRecord | WorkerRecord | None]) -> None:
        wanted, workers = self._wanted, self._workers
        picked: list[Mapping[str, Any]] = []
        copies: list[TaskRecord | WorkerRecord] = []
        replace = msgspec.structs.replace
        for event, rec in zip(events, records, strict=False):
            if rec is None:
                continue
            kind = event.get("type")
            if kind in wanted or (workers and rec.__class__ is WorkerRecord):
                picked.append(event)
                copies.append(replace(rec))
        if picked:
            try:
                self._batches.put_nowait((self.clock(), picked, copies))
            except queue.Full:
                self.lost += len(picked)

    def on_status(self, status: IngestStatus) -> None:
        self._statuses.append((self.clock(), status))

    def on_queues(self, snapshot: QueueSnapshot) -> None:
        """A queue monitor's listener (its own thread): the snapshot is swapped in whole."""
        self._snapshot = snapshot

    # -- the alert thread --------------------------------------------------------------------

    def start(self) -> AlertRunner:
        self._publish(self.clock())  # the rules are listed (state ok) from the start
        self._written = None  # ... and written again with what the first tick found
        self._thread = threading.Thread(target=self._run, name="lazycelery-alerts", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.step()
            except Exception as exc:  # a rule must never stop the others, nor the ingest
                log.warning("alert evaluation failed: %s", error_line(exc, limit=300))

    def step(self, now: float | None = None) -> None:
        """Feed what arrived, tick once, publish (the thread's loop; tests call it)."""
        evaluator = self.evaluator
        while True:
            try:
                at, events, copies = self._batches.get_nowait()
            except queue.Empty:
                break
            evaluator.feed(events, copies, at)
        while self._statuses:
            at, status = self._statuses.popleft()
            evaluator.on_status(status, at)
        snapshot = self.queues() if self.queues is not None else self._snapshot
        if snapshot is not None:
            evaluator.on_queues(snapshot)
        now = self.clock() if now is None else now
        evaluator.tick(now)
        self._publish(now)

    def _publish(self, now: float) -> None:
        rules = self.evaluator.snapshot(now)
        self._published = {"updated": now, "rules": rules}  # swapped whole
        if self.directory is None:
            return
        compared = [{k: v for k, v in r.items() if k not in ("value", "summary", "tasks")}
                    for r in rules]
        if self._written is not None and self._written[0] == compared \
                and now - self._written[1] < PUBLISH_EVERY:
            return
        data = {"version": 1, "updated": now, "pid": _pid(), "lost": self.lost,
                "environment": self.evaluator.environment, "rules": rules}
        try:
            write_json(state_path(self.directory, self.evaluator.environment), data)
        except ConfigError as exc:
            if not self._unwritable:  # said once, not every second
                log.warning("alert state not written: %s", error_line(exc, limit=300))
            self._unwritable = True
            return
        self._written = (compared, now)

    # -- readers (any thread) ----------------------------------------------------------------

    def rules(self) -> list[dict[str, Any]]:
        rules: list[dict[str, Any]] = self._published["rules"]
        return rules

    def firing(self) -> list[dict[str, Any]]:
        return [r for r in self.rules() if r["state"] == FIRING]


def _pid() -> int:
    import os

    return os.getpid()
