"""Everything the HTTP handlers read: the index (one writer: the ingest thread), the ingest
status, the queue monitor's snapshot, the worker inspect cache, the counters for the metrics;
and the actions they run, audited with the API caller's name."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lazycelery.alerts.runner import AlertRunner
from lazycelery.broker.model import QueueSnapshot
from lazycelery.core.actions import Actions
from lazycelery.core.index import TaskIndex
from lazycelery.core.ingest_status import IngestStatus
from lazycelery.core.model import TaskRecord
from lazycelery.serve.admission import Admission
from lazycelery.serve.counters import FlowerCounters
from lazycelery.serve.live_errors import LiveErrors
from lazycelery.serve.v1.hub import StreamHub
from lazycelery.serve.workers import WorkerInfo

__all__ = ["Service"]


@dataclass
class Service:
    """The shared state of one ``serve``; attributes set at start, read by every request."""

    app: Any  # the celery app (-A, or a bare one for the broker)
    index: TaskIndex
    environment: str
    read_only: bool = False
    workers: WorkerInfo | None = None
    counters: FlowerCounters = field(default_factory=FlowerCounters)
    #: the ingest thread's status, read from the Ingestor once it exists
    ingest_status: Callable[[], IngestStatus | None] = lambda: None
    #: the ingest has been subscribed to the event stream at least once (``/healthcheck``)
    subscribed_once: bool = False
    #: the latest queue snapshot (the monitor thread swaps it whole)
    queues: Callable[[], QueueSnapshot | None] = lambda: None
    #: a queue snapshot read now (at most once a second), covering these queue names; None when
    #: the broker's queues cannot be read
    read_queues: Callable[[list[str]], QueueSnapshot] | None = None
    #: a task from the history store (``--store``), for ids no longer in memory; blocks
    stored_task: Callable[[str], TaskRecord | None] | None = None
    #: store writer figures (written, lost, pending) when ``--store`` records
    store_stats: Callable[[], Any] | None = None
    #: the default queue and the app's configured queues (Flower's fallback for queue lengths)
    known_queues: tuple[str, ...] = ()
    control_timeout: float = 1.0
    audit_path: Path | None = None
    #: writes each audit entry into the history store too (``--store``), after the file
    audit_sink: Callable[[Any], None] | None = None
    started: float = field(default_factory=time.time)
    #: the alert rules' thread (``GET /api/alerts``); None when no rule is configured
    alerts: AlertRunner | None = None
    #: the history store's URL (``--store``): /api/v1 reads tasks from it
    store_url: str | None = None
    #: the live stream's ring (/api/v1/stream), fed by the ingest thread's observer
    hub: StreamHub = field(default_factory=StreamHub)
    #: the environment's worker restart command (docs/fleet.md); None: restart answers 404
    restart_command: str | None = None
    #: requests in flight and shed (``--max-inflight``; the ingest's backlog goes first)
    admission: Admission = field(default_factory=Admission)
    #: the error groups kept live from memory (/api/v1/errors without a rebuild; made at the
    #: first such request)
    live_errors: LiveErrors | None = None
    #: bytes the ingest's reader holds ahead of the ingest thread (Redis fast path)
    read_ahead_bytes: Callable[[], int] = lambda: 0
    #: the ``[[policies.route]]`` rules (``policies.runtime.routing``): where a retry or a
    #: replay forwarded to serve goes, as a local one would; None: the task's own routing
    route: Callable[[str], str | None] | None = None
    #: a broker inspector of its own for a queue action (purge, move, requeue-dead), with the
    #: environment's management URL and dead-letter naming; None: from the app's broker URL
    open_inspector: Callable[[Sequence[str]], Any] | None = None

    def __post_init__(self) -> None:
        if self.workers is None:
            self.workers = WorkerInfo(self.app, self.index, self.control_timeout)
        if self.live_errors is None:
            self.live_errors = LiveErrors(self.index)

    def actions(self, user: str) -> Actions:
        """Actions for one API caller: read-only refuses, every one is audited as ``user``."""
        actions = Actions(self.app, read_only=self.read_only, environment=self.environment,
                          index=self.index, timeout=self.control_timeout,
                          audit_path=self.audit_path, audit_sink=self.audit_sink, user=user)
        actions.route = self.route
        return actions
