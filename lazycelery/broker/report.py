"""Plain-text tables and the documented JSON documents for queue snapshots and peeked messages.

Text taken from the broker (queue names, task names, ids, args, errors) is shown with control
characters as escapes (``lazycelery.text.visible``), whatever its type; JSON keeps its escaping."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import msgspec

from lazycelery.broker.model import PeekedMessage, QueueSnapshot, QueueStats
from lazycelery.text import counted, number, rate, text_of, visible, whole_duration

__all__ = [
    "PEEK_SCHEMA",
    "QUEUES_SCHEMA",
    "format_age",
    "format_dead_letter",
    "format_peek",
    "format_priorities",
    "format_snapshot",
    "peek_document",
    "snapshot_document",
]

QUEUES_SCHEMA = "lazycelery.queues/1"
PEEK_SCHEMA = "lazycelery.peek/1"
MISSING = "-"


def _iso(epoch: float) -> str | None:
    if epoch <= 0:
        return None
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="milliseconds")


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _queue_json(stats: QueueStats) -> dict[str, Any]:
    return {
        "name": stats.name,
        "ready": stats.ready,
        "reserved": stats.reserved,
        "consumers": stats.consumers,
        "by_priority": ({str(step): count for step, count in stats.by_priority.items()}
                        if stats.by_priority is not None else None),
        "in_rate": _round(stats.in_rate),
        "out_rate": _round(stats.out_rate),
        "net_rate": _round(stats.net_rate),
        "oldest_age_s": _round(stats.oldest_age_s, 1),
        "missing": stats.missing,
        "max_priority": stats.max_priority,
        "dead_letter": stats.dead_letter,
        "dead_letter_ready": stats.dead_letter_ready,
        "dead_letter_of": stats.dead_letter_of,
        "sources": stats.sources,
    }


def snapshot_document(snapshot: QueueSnapshot, broker: str) -> dict[str, Any]:
    """The ``--json`` document (schema ``lazycelery.queues/1``, see docs/queues.md)."""
    return {
        "schema": QUEUES_SCHEMA,
        "broker": broker,
        "source": snapshot.source,
        "taken_at": _iso(snapshot.taken_at),
        "duration_ms": round(snapshot.duration_s * 1000, 1),
        "stale": snapshot.stale,
        "error": snapshot.error,
        "notes": list(snapshot.notes),
        "unacked_total": snapshot.unacked_total,
        "queues": [_queue_json(stats) for stats in snapshot.queues],
    }


def peek_document(queue: str, broker: str, messages: Sequence[PeekedMessage]) -> dict[str, Any]:
    """The ``peek --json`` document (schema ``lazycelery.peek/1``)."""
    return {
        "schema": PEEK_SCHEMA,
        "broker": broker,
        "queue": queue,
        "messages": [msgspec.to_builtins(message) for message in messages],
    }


def _shown(value: object) -> str:
    return visible(text_of(value))


def format_age(seconds: float | None) -> str:
    return whole_duration(seconds, MISSING)


def _num(value: int | None) -> str:
    # the dashboard's format (1,200), so the two never disagree on how a figure reads; a value
    # of another type is shown as it is
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return number(value, missing=MISSING)
    return _shown(value)


def _rate(value: float | None, signed: bool = False) -> str:
    return rate(value, signed=signed, missing=MISSING)


def format_priorities(stats: QueueStats) -> str:
    """``0:4 6:1 9:2``: ready messages per priority step, the non-empty ones (Redis); ``max 10``
    for a RabbitMQ priority queue (its API does not count per priority)."""
    if stats.max_priority is not None:
        return f"max {_num(stats.max_priority)}"
    if not stats.by_priority:
        return ""
    return " ".join(f"{_shown(step)}:{_num(count)}"
                    for step, count in stats.by_priority.items() if count)


def format_dead_letter(stats: QueueStats) -> str:
    """``celery.dlq (3)`` beside a queue; ``DLQ of celery`` on the dead-letter queue itself."""
    if stats.dead_letter is not None:
        return f"{_shown(stats.dead_letter)} ({_num(stats.dead_letter_ready)})"
    if stats.dead_letter_of is not None:
        return f"DLQ of {_shown(stats.dead_letter_of)}"
    return ""


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str) -> list[str]:
    """Columns sized to their content; ``align`` has one ``l`` or ``r`` per column."""
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(header)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(width) if how == "l" else cell.rjust(width)
                         for cell, width, how in zip(cells, widths, align, strict=True)).rstrip()

    return [line(header), *(line(row) for row in rows)]


def format_snapshot(snapshot: QueueSnapshot, broker: str) -> str:
    """The ``lazycelery queues`` table, with the source and any caveats under it."""
    lines: list[str] = []
    if snapshot.stale:
        when = _iso(snapshot.taken_at)
        lines.append(f"STALE: {_shown(snapshot.error)}"
                     + (f" (figures from {when})" if when else ""))
    with_priorities = any(format_priorities(s) for s in snapshot.queues)
    header = ["QUEUE", "READY", "RESERVED", "CONSUMERS", "IN/S", "OUT/S", "NET/S", "OLDEST"]
    if with_priorities:
        header.append("BY PRIORITY")
    with_dead = any(format_dead_letter(s) for s in snapshot.queues)
    if with_dead:
        header.append("DEAD LETTERS")
    rows = []
    for stats in snapshot.queues:
        row = [_shown(stats.name) + (" (missing)" if stats.missing else ""), _num(stats.ready),
               _num(stats.reserved), _num(stats.consumers), _rate(stats.in_rate),
               _rate(stats.out_rate), _rate(stats.net_rate, signed=True),
               format_age(stats.oldest_age_s)]
        if with_priorities:
            row.append(format_priorities(stats))
        if with_dead:
            row.append(format_dead_letter(stats))
        rows.append(row)
    if rows:
        lines.extend(_table(header, rows, "lrrrrrrr" + "l" * (len(header) - 8)))
    else:
        lines.append("no queues found")
    ready = sum(s.ready or 0 for s in snapshot.queues)
    summary = f"{counted(len(snapshot.queues), 'queue', short=True)}, {number(ready)} ready"
    if snapshot.unacked_total is not None:
        summary += f", {number(snapshot.unacked_total)} unacked in total"
    when = _iso(snapshot.taken_at) if not snapshot.stale else None
    lines.append("")
    lines.append(f"{_shown(broker)} · {summary}" + (f" · {when}" if when else ""))
    lines.append(f"source: {_shown(snapshot.source)}")
    lines.extend(f"note: {_shown(note)}" for note in snapshot.notes)
    return "\n".join(lines)


def _clip(text: str | None, width: int) -> str:
    if text is None:
        return MISSING
    shown = _shown(text)
    return shown if len(shown) <= width else shown[: width - 1] + "…"


def format_peek(queue: str, messages: Sequence[PeekedMessage]) -> str:
    if not messages:
        return f"queue {_shown(queue)} has no waiting messages"
    header = ["#", "PRI", "TASK", "ID", "ETA", "AGE", "args / kwargs"]
    rows = [
        [_shown(m.position), _num(m.priority), _clip(m.task, 40), _shown(m.id or MISSING),
         _shown(m.eta or MISSING), format_age(m.age_s),
         _clip(m.argsrepr, 50) + " " + _clip(m.kwargsrepr, 40)
         + (f"  [{_shown(m.note)}]" if m.note and m.argsrepr is None else "")]
        for m in messages
    ]
    return "\n".join(_table(header, rows, "rrlllrl"))
