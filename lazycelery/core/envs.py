"""Several clusters in one process: per environment its own TaskIndex, ingest thread, queue
monitor and event rates (``EnvWatch``), and the set of them (``EnvSet``) with the cluster
view's rows and the search across every environment.

Why one TaskIndex per environment rather than one shared index with an env tag: each index has
one writer (its ingest thread) and one lock, so five busy clusters never queue behind one lock;
a busy cluster cannot evict a quiet one's tasks (eviction is LRU by activity, so in a shared
index production's traffic would push staging's failures out within seconds); a task id can
exist in two clusters (a replayed or copied message) without the two records merging; and
switching the dashboard to another environment is swapping which index is read, O(1). The
price: the memory budget ``max_tasks`` is split, each environment keeping its share
(``config_envs.share_of``), so the process holds at most ``max_tasks`` tasks in all.

One environment that is down or misconfigured never stops the others: each has its own
threads, and whatever fails while setting one up becomes that environment's one-line ``why``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from lazycelery.core.env_status import MISCONFIGURED, EnvStatus
from lazycelery.core.event_rates import EventRates
from lazycelery.core.index import TaskIndex
from lazycelery.core.ingest_status import CONNECTING, RECONNECTING, STOPPED, Gap, IngestStatus
from lazycelery.core.model import ONLINE, TaskRecord, WorkerRecord
from lazycelery.errors import LazyCeleryError
from lazycelery.urls import error_line

if TYPE_CHECKING:
    from lazycelery.broker.monitor import QueueMonitor
    from lazycelery.config import Settings
    from lazycelery.config_envs import EnvChoice
    from lazycelery.core.ingest import Ingestor

__all__ = ["FAILURE_WINDOW", "RATE_WINDOW", "EnvBatch", "EnvSet", "EnvWatch", "Found"]

#: seconds over which the cluster view's tasks/s is averaged
RATE_WINDOW: Final = 10
#: seconds over which its failure rate is counted
FAILURE_WINDOW: Final = 300

#: ``on_batch(env, events, touched)``: a batch of one environment, on its ingest thread
EnvBatch = Callable[[str, Sequence[Mapping[str, Any]], Sequence[TaskRecord | WorkerRecord | None]],
                    None]
EnvStatusCallback = Callable[[str, IngestStatus], None]
IndexFactory = Callable[[int, Callable[[], float]], TaskIndex]


@dataclass(frozen=True)
class Found:
    """A task found by a search across environments, and where."""

    env: str
    task: TaskRecord


class EnvWatch:
    """One environment: its index, ingest thread, queue monitor and rates. Built from an
    ``EnvChoice``; one whose settings or reader cannot be made keeps ``error`` and no thread."""

    def __init__(self, name: str, settings: Settings | None, *, error: str | None = None,
                 color: str | None = None, max_tasks: int | None = None,
                 clock: Callable[[], float] = time.time,
                 index_factory: IndexFactory = TaskIndex) -> None:
        self.name = name
        self.settings = settings
        self.color = color
        self.error = error
        self.index = index_factory(max_tasks or (settings.max_tasks if settings else 1), clock)
        self.rates = EventRates(clock=clock)
        self.ingestor: Ingestor | None = None
        self.monitor: QueueMonitor | None = None
        self.queue_note: str | None = None
        self.last_gap: Gap | None = None
        self._clock = clock

    @property
    def read_only(self) -> bool:
        return bool(self.settings and self.settings.read_only)

    def build(self, on_batch: EnvBatch | None = None, on_status: EnvStatusCallback | None
              = None, *, monitor: bool = True, wakeup: bool = False,
              on_notice: Callable[[str, str], None] | None = None) -> None:
        """Make the ingest thread (and the queue monitor), not started yet. A failure is kept
        in ``error``: this environment then shows why, the others run."""
        if self.settings is None:
            return
        try:
            self.ingestor = self._ingestor(on_batch, on_status, wakeup, on_notice)
        except (LazyCeleryError, ValueError, ImportError) as exc:
            self.error = error_line(exc)
            return
        if monitor:
            self.monitor, self.queue_note = _queue_monitor(self.settings)

    def _ingestor(self, on_batch: EnvBatch | None, on_status: EnvStatusCallback | None,
                  wakeup: bool, on_notice: Callable[[str, str], None] | None) -> Ingestor:
        from lazycelery.core.ingest import Ingestor
        from lazycelery.mask.settings import masker_for

        settings = self.settings
        assert settings is not None
        name, rates = self.name, self.rates

        def batch(events: Sequence[Mapping[str, Any]],
                  touched: Sequence[TaskRecord | WorkerRecord | None]) -> None:
            rates.add(events)
            if on_batch is not None:
                on_batch(name, events, touched)

        def status(value: IngestStatus) -> None:
            if value.gap is not None:
                self.last_gap = value.gap
            if on_status is not None:
                on_status(name, value)

        def notice(line: str) -> None:
            if on_notice is not None:
                on_notice(name, line)

        return Ingestor(
            settings.broker_url, self.index, mode=settings.ingest, read_ahead=settings.read_ahead,
            app=settings.celery_app() if settings.app_spec else None,
            transport_options=settings.transport_options, on_batch=batch, on_status=status,
            on_notice=notice, wakeup=wakeup, masker=masker_for(settings),
        )

    def start(self) -> None:
        if self.ingestor is not None:
            self.ingestor.start()
        if self.monitor is not None:
            self.monitor.start()

    def stop(self, timeout: float = 2.0) -> None:
        if self.ingestor is not None:
            self.ingestor.stop(timeout)
        if self.monitor is not None:
            self.monitor.stop(timeout)

    # ------------------------------------------------------------------ the cluster view row

    def status(self, now: float | None = None) -> EnvStatus:
        """This environment's row now (any thread: reads swapped snapshots and counters)."""
        now = self._clock() if now is None else now
        base: dict[str, Any] = {
            "name": self.name, "read_only": self.read_only, "color": self.color,
            "broker": self.settings.masked_broker() if self.settings else "",
        }
        if self.error is not None or self.ingestor is None:
            return EnvStatus(state=MISCONFIGURED, why=self.error or "not set up", **base)
        state, why = _connection(self.ingestor.status)
        workers = self.index.worker_rows(now)
        ok, failed = self.rates.totals(FAILURE_WINDOW, now)
        recent_ok, recent_failed = self.rates.totals(RATE_WINDOW, now - 1)
        depth, oldest, note = self._queues()
        return EnvStatus(
            state=state, why=why,
            workers_online=sum(1 for _, s in workers if s == ONLINE),
            workers_total=len(workers),
            tasks_per_s=(recent_ok + recent_failed) / RATE_WINDOW,
            failure_rate=None if ok + failed == 0 else failed / (ok + failed),
            queue_depth=depth, oldest_age_s=oldest, queue_note=note,
            last_gap=self.last_gap, **base)

    def _queues(self) -> tuple[int | None, float | None, str | None]:
        if self.monitor is None:
            return None, None, self.queue_note
        snap = self.monitor.snapshot
        ready = [q.ready for q in snap.queues if q.ready is not None]
        ages = [q.oldest_age_s for q in snap.queues if q.oldest_age_s is not None]
        note = snap.error if snap.stale else None
        depth = sum(ready) if ready and not (snap.stale and snap.taken_at == 0.0) else None
        return depth, max(ages) if ages else None, note


