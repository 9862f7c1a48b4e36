"""The ingest-thread side of `tail`: filter, format and queue each batch of events, never blocking."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from lazycelery.core.model import TaskRecord, WorkerRecord
from lazycelery.tail.buffer import LineBuffer, Notice
from lazycelery.tail.events import TailIndex, _After, enrich
from lazycelery.tail.filters import EventFilter, _query_matches
from lazycelery.tail.format import Formatter
from lazycelery.tail.status import StatusReporter

if TYPE_CHECKING:
    from lazycelery.core.ingest_status import IngestStatus

__all__ = ["TAKE", "TailSink"]


class _Take:
    """``on_batch``'s default: take the per-event states from the index."""


TAKE = _Take()


class TailSink:
    """``on_batch`` / ``on_status`` for the Ingestor: runs on the ingest thread, never blocks."""

    def __init__(self, index: TailIndex, event_filter: EventFilter, formatter: Formatter,
                 buffer: LineBuffer, reporter: StatusReporter, limit: int | None = None) -> None:
        self.index = index
        self.filter = event_filter
        self.formatter = formatter
        self.buffer = buffer
        self.reporter = reporter
        self.limit = limit
        self.queued = 0
        self.errors = 0

    def on_batch(self, events: Sequence[Mapping[str, Any]],
                 touched: Sequence[TaskRecord | WorkerRecord | None],
                 after: Sequence[_After | None] | _Take | None = TAKE) -> None:
        """Filter, format and queue a batch. ``after``: the per-event states the index took
        (``TailIndex.take_after``), when the caller took them already (``tail.history``)."""
        if self.limit is not None and self.queued >= self.limit:
            return
        if isinstance(after, _Take):
            after = self.index.take_after(len(events))
        lines: list[bytes] = []
        for i, event in enumerate(events):
            kind = event.get("type")
            if not isinstance(kind, str) or not self.filter.type_matches(kind):
                continue
            record = touched[i] if i < len(touched) else None
            try:
                item = enrich(event, record, after[i] if after is not None else None)
                if item is None or not self.filter.matches(item):
                    continue
                if self.filter.query is not None and not _query_matches(
                        self.filter.query, record, item):
                    continue
                lines.append(self.formatter.format(item))
            except Exception as exc:  # one bad event must not stop the stream
                self.errors += 1
                if self.errors == 1:
                    self.buffer.put(Notice(f"could not format a {kind} event "
                                           f"({type(exc).__name__}: {exc}); skipping such events"))
                continue
            if self.limit is not None and self.queued + len(lines) >= self.limit:
                break
        if lines:
            self.queued += self.buffer.put_lines(lines)

    def on_status(self, status: IngestStatus) -> None:
        message = self.reporter.update(status)
        if message is not None:
            self.buffer.put(message)

    def on_notice(self, line: str) -> None:
        """The Ingestor's report of bad input (one line a kind, rate-limited): to stderr."""
        self.buffer.put(Notice(line))
