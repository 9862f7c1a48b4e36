"""`tail --since`: replay the history store's events through tail's own index, filters and
formatters (main thread), before the live stream is printed."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import IO, TYPE_CHECKING, Final

from lazycelery.errors import UsageError
from lazycelery.tail.buffer import Dropped, LineBuffer, Notice
from lazycelery.tail.events import TailIndex
from lazycelery.tail.filters import EventFilter
from lazycelery.tail.format import Formatter, _clock_text
from lazycelery.tail.sink import TailSink
from lazycelery.tail.status import StatusReporter

if TYPE_CHECKING:
    from lazycelery.store import Store, StoredGap

__all__ = ["CHUNK", "RECORDER_LAG", "parse_since", "print_history"]

#: events replayed per batch
CHUNK: Final = 500
#: After the live stream connects, history is read this much later, so that a recorder has
#: written the events up to the switch (its writes lag the stream by a fraction of a second).
RECORDER_LAG: Final = 0.5


def parse_since(text: str, now: float | None = None) -> float:
    """``2h``, ``30m``, ``1d`` ago, or an ISO time (``2024-05-01T10:00``) -> epoch seconds."""
    from lazycelery.core.query import parse_duration

    now = time.time() if now is None else now
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise UsageError(f"--since: needs a duration (30m, 2h, 1d) or an ISO time "
                         f"(2024-05-01T10:00), not {text!r}") from None


def _gap_text(gap: StoredGap) -> str:
    lost = f", {gap.lost_events:,} events lost" if gap.lost_events else ""
    filled = (f"; {gap.backfilled_tasks:,} tasks backfilled"
              if gap.backfilled_tasks is not None else "")
    return (f"history gap {_clock_text(gap.start)} - {_clock_text(gap.end)} "
            f"({gap.end - gap.start:,.1f} s, {gap.cause}{lost}){filled}")


def print_history(store: Store, since: float, until: float, *, event_filter: EventFilter,
                  formatter: Formatter, out: IO[bytes], say: Callable[[str], None],
                  max_tasks: int, limit: int | None = None) -> int:
    """Write the matching history lines to ``out``; returns how many were written. Gaps in
    the record are said on stderr (``say``) where they fall."""
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
            sink.on_batch(chunk, index.apply_batch(chunk))
            chunk.clear()
        for item in buffer.take(max_items=1 << 30):
            if isinstance(item, bytes):
                out.write(item)
                written += 1
            elif isinstance(item, (Notice, Dropped)):
                say(item.text if isinstance(item, Notice) else f"{item.count} lines dropped")
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
            if len(chunk) >= CHUNK and flush():
                break
        else:
            flush()
    finally:
        buffer.close()
        out.flush()
    return written
