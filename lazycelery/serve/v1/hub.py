"""The live stream's buffer: the ingest thread publishes each batch (events, with a copy of the
record each one touched) into a fixed ring with sequence numbers; stream clients read it from
their own position on the event loop.

The ingest thread never waits on a client: publishing is O(batch) under a lock no reader
holds for long, plus one wake-up per event loop. A client that falls more than the ring's size
behind has lost the overwritten items: it learns how many from the sequence numbers (the loss
is counted, never hidden), and ``Last-Event-ID`` resumes within the ring.

With no client for ``LINGER`` seconds the ring is not filled (the record copies are the cost):
sequence numbers still advance, so a client resuming from before that is told its loss."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

from lazycelery.core.ingest_status import IngestStatus
from lazycelery.core.model import TaskRecord, WorkerRecord

__all__ = ["DEFAULT_SIZE", "Item", "Read", "StreamHub"]

#: items kept for slow clients and ``Last-Event-ID`` resumption (a few seconds at 30k/s)
DEFAULT_SIZE: Final = 1 << 17
#: seconds the ring keeps filling after the last client left (or a snapshot was taken): a
#: viewer that reconnects within it resumes; with nobody listening the ingest pays nothing
LINGER: Final = 120.0
#: seconds between two looks of the event loop for new items while clients wait
WAKE_EVERY: Final = 0.05
#: joined ranges kept for clients reading the same items (``read_frames``)
JOINED_KEPT: Final = 16
TASK: Final = "task"
WORKER: Final = "worker"
STATUS: Final = "status"

_encoder = msgspec.json.Encoder(enc_hook=str)


@dataclass(eq=False, slots=True)
class Item:
    """One stream message: a task or worker event with the record after its batch, or an
    ingest status change (a gap, a reconnect). Encoded once, on first read (event loop only)."""

    seq: int
    kind: str
    event: Mapping[str, Any] | None
    record: TaskRecord | WorkerRecord | IngestStatus | None
    _data: bytes | None = field(default=None, repr=False)
    _frame: bytes | None = field(default=None, repr=False)

    def data(self) -> bytes:
        if self._data is None:
            body: dict[str, Any] = {"record": self.record}
            if self.event is not None:
                body["event"] = self.event
            self._data = _encoder.encode(body)
        return self._data

    def frame(self, epoch: str) -> bytes:
        """The whole SSE message (its id: ``<epoch>-<seq>``), built once for every client."""
        if self._frame is None:
            self._frame = b"id: %s-%d\nevent: %s\ndata: %s\n\n" % (
                epoch.encode(), self.seq, self.kind.encode(), self.data())
        return self._frame


@dataclass(frozen=True)
class Read:
    """What a client gets from ``read``: the items after its position (in order), how many it
    lost before them (overwritten), and its new position."""

    items: list[Item]
    lost: int
    position: int


class StreamHub:
    """A ring of the last ``size`` items; one writer (the ingest thread), any readers."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self.size = size
        #: changes when the server restarts: a Last-Event-ID of another epoch cannot resume
        self.epoch = secrets.token_hex(4)
        self._ring: list[Item | None] = [None] * size
        self._last = 0  # sequence number of the newest item (the first is 1)
        self._first_kept = 1  # items before this one were not stored (nobody listened)
        self._keep_until = 0.0  # monotonic time until which the ring fills with no client
        self._lock = threading.Lock()
        # event loop -> the asyncio events of the clients waiting on it
        self._waiters: dict[asyncio.AbstractEventLoop, set[asyncio.Event]] = {}
        # event loop -> its task waking the clients when something was published
        self._tickers: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}
        self.published = 0
        #: set when the server stops: every stream ends (uvicorn waits for open responses)
        self.closed = False
        #: items lost by clients, summed over clients (for /metrics and the bench)
        self.client_losses = 0
        self.clients = 0
        # (first seq, last seq) -> (joined frames, items): shared by clients in step (loop only)
        self._joined: dict[tuple[int, int], tuple[bytes, int]] = {}
        #: seconds the ingest has been behind its broker (set at start): streams pause then
        self.behind: Callable[[], float] = lambda: 0.0

    @property
    def last(self) -> int:
        return self._last

    # ------------------------------------------------------------------ the ingest thread

    def publish(self, events: Sequence[Mapping[str, Any]],
                records: Sequence[TaskRecord | WorkerRecord | None], lock: Any) -> None:
        """A batch just applied to the index (``records[i]`` is what ``events[i]`` touched).
        The records are copied under ``lock`` (the index's: the reconciler may change one)."""
        if not self.active:
            self._skip(sum(1 for r in records if r is not None))
            return
        with lock:
            copies = [None if r is None else msgspec.structs.replace(r) for r in records]
        items: list[tuple[str, Mapping[str, Any], TaskRecord | WorkerRecord]] = []
        for event, copy in zip(events, copies, strict=False):
            if isinstance(copy, TaskRecord):
                items.append((TASK, event, copy))
            elif isinstance(copy, WorkerRecord):
                items.append((WORKER, event, copy))
        if items:
            self._append(items)

    def publish_status(self, status: IngestStatus) -> None:
        if self.active:
            self._append([(STATUS, None, status)])
        else:
            self._skip(1)

    @property
    def active(self) -> bool:
        """Whether items are stored: a client is connected, or was within ``LINGER`` s."""
        return self.clients > 0 or time.monotonic() < self._keep_until

    def keep(self) -> None:
        """Store items for the next ``LINGER`` s even with no client (a snapshot was taken:
        its viewer connects to the stream next)."""
        self._keep_until = time.monotonic() + LINGER

    def _skip(self, count: int) -> None:
        with self._lock:
            self._last += count
            self._first_kept = self._last + 1

    def _append(self, entries: Sequence[tuple[str, Mapping[str, Any] | None, Any]]) -> None:
        ring, size = self._ring, self.size
        with self._lock:
            seq = self._last
            for kind, event, record in entries:
                seq += 1
                ring[seq % size] = Item(seq, kind, event, record)
            self._last = seq
            self.published += len(entries)
        # No wake-up from here: the loop looks every WAKE_EVERY s (``_tick``). Waking it
        # (call_soon_threadsafe) writes to its self-pipe, a syscall where this thread gives
        # the GIL up and then waits for it behind the busy loop: 7-10% of the ingest thread's
        # time at 30,000 events/s with 50 streams (py-spy), even with one wake per loop turn

    def close(self) -> None:
        """End every stream (any thread): the server is stopping."""
        with self._lock:
            self.closed = True
            loops = list(self._waiters)
        for loop in loops:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._wake, loop)

    # ------------------------------------------------------------------ the event loop

    def _wake(self, loop: asyncio.AbstractEventLoop) -> None:
        for waiter in self._waiters.get(loop, ()):
            waiter.set()

    async def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        """While this loop has clients waiting: every WAKE_EVERY s, wake them if something
        was published since the last look (the clients write at most once per TICK anyway)."""
        seen = self._last
        try:
            while not self.closed:
                await asyncio.sleep(WAKE_EVERY)
                with self._lock:
                    waiters = self._waiters.get(loop)
                    if not waiters:
                        self._tickers.pop(loop, None)
                        return
                    last, woken = self._last, list(waiters)
                if last != seen:
                    seen = last
                    for waiter in woken:
                        waiter.set()
        finally:
            with self._lock:
                if self._tickers.get(loop) is asyncio.current_task():
                    del self._tickers[loop]

    def subscribe(self) -> asyncio.Event:
        """An event set whenever something is published (call on the event loop)."""
        loop = asyncio.get_running_loop()
        waiter = asyncio.Event()
        with self._lock:
            self._waiters.setdefault(loop, set()).add(waiter)
            self.clients += 1
            self._keep_until = time.monotonic() + LINGER
            if loop not in self._tickers:
                self._tickers[loop] = loop.create_task(self._tick(loop))
        return waiter

    def unsubscribe(self, waiter: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            waiters = self._waiters.get(loop)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    del self._waiters[loop]
            self.clients -= 1
            self._keep_until = time.monotonic() + LINGER

    def read(self, position: int, limit: int) -> Read:
        """Up to ``limit`` items after ``position`` (a sequence number; 0: the start)."""
        with self._lock:
            last = self._last
            oldest = max(1, last - self.size + 1, self._first_kept)
            start = position + 1
            lost = max(0, oldest - start)
            start = max(start, oldest)
            stop = min(last, start + limit - 1)
            ring, size = self._ring, self.size
            items = [item for seq in range(start, stop + 1)
                     if (item := ring[seq % size]) is not None]
            if lost:
                self.client_losses += lost
        return Read(items, lost, stop if stop >= start else max(position, start - 1))

    def read_frames(self, position: int, limit: int) -> tuple[bytes, int, int, int]:
        """``read`` for a client that takes every item: their SSE frames joined, how many
        items, how many lost, the new position. Clients that keep up read the same range
        after each publish: the join is made once for all of them (the last few kept)."""
        with self._lock:
            last = self._last
            oldest = max(1, last - self.size + 1, self._first_kept)
            start = position + 1
            lost = max(0, oldest - start)
            start = max(start, oldest)
            stop = min(last, start + limit - 1)
            if lost:
                self.client_losses += lost
            if stop < start:
                return b"", 0, lost, max(position, start - 1)
            key = (start, stop)
            cached = self._joined.get(key)
            if cached is None:
                ring, size = self._ring, self.size
                items = [item for seq in range(start, stop + 1)
                         if (item := ring[seq % size]) is not None]
        if cached is None:
            epoch = self.epoch  # frames are built on the event loop, outside the lock
            cached = (b"".join([item.frame(epoch) for item in items]), len(items))
            joined = self._joined
            joined[key] = cached
            if len(joined) > JOINED_KEPT:
                del joined[next(iter(joined))]
        return cached[0], cached[1], lost, stop

    def position_of(self, last_event_id: str | None) -> tuple[int, str | None]:
        """Where a client resumes: after its ``Last-Event-ID`` (``<epoch>-<seq>``) when this
        server issued it, else from now. The second value says why it could not resume."""
        if not last_event_id:
            return self._last, None
        epoch, _, seq = last_event_id.strip().partition("-")
        if epoch != self.epoch or not seq.isdigit():
            return self._last, "the server restarted (or the id is not one of its)"
        position = int(seq)
        if position > self._last:
            return self._last, "the id is ahead of the stream"
        return position, None

    def event_id(self, seq: int) -> str:
        return f"{self.epoch}-{seq}"
