"""`lazycelery tail`: filter, format and print events as they reach the task index, one line each.

Threads and data flow::

    ingest thread:  broker -> Ingestor -> TailIndex.apply_batch -> TailSink.on_batch
                                             (filter, format, encode) -> LineBuffer
    main thread:    LineBuffer -> stdout / stderr (write + flush)   [follow()]

The ingest thread never writes to stdout or stderr: a slow reader (``| less``) must not stall the
broker connection (Redis disconnects a PUB/SUB client that falls 32 MB behind; RabbitMQ's event
queue drops messages older than 5 s). The hand-off buffer is bounded instead (``LineBuffer``):
when more than ``MAX_PENDING_LINES`` lines or ``MAX_PENDING_BYTES`` are waiting, new lines are
dropped and counted, and the writer reports the count on stderr once, at the place in the stream
where the lines are missing.

Modules: ``events`` (TailEvent, TailIndex), ``filters`` (EventFilter), ``format`` (text and JSON
lines), ``buffer`` (LineBuffer), ``status`` (StatusReporter), ``sink`` (TailSink, ingest thread),
``writer`` (follow, main thread) and ``command`` (``run``, the wiring).

Nothing here imports celery, kombu or redis at module level; ``run()`` imports the config and the
ingest modules when the command actually runs.
"""

from __future__ import annotations

from lazycelery.tail.buffer import MAX_PENDING_BYTES, MAX_PENDING_LINES, Dropped, Fatal, LineBuffer, Notice
from lazycelery.tail.command import run
from lazycelery.tail.events import KNOWN_TYPES, TailEvent, TailIndex, enrich
from lazycelery.tail.filters import EventFilter, filter_from_args, type_warnings
from lazycelery.tail.format import JSON_KEYS, Formatter, JsonFormatter, TextFormatter, use_color
from lazycelery.tail.sink import TailSink
from lazycelery.tail.status import StatusReporter
from lazycelery.tail.writer import follow

__all__ = [
    "JSON_KEYS",
    "KNOWN_TYPES",
    "MAX_PENDING_BYTES",
    "MAX_PENDING_LINES",
    "Dropped",
    "EventFilter",
    "Fatal",
    "Formatter",
    "JsonFormatter",
    "LineBuffer",
    "Notice",
    "StatusReporter",
    "TailEvent",
    "TailIndex",
    "TailSink",
    "TextFormatter",
    "enrich",
    "filter_from_args",
    "follow",
    "run",
    "type_warnings",
    "use_color",
]
