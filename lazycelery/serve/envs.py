"""One ``serve`` over several environments (``--env a --env b``, ``--all-envs``): per
environment a ``Service`` (the Flower API's state) over the ``EnvWatch``'s index and ingest
thread (``core.envs``), a queue reader for ``/api/queues/length`` and ``/metrics``, and the
rows of ``GET /api/envs``.

The ingest threads are ``core.envs``' own (one per environment, the masking of each
environment's settings), so ``serve`` watches several clusters exactly as the dashboard and
``tail`` do. An environment that cannot be set up has no Service: requests for it answer 503
with its one-line reason, and the others answer as usual.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from lazycelery.core.actions import environment_label
from lazycelery.core.env_status import EnvStatus
from lazycelery.core.envs import EnvSet, EnvWatch
from lazycelery.core.index import TaskIndex
from lazycelery.core.ingest_status import IngestStatus
from lazycelery.core.model import TaskRecord, WorkerRecord
from lazycelery.errors import LazyCeleryError
from lazycelery.policies.runtime import routing
from lazycelery.serve.admission import DEFAULT_MAX_INFLIGHT, Admission
from lazycelery.serve.runtime import Observer, inspector_opener, known_queues, store_lookup
from lazycelery.serve.service import Service
from lazycelery.serve.v1.hub import StreamHub
from lazycelery.urls import error_line

if TYPE_CHECKING:
    from lazycelery.serve.queues import QueueReader

__all__ = ["EnvServices"]

Say = Callable[[str], None]


class EnvServices:
    """The Services of one multi-environment ``serve``, by environment name, in the order
    asked for (the first one answers requests without ``env``)."""

    def __init__(self, envs: EnvSet, *, queue_interval: float = 5.0,
                 say: Say | None = None, max_inflight: int = DEFAULT_MAX_INFLIGHT,
                 stream_buffer: int | None = None, live_errors: bool = True) -> None:
        self.envs = envs
        self.services: dict[str, Service] = {}
        self.observers: dict[str, Observer] = {}
        self.readers: dict[str, QueueReader] = {}
        #: one admission for the whole process (``--max-inflight``): the environments share
        #: its threads and its GIL, so every request counts against one limit, and GETs yield
        #: while any environment's ingest is behind its broker
        self.admission = Admission(max_inflight, behind=self._behind)
        self._stream_buffer = stream_buffer
        #: keep each environment's error groups live (``--no-live-errors``: rebuild per request)
        self._live_errors = live_errors
        self._queue_interval = queue_interval
        self._say = say or (lambda text: None)

    def _behind(self) -> float:
        """Seconds the most-behind ingest has been behind its broker (0: all keep up)."""
        worst = 0.0
        for name in self.services:
            ingestor = self.envs[name].ingestor
            backlog = getattr(ingestor, "backlog", None)
            if backlog is not None:
                worst = max(worst, backlog.behind())
        return worst

    @property
    def names(self) -> list[str]:
        return self.envs.names

    @property
    def default(self) -> str:
        return self.envs.names[0]

    def why(self, name: str) -> str | None:
        """Why environment ``name`` has no Service (None when it has one)."""
        if name in self.services:
            return None
        return self.envs[name].error or "not set up"

    # ------------------------------------------------------------------ wiring

    def build(self) -> None:
        """A Service and a queue reader per environment that can have one, then the ingest
        threads (not started). What fails stays that environment's ``error``."""
        for watch in self.envs.watches:
            self._service(watch)
        self.envs.build(self._on_batch, self._on_status, monitor=False,
                        on_notice=lambda env, line: self._say(f"{env}: {line}"))
        for name, service in list(self.services.items()):
            watch = self.envs[name]
            if watch.ingestor is None:  # its reader could not be made: no Service either
                self._drop(name)
                continue
            ingestor = watch.ingestor
            service.ingest_status = lambda ingestor=ingestor: ingestor.status  # type: ignore[misc]
            backlog = getattr(ingestor, "backlog", None)
            if backlog is not None:  # its live streams pause while its ingest is behind
                service.hub.behind = backlog.behind
                if service.live_errors is not None:  # its error groups' follower waits too
                    service.live_errors.behind = backlog.behind
            read_ahead = getattr(ingestor, "read_ahead_bytes", None)
            if read_ahead is not None:
                service.read_ahead_bytes = read_ahead

    def _service(self, watch: EnvWatch) -> None:
        settings = watch.settings
        if settings is None or watch.error is not None:
            return
        try:
            app = settings.celery_app()
            route = routing(settings)  # [[policies.route]]: forwarded retries go there too
        except (LazyCeleryError, ValueError, ImportError) as exc:
            watch.error = error_line(exc)
            return
        queues = known_queues(app, settings)
        service = Service(app=app, index=watch.index, environment=environment_label(settings),
                          read_only=settings.read_only, known_queues=queues,
                          admission=self.admission, route=route,
                          open_inspector=inspector_opener(settings))
        if self._stream_buffer is not None:
            service.hub = StreamHub(self._stream_buffer)
        if settings.store_url:  # ids no longer in memory, from this environment's store
            service.stored_task = store_lookup(settings.store_url)
            service.store_url = settings.store_url  # /api/tasks?store=true, /api/v1 read it
        reader = self._reader(watch)
        if reader is not None:
            service.queues = lambda reader=reader: reader.latest  # type: ignore[misc]
            service.read_queues = reader.read
            self.readers[watch.name] = reader
        if service.live_errors is not None:  # followed on its thread from the first request
            service.live_errors.background = True
            service.live_errors.enabled = self._live_errors
        self.services[watch.name] = service
        self.observers[watch.name] = Observer(service)

    def _reader(self, watch: EnvWatch) -> QueueReader | None:
        """The queue reader of one environment, watching its configured queues from the start
        (``/api/envs`` and ``/metrics`` show their depth before any ``/api/queues/length``),
        as a one-environment serve does: its app's queues and its ``queues``, not the
        ``celery`` default of the bare app an environment without ``app`` gets (a queue
        nothing declared: ``/metrics`` showed it, ``/api/queues/length`` did not). The queues
        its workers consume are found on the broker and added when asked for."""
        from lazycelery.broker import open_inspector
        from lazycelery.serve.queues import QueueReader

        s = watch.settings
        assert s is not None
        try:
            inspector = open_inspector(s.broker_url, s.transport_options, s.queues,
                                       management_url=s.management_url, ssl_options=s.broker_ssl())
        except Exception as exc:  # the queues of this environment only; its tasks still show
            watch.queue_note = error_line(exc)
            self._say(f"{watch.name}: queue lengths off: {watch.queue_note}")
            return None
        return QueueReader(inspector, interval=max(0.5, self._queue_interval))

    def _drop(self, name: str) -> None:
        service = self.services.pop(name, None)
        if service is not None and service.live_errors is not None:
            service.live_errors.stop()
        self.observers.pop(name, None)
        reader = self.readers.pop(name, None)
        if reader is not None:
            reader.inspector.close()

    def _on_batch(self, env: str, events: Sequence[Mapping[str, Any]],
                  touched: Sequence[TaskRecord | WorkerRecord | None]) -> None:
        observer = self.observers.get(env)
        if observer is not None:
            observer.on_batch(events, touched)

    def _on_status(self, env: str, status: IngestStatus) -> None:
        observer = self.observers.get(env)
        if observer is not None:
            observer.on_status(status)

    def start(self) -> None:
        for reader in self.readers.values():
            reader.start()
        self.envs.start()

    def stop(self, timeout: float = 2.0) -> None:
        self.envs.stop(timeout)
        for reader in self.readers.values():
            reader.stop(timeout)
        for service in self.services.values():
            if service.live_errors is not None:
                service.live_errors.stop(timeout)

    # ------------------------------------------------------------------ GET /api/envs

    def statuses(self) -> list[EnvStatus]:
        """The cluster view's rows, the queue figures taken from serve's own queue readers
        (the EnvWatch has no queue monitor here: one reader per environment is enough)."""
        rows = []
        for status in self.envs.statuses():
            reader = self.readers.get(status.name)
            rows.append(status if reader is None else _with_queues(status, reader))
        return rows

    def index_of(self, name: str) -> TaskIndex:
        return self.envs[name].index


def _with_queues(status: EnvStatus, reader: QueueReader) -> EnvStatus:
    snap = reader.latest
    if snap is None:
        return status
    ready = [q.ready for q in snap.queues if q.ready is not None]
    ages = [q.oldest_age_s for q in snap.queues if q.oldest_age_s is not None]
    return dataclasses.replace(
        status, queue_depth=sum(ready) if ready else None,
        oldest_age_s=max(ages) if ages else None,
        queue_note=snap.error if snap.stale else None)
