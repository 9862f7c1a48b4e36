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
from lazycelery.serve.runtime import Observer, inspector_opener, known_queues, store_lookup
from lazycelery.serve.service import Service
from lazycelery.urls import error_line

if TYPE_CHECKING:
    from lazycelery.serve.queues import QueueReader

__all__ = ["EnvServices"]

Say = Callable[[str], None]


class EnvServices:
    """The Services of one multi-environment ``serve``, by environment name, in the order
    asked for (the first one answers requests without ``env``)."""

    def __init__(self, envs: EnvSet, *, queue_interval: float = 5.0,
                 say: Say | None = None) -> None:
        self.envs = envs
        self.services: dict[str, Service] = {}
        self.observers: dict[str, Observer] = {}
        self.readers: dict[str, QueueReader] = {}
        self._queue_interval = queue_interval
        self._say = say or (lambda text: None)

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
                          route=route, open_inspector=inspector_opener(settings))
        if settings.store_url:  # ids no longer in memory, from this environment's store
            service.stored_task = store_lookup(settings.store_url)
            service.store_url = settings.store_url  # /api/tasks?store=true, /api/v1 read it
        reader = self._reader(watch, queues)
        if reader is not None:
            service.queues = lambda reader=reader: reader.latest  # type: ignore[misc]
            service.read_queues = reader.read
            self.readers[watch.name] = reader
        self.services[watch.name] = service
        self.observers[watch.name] = Observer(service)

    def _reader(self, watch: EnvWatch, queues: tuple[str, ...]) -> QueueReader | None:
        """The queue reader of one environment, watching its app's queues from the start
        (``/api/envs`` and ``/metrics`` show their depth before any ``/api/queues/length``)."""
        from lazycelery.broker import open_inspector
        from lazycelery.serve.queues import QueueReader

        s = watch.settings
        assert s is not None
        try:
            inspector = open_inspector(s.broker_url, s.transport_options, queues,
                                       management_url=s.management_url)
        except Exception as exc:  # the queues of this environment only; its tasks still show
            watch.queue_note = error_line(exc)
            self._say(f"{watch.name}: queue lengths off: {watch.queue_note}")
            return None
        return QueueReader(inspector, interval=max(0.5, self._queue_interval))

    def _drop(self, name: str) -> None:
        self.services.pop(name, None)
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
