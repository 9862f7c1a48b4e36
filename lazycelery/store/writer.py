"""The store's writer thread: a bounded queue of write batches, drained in transactions.

The live path never waits for the database. ``submit`` (called on the ingest thread) only
appends to a queue bounded by events; when it is full the batch is dropped, the loss counted,
and when batches fit again a gap is written with the number of events lost and the cause
(the store fell behind, or was unavailable). The writer retries a transaction that failed for
a passing reason (connection lost, file locked, disk full) and reconnects; what it had already
committed stays.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from lazycelery.core.model import TaskRecord, WorkerRecord
from lazycelery.store.backend import Retention, Store
from lazycelery.store.batch import GapRow, WriteBatch
from lazycelery.store.capture import BatchCapture
from lazycelery.store.errors import StoreError
from lazycelery.store.repeats import Repeats
from lazycelery.text import counted

__all__ = ["MAX_PENDING_EVENTS", "MAX_TRANSACTION_EVENTS", "StoreWriter", "WriterStats"]

log = logging.getLogger(__name__)

#: Events waiting for the writer before new batches are dropped (seconds of a busy cluster).
MAX_PENDING_EVENTS: Final = 200_000
#: Events written per transaction at most (bigger batches amortise the commit).
MAX_TRANSACTION_EVENTS: Final = 20_000
#: Pruning runs this often (seconds), in small steps between writes.
PRUNE_EVERY: Final = 60.0
#: With no events, the recorder's "alive" time is still written this often (seconds).
ALIVE_EVERY: Final = 15.0
RETRY_MAX: Final = 5.0
#: After interrupting a stuck statement at stop, how long to wait for the thread (seconds).
INTERRUPT_GRACE: Final = 10.0

Notice = Callable[[str], None]


@dataclass(frozen=True)
class WriterStats:
    submitted: int
    written: int
    lost: int
    pending: int
    transactions: int
    gaps: int
    pruned: int
    error: str | None


class StoreWriter:
    """Owns ``store`` (its connection) from ``start()`` on: nothing else may use it meanwhile."""

    def __init__(self, store: Store, *, recorder: int | None = None,
                 retention: Retention | None = None, on_notice: Notice | None = None,
                 max_pending_events: int = MAX_PENDING_EVENTS,
                 max_transaction_events: int = MAX_TRANSACTION_EVENTS,
                 prune_every: float = PRUNE_EVERY,
                 on_gap: Callable[[GapRow], None] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.recorder = recorder
        self.retention = retention or Retention()
        self.on_notice = on_notice
        self.max_pending_events = max_pending_events
        self.max_transaction_events = max_transaction_events
        self.prune_every = prune_every
        #: called (on the submitting thread) when a loss of events is recorded as a gap
        self.on_gap = on_gap
        self.clock = clock
        self.capture = BatchCapture()
        self._cond = threading.Condition()
        self._queue: deque[WriteBatch] = deque()
        self._pending = 0
        self._stopping = False
        self._thread: threading.Thread | None = None
        # a run of dropped batches: events lost, first and last event time
        self._loss: list[float] | None = None
        self._loss_events = 0
        self._error: str | None = None
        #: the first store error seen while events were being dropped: the gap's cause, even
        #: when the store works again by the time the gap is closed
        self._loss_error: str | None = None
        self._submitted = self._written = self._lost = 0
        self._transactions = self._gaps = self._pruned = 0
        self._next_prune = 0.0
        self._last_write = 0.0
        self._give_up_at: float | None = None
        #: a write failed for good (not retried) since the last write that worked
        self._failing = False
        #: a notice that repeats one already said is counted, then summed up once
        self._repeats = Repeats(self._say)

    # ------------------------------------------------------------------ ingest thread side

    def on_batch(self, events: Sequence[Mapping[str, Any]],
                 records: Sequence[TaskRecord | WorkerRecord | None]) -> None:
        """The Ingestor's ``on_batch``: snapshot the batch and queue it; never blocks."""
        self.submit(self.capture.capture(events, records))

    def submit(self, batch: WriteBatch, *, force: bool = False) -> bool:
        """Queue a batch; False if it was dropped because the queue is full (counted, and
        recorded as a gap once batches fit again). ``force``: never dropped (backfill and
        reconciliation results: few, and already bounded by their producers)."""
        if batch.empty:
            return True
        notice = None
        gap = None
        with self._cond:
            self._submitted += batch.events
            full = self._pending + batch.events > self.max_pending_events
            if full and batch.events and not force:
                notice = self._drop(batch)
                accepted = False
            else:
                if self._loss is not None:
                    notice = self._close_loss(batch)
                    gap = batch.gaps[-1]
                self._queue.append(batch)
                self._pending += batch.events
                self._cond.notify()
                accepted = True
        if notice:
            self._notify(notice)
        if gap is not None and self.on_gap is not None:
            self.on_gap(gap)
        return accepted

    def add_gap(self, gap: GapRow) -> None:
        """Record a gap (never dropped: gaps are few and small)."""
        with self._cond:
            self._queue.append(WriteBatch(gaps=[gap]))
            self._gaps += 1
            self._cond.notify()

    def _drop(self, batch: WriteBatch) -> str | None:  # with the lock held
        times = [t.time for t in batch.transitions if t.time is not None]
        now = self.clock()
        start, end = (min(times), max(times)) if times else (now, now)
        self._lost += batch.events
        self._loss_events += batch.events
        if self._loss is None:
            self._loss = [start, end]
            self._loss_error = self._error
            return (f"store behind: {counted(self._pending, 'event')} waiting to be written; dropping "
                    f"new ones until it catches up (the loss is recorded as a gap)")
        self._loss[0] = min(self._loss[0], start)
        self._loss[1] = max(self._loss[1], end)
        return None

    def _close_loss(self, batch: WriteBatch) -> str:  # with the lock held
        assert self._loss is not None
        start, end = self._loss
        error = self._error or self._loss_error
        self._loss_error = None
        cause = (f"store unavailable ({error})" if error
                 else "store fell behind (writer queue full)")
        batch.gaps.append(GapRow(start, max(start, end), cause, "store", self._loss_events))
        self._gaps += 1
        text = f"store: {counted(self._loss_events, 'event')} not recorded ({cause}); gap recorded"
        self._loss = None
        self._loss_events = 0
        return text

    # ------------------------------------------------------------------ control

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="lazycelery-store",
                                            daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> bool:
        """Write what is queued, then stop. Returns False if the store did not take it all
        within ``timeout`` (what was left is counted as lost and reported)."""
        with self._cond:
            self._stopping = True
            self._give_up_at = time.monotonic() + max(0.0, timeout)
            if self._loss is not None:
                gap_batch = WriteBatch()
                notice = self._close_loss(gap_batch)
                self._queue.append(gap_batch)
                self._notify(notice)
            self._cond.notify()
        thread = self._thread
        if thread is not None:
            thread.join(max(0.0, timeout) + 1.0)
            if thread.is_alive():
                # stuck in a statement (a lock wait, a dead link): abort it, from this thread
                self.store.interrupt()
                thread.join(INTERRUPT_GRACE)
        with self._cond:
            left = self._pending
            self._queue.clear()
            self._pending = 0
        self._repeats.flush()  # what repeated since it was said, before the last word
        if left:
            self._lost += left
            self._notify(f"store: {left:,} queued events not written at exit "
                         f"({self._error or 'timed out'})")
        return not left

    @property
    def finished(self) -> bool:
        """True once the writer thread has ended: only then may the owner use or close the
        store again (a thread still inside a statement would crash on a closed connection)."""
        return self._thread is None or not self._thread.is_alive()

    def stats(self) -> WriterStats:
        with self._cond:
            return WriterStats(self._submitted, self._written, self._lost, self._pending,
                               self._transactions, self._gaps, self._pruned, self._error)

    def _notify(self, text: str) -> None:
        self._repeats(text)

    def _say(self, text: str) -> None:
        if self.on_notice is not None:
            try:
                self.on_notice(text)
            except Exception:
                log.debug("on_notice failed", exc_info=True)

    # ------------------------------------------------------------------ writer thread

    def _take(self) -> WriteBatch | None:
        with self._cond:
            while not self._queue and not self._stopping:
                self._cond.wait(timeout=1.0)
                if not self._queue and self._periodic_due():
                    return WriteBatch()
            if not self._queue:
                return None
            batch = self._queue.popleft()
            while self._queue and batch.events + self._queue[0].events <= self.max_transaction_events:
                batch.extend(self._queue.popleft())
            return batch

    def _periodic_due(self) -> bool:
        now = time.monotonic()
        if self.retention.active and now >= self._next_prune:
            return True
        return self.recorder is not None and now - self._last_write >= ALIVE_EVERY

    def _run(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            if not self._write(batch):
                return
            self._maybe_prune()

    def _write(self, batch: WriteBatch) -> bool:
        """Write with retries; False when stopping gave up (the batch is counted as lost)."""
        delay = 0.5
        while True:
            try:
                self.store.write(batch, recorder=self.recorder, now=self.clock())
            except Exception as exc:
                if not self._failed(batch, exc):
                    return True  # dropped: not worth retrying
                if self._stop_deadline_passed():
                    return False  # still pending: stop() counts it as lost
                time.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
                self._reconnect()
                continue
            self._written_ok(batch)
            return True

    def _written_ok(self, batch: WriteBatch) -> None:
        recovered = None
        with self._cond:
            self._pending -= batch.events
            self._written += batch.events
            self._transactions += 1
            if self._error is not None:
                recovered, self._error = self._error, None
        self._last_write = time.monotonic()
        if not (batch.events or recovered):
            return  # a gap written while events still fail (a damaged table) is no recovery
        failing, self._failing = self._failing, False
        if self._repeats.pending:
            self._repeats.flush()  # the repeats of the failure, counted, before it ended
        if recovered or failing:
            self._notify(f"store {self.store.masked}: writing again")

    def _failed(self, batch: WriteBatch, exc: BaseException) -> bool:
        """Count and report a failed write; True if it should be retried."""
        message = self.store.describe_error(exc)
        if self.store.is_transient(exc):
            with self._cond:
                first, self._error = self._error is None, message.split(": ", 1)[-1]
                if self._loss is not None and self._loss_error is None:
                    self._loss_error = self._error
            if first:
                self._notify(f"{message}; retrying (new events wait in a bounded queue)")
            return True
        log.debug("store write failed", exc_info=True)
        self._failing = True
        if not batch.events:
            # only gaps (or samples) and the store refuses them for good (a corrupt file):
            # say so once; queuing another gap for it would fail the same way, forever
            self._notify(f"{message}; a gap could not be recorded")
            self.store.reconnect()
            return False
        with self._cond:
            self._pending -= batch.events
            self._lost += batch.events
            times = [t.time for t in batch.transitions if t.time is not None]
            now = self.clock()
            gap = GapRow(min(times) if times else now, max(times) if times else now,
                         f"write failed: {message}", "store", batch.events)
            # the gaps this batch carried go again with its own: an earlier failure's gap is
            # queued in front of the next batch and merged into its write, so when that write
            # fails too, dropping them lost the record of the earlier loss
            self._queue.appendleft(WriteBatch(gaps=[*batch.gaps, gap]))
            self._gaps += 1
        self._notify(f"{message}; {counted(batch.events, 'event')} not recorded (gap recorded)")
        self.store.reconnect()
        return False

    def _reconnect(self) -> None:
        try:
            self.store.reconnect()
        except StoreError as exc:
            with self._cond:
                self._error = str(exc).split(": ", 1)[-1]
                if self._loss is not None and self._loss_error is None:
                    self._loss_error = self._error
        except Exception:
            log.debug("store reconnect failed", exc_info=True)

    def _stop_deadline_passed(self) -> bool:
        with self._cond:
            return self._give_up_at is not None and time.monotonic() >= self._give_up_at

    def _maybe_prune(self) -> None:
        if not self.retention.active:
            return
        now = time.monotonic()
        if now < self._next_prune:
            return
        try:
            deleted = self.store.prune(self.retention, now=self.clock())
        except Exception as exc:
            self._notify(f"{self.store.describe_error(exc)} (pruning; will try again)")
            self.store.reconnect()
            self._next_prune = now + self.prune_every
            return
        with self._cond:
            self._pruned += deleted
            busy = self._pending > self.max_pending_events // 2
        # more to delete: another small step after the next write, unless writes are behind
        self._next_prune = now + (0.0 if deleted and not busy else self.prune_every)