def _connection(status: IngestStatus) -> tuple[str, str | None]:
    """(state, why): why only when it is not connected."""
    if status.state == RECONNECTING:
        return status.state, status.describe().removeprefix("reconnecting: ")
    if status.state in (CONNECTING, STOPPED) and status.last_error:
        return status.state, error_line(Exception(status.last_error))
    return status.state, None


def _queue_monitor(settings: Settings) -> tuple[QueueMonitor | None, str | None]:
    """The queue monitor of one environment, or why there is none. No worker probe: that is a
    control broadcast to every worker of the cluster, once per environment, for a consumer
    count the cluster view does not show."""
    from lazycelery.broker import open_inspector
    from lazycelery.broker.monitor import QueueMonitor

    try:
        inspector = open_inspector(settings.broker_url, settings.transport_options,
                                   settings.queues or ("celery",),
                                   management_url=settings.management_url, ssl_options=settings.broker_ssl())
    except LazyCeleryError as exc:
        return None, error_line(exc)
    return QueueMonitor(inspector, interval=1.0), None


class EnvSet:
    """The environments of one process, in the order asked for."""

    def __init__(self, watches: Iterable[EnvWatch]) -> None:
        self.watches: tuple[EnvWatch, ...] = tuple(watches)
        self._by_name = {w.name: w for w in self.watches}
        self._started = False
        self._lock = threading.Lock()

    @classmethod
    def from_choices(cls, choices: Iterable[EnvChoice], *,
                     clock: Callable[[], float] = time.time,
                     index_factory: IndexFactory = TaskIndex) -> EnvSet:
        """One EnvWatch per choice; ``index_factory(max_tasks, clock)`` makes each index
        (``tail`` uses its TailIndex)."""
        return cls(EnvWatch(c.name, c.settings, error=c.error, color=c.color,
                            max_tasks=c.settings.max_tasks if c.settings else 1, clock=clock,
                            index_factory=index_factory)
                   for c in choices)

    @property
    def names(self) -> list[str]:
        return [w.name for w in self.watches]

    def __getitem__(self, name: str) -> EnvWatch:
        return self._by_name[name]

    def __len__(self) -> int:
        return len(self.watches)

    def build(self, on_batch: EnvBatch | None = None,
              on_status: EnvStatusCallback | None = None, *, monitor: bool = True,
              on_notice: Callable[[str, str], None] | None = None) -> None:
        for watch in self.watches:
            watch.build(on_batch, on_status, monitor=monitor, on_notice=on_notice)

    def start(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
        for watch in self.watches:
            watch.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop every thread; the stops overlap, so this takes ``timeout`` at most, not one
        ``timeout`` per environment."""
        threads = [threading.Thread(target=w.stop, args=(timeout,), daemon=True)
                   for w in self.watches]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout + 0.5)

    def statuses(self, now: float | None = None) -> list[EnvStatus]:
        return [w.status(now) for w in self.watches]

    # ------------------------------------------------------------------ search

    def find_task(self, id_or_prefix: str) -> list[Found]:
        """The task of this id in every environment, or the tasks whose id starts with it
        (each environment's exact match wins over its prefix matches)."""
        wanted = id_or_prefix.strip()
        if not wanted:
            return []
        found: list[Found] = []
        for watch in self.watches:
            exact = watch.index.get(wanted)
            if exact is not None:
                found.append(Found(watch.name, exact))
                continue
            found.extend(Found(watch.name, rec) for rec in _by_prefix(watch.index, wanted))
        return found

    def search(self, predicate: Callable[[TaskRecord], bool], limit: int = 1000) -> list[Found]:
        """Tasks of every environment for which ``predicate`` holds (a ``core.query`` filter),
        most recently active first within each environment, at most ``limit`` in all."""
        found: list[Found] = []
        for watch in self.watches:
            for rec in watch.index.snapshot():
                if predicate(rec):
                    found.append(Found(watch.name, rec))
                    if len(found) >= limit:
                        return found
        return found


def _by_prefix(index: TaskIndex, prefix: str) -> list[TaskRecord]:
    return [rec for rec in index.snapshot() if rec.uuid.startswith(prefix)]
