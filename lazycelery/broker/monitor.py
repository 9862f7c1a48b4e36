"""QueueMonitor: the thread that snapshots queue figures periodically and adds smoothed rates."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import msgspec

from lazycelery.broker.model import QueueSnapshot, QueueStats, Source
from lazycelery.broker.rates import SmoothedRates
from lazycelery.broker.workers import merge_consumers
from lazycelery.errors import LazyCeleryError

if TYPE_CHECKING:
    from lazycelery.broker.inspector import BrokerInspector

__all__ = ["QueueMonitor", "with_rates"]

log = logging.getLogger(__name__)

Listener = Callable[[QueueSnapshot], None]
#: Returns queue name -> consuming worker hostnames (see ``workers.ask_active_queues``).
WorkerProbe = Callable[[], Mapping[str, Sequence[str]]]


def with_rates(snapshot: QueueSnapshot, tracker: SmoothedRates) -> QueueSnapshot:
    """Fill ``net_rate`` (smoothed d(ready)/dt) from the tracker's history.

    Depths alone give only the difference between what arrived and what left. Where the
    broker counts both (RabbitMQ's management API) ``in_rate``/``out_rate`` are its figures.
    """
    queues: list[QueueStats] = []
    # Queues share their ``sources`` dicts; so do their extended copies.
    extended: dict[int, dict[str, str]] = {}
    for stats in snapshot.queues:
        if stats.ready is None:
            queues.append(stats)
            continue
        net = tracker.update(stats.name, stats.ready, snapshot.taken_at)
        if net is None:
            queues.append(stats)
            continue
        sources = extended.get(id(stats.sources))
        if sources is None:
            sources = extended[id(stats.sources)] = {**stats.sources,
                                                     "net_rate": Source.DEPTH_DELTA}
        queues.append(msgspec.structs.replace(stats, net_rate=net, sources=sources))
    tracker.forget_except(s.name for s in snapshot.queues)
    return msgspec.structs.replace(snapshot, queues=tuple(queues))


class QueueMonitor:
    """Snapshots every ``interval`` seconds in a daemon thread.

    ``snapshot`` is replaced whole after each read, so readers just read the attribute (no
    lock: rebinding an attribute is atomic). When a read fails the last good snapshot is
    republished with ``stale=True`` and the error; rates are not updated from failed reads.
    Listeners run in the monitor thread: keep them short (e.g. ``app.invalidate()``).

    With ``workers``, live workers are asked every ``workers_every_s`` which queues they
    consume: those queues are watched too, and consumers are filled in where the broker
    cannot count them (Redis). While no worker has answered (the dashboard started before its
    workers, or they are still starting) they are asked again sooner: after ``interval``, then
    twice as long each time up to ``workers_every_s``, so consumers do not read 0 for the
    first 10 s.
    """

    def __init__(self, inspector: BrokerInspector, interval: float = 1.0, *,
                 half_life_s: float = 5.0, workers: WorkerProbe | None = None,
                 workers_every_s: float = 10.0) -> None:
        if interval <= 0:
            raise ValueError("interval must be > 0")
        self.inspector = inspector
        self.interval = interval
        self._workers = workers
        self._workers_every_s = workers_every_s
        self._workers_due = -math.inf  # monotonic time of the next worker probe
        self._workers_retry_s = interval
        self._consumers: Mapping[str, Sequence[str]] = {}
        self._workers_note: str | None = None
        self._rates = SmoothedRates(half_life_s)
        self._listeners: list[Listener] = []
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_good: QueueSnapshot | None = None
        self._refreshed_at = -math.inf
        self.snapshot: QueueSnapshot = QueueSnapshot(
            taken_at=0.0, queues=(), source=inspector.source, stale=True,
            error="no snapshot yet",
        )

    def on_update(self, callback: Listener) -> Callable[[], None]:
        """Call ``callback(snapshot)`` after every attempt; returns a function to unsubscribe."""
        self._listeners = [*self._listeners, callback]

        def unsubscribe() -> None:
            self._listeners = [cb for cb in self._listeners if cb is not callback]

        return unsubscribe

    def refresh(self) -> QueueSnapshot:
        """Take one snapshot now, in the calling thread; publish it and return it."""
        self._refreshed_at = time.monotonic()
        try:
            fresh = with_rates(self._read(), self._rates)
        except LazyCeleryError as exc:
            fresh = self._stale(str(exc))
        except Exception as exc:  # a bug must not kill the thread: report it like an outage
            log.exception("queue snapshot failed")
            fresh = self._stale(f"{type(exc).__name__}: {exc}")
        else:
            self._last_good = fresh
        self.snapshot = fresh
        for listener in self._listeners:
            try:
                listener(fresh)
            except Exception:
                log.exception("queue monitor listener failed")
        return fresh

    def _read(self) -> QueueSnapshot:
        if self._workers is not None and time.monotonic() >= self._workers_due:
            self._probe_workers()
        snapshot = self.inspector.snapshot()
        if self._workers is None:
            return snapshot
        if self._workers_note:
            snapshot = msgspec.structs.replace(snapshot,
                                               notes=(*snapshot.notes, self._workers_note))
        return merge_consumers(snapshot, self._consumers)

    def _probe_workers(self) -> None:
        assert self._workers is not None
        try:
            self._consumers = self._workers()
            self._workers_note = None
            self.inspector.watch_queues(self._consumers)
        except Exception as exc:  # workers are a bonus: the broker figures still count
            self._workers_note = f"asking workers for their queues failed: {exc}"
        if self._consumers and self._workers_note is None:
            delay, self._workers_retry_s = self._workers_every_s, self.interval
        else:  # nobody answered yet: ask again soon, backing off
            delay = self._workers_retry_s
            self._workers_retry_s = min(self._workers_retry_s * 2, self._workers_every_s)
        self._workers_due = time.monotonic() + delay

    def _stale(self, error: str) -> QueueSnapshot:
        if self._last_good is None:
            return msgspec.structs.replace(self.snapshot, error=error, stale=True)
        return msgspec.structs.replace(self._last_good, error=error, stale=True)

    def start(self) -> QueueMonitor:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="lazycelery-queues",
                                            daemon=True)
            self._thread.start()
        return self

    def wake(self) -> None:
        """Snapshot again now instead of at the end of the interval (e.g. after a purge)."""
        self._wake.set()

    def stop(self, timeout: float = 2.0) -> None:
        """Ask the thread to stop and wait up to ``timeout`` s; a read in progress is bounded
        by the client's socket timeout, and the daemon thread never blocks interpreter exit."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            # Keep the period steady (a 300 ms read at a 1 s interval waits 700 ms), and
            # don't re-read right after a caller's own ``refresh()``.
            remaining = self._refreshed_at + self.interval - time.monotonic()
            if remaining > 0 and self._wake.wait(remaining):
                self._wake.clear()
            if not self._stop.is_set():
                self.refresh()
