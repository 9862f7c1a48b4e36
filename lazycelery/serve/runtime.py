"""Wiring one ``serve``: the Service the handlers read, fed by the ingest thread through an
observer (counters for the metrics, the ingest status, the store writer's figures)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from lazycelery.core.actions import environment_label
from lazycelery.core.index import TaskIndex
from lazycelery.core.ingest import Ingestor
from lazycelery.core.ingest_status import CONNECTED, IngestStatus
from lazycelery.core.model import TaskRecord, WorkerRecord
from lazycelery.policies.runtime import routing
from lazycelery.serve.service import Service

if TYPE_CHECKING:
    from lazycelery.config import Settings
    from lazycelery.serve.queues import QueueReader

__all__ = ["Observer", "inspector_opener", "make_service", "plain_ingestor"]


class Observer:
    """What the ingest thread tells the Service (the ``Recorder`` takes one too)."""

    def __init__(self, service: Service) -> None:
        self.service = service
        #: without a store, serve reconciles unfinished tasks after a gap itself
        self.reconciler: Any = None

    def on_batch(self, events: Sequence[Mapping[str, Any]],
                 records: Sequence[TaskRecord | WorkerRecord | None]) -> None:
        self.service.counters.on_batch(events, records)
        if self.service.alerts is not None:
            self.service.alerts.on_batch(events, records)  # copies only; never waits
        self.service.hub.publish(events, records, self.service.index.lock)
        if self.service.live_errors is not None:
            self.service.live_errors.notify()  # sets a flag: the follower reads the index

    def on_status(self, status: IngestStatus) -> None:
        if status.state == CONNECTED:
            self.service.subscribed_once = True
        self.service.counters.on_status(status)
        if self.service.alerts is not None:
            self.service.alerts.on_status(status)
        self.service.hub.publish_status(status)
        if self.reconciler is not None:
            self.reconciler.on_ingest_status(status)

    def attach(self, ingestor: Ingestor, writer: Any = None) -> None:
        self.service.ingest_status = lambda: ingestor.status
        # requests and streams yield to the ingest while it is behind its broker
        self.service.admission.behind = self.service.hub.behind = ingestor.backlog.behind
        if self.service.live_errors is not None:  # its follower too
            self.service.live_errors.behind = ingestor.backlog.behind
        self.service.read_ahead_bytes = ingestor.read_ahead_bytes
        if writer is not None:
            self.service.store_stats = writer.stats


def known_queues(app: Any, settings: Settings) -> tuple[str, ...]:
    names = {str(app.conf.task_default_queue or "celery"), *settings.queues}
    for queue in app.conf.task_queues or ():
        name = getattr(queue, "name", None)
        if name:
            names.add(str(name))
    return tuple(sorted(names))


def make_service(settings: Settings, queues: QueueReader | None, *,
                 read_only: bool) -> Service:
    from lazycelery.store.audit import store_sink

    app = settings.celery_app()
    service = Service(app=app, index=TaskIndex(max_tasks=settings.max_tasks),
                      environment=environment_label(settings), read_only=read_only,
                      known_queues=known_queues(app, settings),
                      audit_sink=store_sink(settings.store_url),
                      restart_command=settings.restart, route=routing(settings))
    service.open_inspector = inspector_opener(settings)
    if queues is not None:
        service.queues = lambda: queues.latest
        service.read_queues = queues.read
    return service


def inspector_opener(settings: Settings) -> Callable[[Sequence[str]], Any]:
    """A broker inspector for a queue action, as ``lazycelery queues`` opens one (the
    environment's management URL and ``[queues] dead_letter`` naming)."""
    def open_one(queues: Sequence[str]) -> Any:
        from lazycelery.broker import open_inspector

        return open_inspector(settings.broker_url, settings.transport_options,
                              (*settings.queues, *queues),
                              management_url=settings.management_url,
                              dead_letter=settings.dead_letter, ssl_options=settings.broker_ssl())

    return open_one


def store_lookup(url: str) -> Callable[[str], TaskRecord | None]:
    """A task by id from the history store, on a connection of its own per call (a request
    thread; only asked for ids no longer in memory). A store error answers "unknown"."""
    from lazycelery.store import open_store
    from lazycelery.store.errors import StoreError

    def lookup(uuid: str) -> TaskRecord | None:
        try:
            store = open_store(url, create=False, writer=False)
        except StoreError:
            return None
        try:
            found = store.get_task(uuid)
        except Exception:
            return None
        finally:
            store.close()
        return found[0] if found is not None else None

    return lookup


def plain_ingestor(settings: Settings, service: Service, observer: Observer, *,
                   masker: Any = None) -> Ingestor:
    """The ingest thread without a store (``--store`` goes through the Recorder instead), with
    reconciliation after a gap when the app has a result backend."""
    from lazycelery.core.reconcile import NoResultBackend, Reconciler, result_backend

    try:
        result_backend(service.app)
    except NoResultBackend:
        pass
    else:
        observer.reconciler = Reconciler(service.index, service.app)
        observer.reconciler.start()
    ingestor = Ingestor(settings.broker_url, service.index, mode=settings.ingest,
                        read_ahead=settings.read_ahead,
                        app=settings.celery_app() if settings.app_spec else None,
                        transport_options=settings.transport_options,
                        on_batch=observer.on_batch, on_status=observer.on_status,
                        masker=masker)
    observer.attach(ingestor)
    return ingestor
