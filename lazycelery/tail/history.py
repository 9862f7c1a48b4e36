"""`tail --since`: replay the history store's events through tail's own index, filters and
formatters (main thread), before the live stream is printed."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any, Final

from lazycelery.errors import UsageError
from lazycelery.tail.buffer import Dropped, LineBuffer, Notice
from lazycelery.tail.events import TailIndex, _After
from lazycelery.tail.filters import EventFilter
from lazycelery.tail.format import Formatter, _clock_text
from lazycelery.tail.sink import TailSink
from lazycelery.tail.status import StatusReporter
from lazycelery.text import counted

if TYPE_CHECKING:
    from lazycelery.core.model import TaskRecord, WorkerRecord
    from lazycelery.mask import Masker
    from lazycelery.store import Store, StoredGap

__all__ = ["CATCH_UP", "CHUNK", "OVERLAP", "RECORDER_LAG", "LiveGate", "event_key",
           "parse_since", "print_history", "wait_for_recorder"]

#: events replayed per batch
CHUNK: Final = 500
#: With no live task event to look for in the store (an idle cluster), history is read this
#: much after the live stream connected, so that a recorder has written what it had.
RECORDER_LAG: Final = 0.5
#: how long to wait for a running recorder to write the first event seen live
CATCH_UP: Final = 5.0
#: history events this close before the switch (seconds) are remembered to drop their live
#: copies: the in-flight time of an event, and clock differences between hosts
OVERLAP: Final = 120.0

#: what identifies one event in history and live: (task id or worker, type, sender time)
EventKey = tuple[str, str, float]


def event_key(event: Mapping[str, Any]) -> EventKey | None:
    who = event.get("uuid") or event.get("hostname")
    kind, at = event.get("type"), event.get("timestamp")
    if not isinstance(who, str) or not isinstance(kind, str) or not isinstance(at, (int, float)):
        return None
    return who, kind, float(at)


_Held = tuple[Sequence[Mapping[str, Any]], Sequence["TaskRecord | WorkerRecord | None"],
              "Sequence[_After | None] | None"]


class LiveGate:
    """Between the ingest thread and tail's sink while history is printed: live batches are
    held (with the per-event states the index took) until ``release``; from then on, a live
    event history already printed (same task, type and sender time) is dropped. The switch
    from history to live thus loses nothing live saw and prints nothing twice."""

    def __init__(self, sink: Any, index: TailIndex, hold_max: int = 1_000_000) -> None:
        self._sink = sink
        self._index = index
        self._lock = threading.Lock()
        self._held: list[_Held] | None = []
        self._held_events = 0
        self._hold_max = hold_max
        self._releasing = False  # the main thread passes held batches on: keep queueing
        self._printed: set[EventKey] = set()
        self._until = 0.0
        #: the first task event seen live: when the store has it, a recorder caught up
        self.first_task: EventKey | None = None
        self.dropped = 0

    def on_batch(self, events: Sequence[Mapping[str, Any]],
                 touched: Sequence[TaskRecord | WorkerRecord | None]) -> None:
        after = self._index.take_after(len(events))
        with self._lock:
            if self.first_task is None:
                for event in events:
                    if str(event.get("type", "")).startswith("task-"):
                        self.first_task = event_key(event)
                        break
            if self._held is not None and (self._releasing
                                           or self._held_events < self._hold_max):
                self._held.append((events, touched, after))
                self._held_events += len(events)
                return
            self._pass(events, touched, after)

    def release(self, printed: set[EventKey], until: float) -> None:
        """History is printed (``printed``: the keys of its events near the switch, up to
        ``until``): pass the held batches on without those events, then every live one."""
        with self._lock:
            self._printed, self._until = printed, until
            self._releasing = True
        while True:
            # pass on what is held without holding the lock: the ingest thread goes on
            # queueing behind it meanwhile, and is only stopped for the last handful
            with self._lock:
                held = self._held or []
                if len(held) <= 8:
                    for events, touched, after in held:
                        self._pass(events, touched, after)
                    self._held = None
                    return
                self._held = []
                self._held_events = 0
            for events, touched, after in held:
                self._pass(events, touched, after)

    def _pass(self, events: Sequence[Mapping[str, Any]],
              touched: Sequence[TaskRecord | WorkerRecord | None],
              after: Sequence[_After | None] | None) -> None:
        printed = self._printed
        if printed:
            keep = [i for i, e in enumerate(events)
                    if not (float(e.get("timestamp") or 0.0) < self._until + OVERLAP
                            and event_key(e) in printed)]
            if len(keep) < len(events):
                self.dropped += len(events) - len(keep)
                events = [events[i] for i in keep]
                touched = [touched[i] for i in keep if i < len(touched)]
                after = [after[i] for i in keep] if after is not None else None
        if events:
            self._sink.on_batch(events, touched, after)


def wait_for_recorder(store: Store, gate: LiveGate, timeout: float = CATCH_UP,
                      idle: float = RECORDER_LAG) -> bool:
    """Wait until the store holds the first task event tail saw live (a running recorder has
    then written everything before the switch), at most ``timeout`` s; with no live task
    event within ``idle`` s there is nothing in flight to wait for. True if caught up."""
    start = time.monotonic()
    while True:
        key = gate.first_task
        waited = time.monotonic() - start
        if key is None:
            if waited >= idle:
                return True
        elif any(t.type == key[1] and t.time == key[2] for t in store.transitions_of(key[0])):
            return True
        if waited >= timeout:
            return False
        time.sleep(0.05)


def parse_since(text: str, now: float | None = None) -> float:
    """``2h``, ``30m``, ``1d`` ago, or an ISO time (``2024-05-01T10:00``) -> epoch seconds."""
    from lazycelery.durations import DurationTooLong, parse_duration

    now = time.time() if now is None else now
    try:
        return now - parse_duration(text)
    except DurationTooLong as exc:
        raise UsageError(f"--since: {exc}") from None
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise UsageError(f"--since: needs a duration (30m, 2h, 1d) or an ISO time "
                         f"(2024-05-01T10:00), not {text!r}") from None


def _gap_text(gap: StoredGap) -> str:
    lost = f", {counted(gap.lost_events, 'event')} lost" if gap.lost_events else ""
    filled = (f"; {counted(gap.backfilled_tasks, 'task')} backfilled"
              if gap.backfilled_tasks is not None else "")
    return (f"history gap {_clock_text(gap.start)} - {_clock_text(gap.end)} "
            f"({gap.end - gap.start:,.1f} s, {gap.cause}{lost}){filled}")


def print_history(store: Store, since: float, until: float, *, event_filter: EventFilter,
                  formatter: Formatter, out: IO[bytes], say: Callable[[str], None],
                  max_tasks: int, limit: int | None = None,
                  seen: set[EventKey] | None = None, seen_from: float = 0.0,
                  masker: Masker | None = None) -> int:
    """Write the matching history lines to ``out``; returns how many were written. Gaps in
    the record are said on stderr (``say``) where they fall. ``seen`` collects the keys of
    the events from ``seen_from`` on (printed or not: live copies of them are dropped)."""
    from lazycelery.store import StoredGap
    from lazycelery.store.history import history_events

    index = TailIndex(max_tasks=max_tasks)
    buffer = LineBuffer()
    sink = TailSink(index, event_filter, formatter, buffer, StatusReporter(""), limit=limit)
    written = 0
    chunk: list[dict[str, object]] = []

    def flush() -> bool:
        nonlocal written
        if chunk:
            if masker is not None:
                masker.apply(chunk)  # idempotent on values masked when they were recorded
            sink.on_batch(chunk, index.apply_batch(chunk))
            chunk.clear()
        for item in buffer.take(max_items=1 << 30):
            if isinstance(item, bytes):
                out.write(item)
                written += 1
            elif isinstance(item, (Notice, Dropped)):
                say(item.text if isinstance(item, Notice) else f"{counted(item.count, 'line')} dropped")
        return limit is not None and written >= limit

    try:
        for item in history_events(store, since, until):
            if isinstance(item, StoredGap):
                if flush():
                    break
                out.flush()
                say(_gap_text(item))
                continue
            chunk.append(item)
            if seen is not None and float(item.get("timestamp") or 0.0) >= seen_from:
                key = event_key(item)
                if key is not None:
                    seen.add(key)
            if len(chunk) >= CHUNK and flush():
                break
        else:
            flush()
    finally:
        buffer.close()
        out.flush()
    return written
