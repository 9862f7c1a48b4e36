"""What the store keeps of a task: TaskRecord <-> table row, and the merge of a stored row with a
newer record (order-independent, so a recorder restart never loses what an earlier one saw)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import msgspec

from lazycelery.core.model import READY_STATES, TaskRecord, derive_state

__all__ = [
    "EXTRA_COLUMNS",
    "RECORD_COLUMNS",
    "RECORD_FIELDS",
    "TASK_COLUMNS",
    "TERMINAL_PRECEDENCE",
    "merge_records",
    "record_from_row",
    "record_to_row",
    "row_mapping",
    "task_times",
]

#: TaskRecord fields kept in the ``tasks`` table (schema version 1), with their column kind.
#: Written out, not derived from TaskRecord: a field added to the model needs a migration
#: (tests/test_store_rows.py fails until it has one).
RECORD_COLUMNS: Final[tuple[tuple[str, str], ...]] = (
    ("uuid", "text"), ("state", "text"), ("name", "text"), ("worker", "text"),
    ("args", "text"), ("kwargs", "text"), ("result", "text"), ("exception", "text"),
    ("traceback", "text"), ("runtime", "float"), ("retries", "int"), ("eta", "text"),
    ("expires", "text"), ("parent_id", "text"), ("root_id", "text"), ("queue", "text"),
    ("exchange", "text"), ("routing_key", "text"), ("client", "text"),
    ("sent", "float"), ("received", "float"), ("started", "float"), ("succeeded", "float"),
    ("failed", "float"), ("retried", "float"), ("revoked", "float"), ("rejected", "float"),
    ("terminated", "bool"), ("expired", "bool"), ("signum", "int"), ("requeue", "bool"),
    ("last_seen", "float"), ("reconciled", "bool"), ("unknown_since", "float"),
    ("purged", "float"), ("note", "text"),
    ("n_started", "int"), ("n_retried", "int"), ("sent_attempt", "int"),
    ("received_attempt", "int"),
)
RECORD_FIELDS: Final[tuple[str, ...]] = tuple(name for name, _ in RECORD_COLUMNS)
#: Columns of ``tasks`` after the record's own: filled from the result backend, and the first /
#: latest event time (what ``--since`` and retention use).
EXTRA_COLUMNS: Final[tuple[tuple[str, str], ...]] = (
    ("backfilled", "bool"), ("first_time", "float"), ("last_time", "float"))
TASK_COLUMNS: Final[tuple[str, ...]] = RECORD_FIELDS + tuple(name for name, _ in EXTRA_COLUMNS)

_BOOL_INDEXES: Final = tuple(i for i, (_, kind) in enumerate(RECORD_COLUMNS) if kind == "bool")
_TIME_FIELDS: Final = ("sent", "received", "started", "succeeded", "failed", "retried",
                       "revoked", "rejected")
# Identity fields: the newer record's value when it has one, else the stored one.
_IDENTITY: Final = ("name", "args", "kwargs", "eta", "expires", "parent_id", "root_id", "queue",
                    "exchange", "routing_key", "client", "result", "runtime", "signum",
             "purged", "note")
_COUNTS: Final = ("retries", "n_started", "n_retried", "sent_attempt", "received_attempt")
#: Terminal states, strongest first (the same order as ``derive_state``).
TERMINAL_PRECEDENCE: Final = ("SUCCESS", "FAILURE", "REVOKED", "REJECTED")


def task_times(rec: TaskRecord) -> tuple[float | None, float | None]:
    """(first, last) event time of a record: what retention and ``--since`` queries use.
    A record with no event time (reconciled only) falls back to ``last_seen``."""
    times = [t for t in (rec.sent, rec.received, rec.started, rec.succeeded, rec.failed,
                         rec.retried, rec.revoked, rec.rejected) if t is not None]
    if not times:
        fallback = rec.last_seen or None
        return fallback, fallback
    return min(times), max(times)


# The columns are TaskRecord's fields in declaration order (checked here, once): a row is then
# ``msgspec.structs.astuple`` (C speed, one call) instead of 38 getattr calls.
_SAME_ORDER: Final = tuple(f.name for f in msgspec.structs.fields(TaskRecord)) == RECORD_FIELDS


def record_to_row(rec: TaskRecord, backfilled: bool = False) -> tuple[Any, ...]:
    """The ``tasks`` row of a record, in ``TASK_COLUMNS`` order."""
    first, last = task_times(rec)
    if _SAME_ORDER:
        return (*msgspec.structs.astuple(rec), backfilled, first, last)
    return (*(getattr(rec, name) for name in RECORD_FIELDS), backfilled, first, last)


def record_from_row(row: Sequence[Any]) -> tuple[TaskRecord, bool]:
    """A stored row back to (record, backfilled). SQLite gives booleans as 0/1."""
    values = list(row[: len(RECORD_FIELDS)])
    for i in _BOOL_INDEXES:
        values[i] = bool(values[i])
    if _SAME_ORDER:  # positional: 3-4x faster than by keyword (the dashboard reads pages)
        return TaskRecord(*values), bool(row[len(RECORD_FIELDS)])
    rec = TaskRecord(**dict(zip(RECORD_FIELDS, values, strict=True)))
    return rec, bool(row[len(RECORD_FIELDS)])


def _later(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if a >= b else b


def _terminal(*states: str) -> str | None:
    for state in TERMINAL_PRECEDENCE:
        if state in states:
            return state
    return None


def merge_records(stored: TaskRecord, new: TaskRecord) -> TaskRecord:
    """One record holding what both know: event times are the latest of the two, counters the
    larger, identity fields the newer record's unless it has none. The state is derived from
    the merged fields; a terminal state known only from the result backend (reconciled or
    backfilled, no event time) is kept. ``merge(a, b)`` and ``merge(b, a)`` give the same state.
    """
    out = msgspec.structs.replace(new)
    for name in _TIME_FIELDS:
        setattr(out, name, _later(getattr(stored, name), getattr(new, name)))
    for name in _IDENTITY:
        if getattr(out, name) is None:
            setattr(out, name, getattr(stored, name))
    for name in _COUNTS:
        setattr(out, name, max(getattr(stored, name), getattr(new, name)))
    out.terminated = stored.terminated or new.terminated
    out.expired = stored.expired or new.expired
    out.reconciled = stored.reconciled or new.reconciled
    out.last_seen = max(stored.last_seen, new.last_seen)
    if out.rejected is not None and stored.rejected == out.rejected:
        out.requeue = stored.requeue
    _merge_failure(out, stored, new)
    state = derive_state(out)
    if state not in READY_STATES:
        state = _terminal(stored.state, new.state) or state
    out.state = state
    out.worker = _merged_worker(out, stored, new)
    out.unknown_since = new.unknown_since if state not in READY_STATES else None
    return out


def _merge_failure(out: TaskRecord, stored: TaskRecord, new: TaskRecord) -> None:
    """The exception of the final failure, else of the latest retry."""
    if new.failed is not None and (stored.failed is None or new.failed >= stored.failed):
        source = new
    elif stored.failed is not None:
        source = stored
    elif new.retried is not None and (stored.retried is None or new.retried >= stored.retried):
        source = new
    else:
        source = stored
    out.exception = source.exception if source.exception is not None else (
        new.exception if new.exception is not None else stored.exception)
    out.traceback = source.traceback if source.traceback is not None else (
        new.traceback if new.traceback is not None else stored.traceback)


def _merged_worker(out: TaskRecord, stored: TaskRecord, new: TaskRecord) -> str | None:
    """The worker that finished the task, else the one that handled it last."""
    if out.state in READY_STATES:
        for rec in (new, stored):
            if rec.state == out.state and rec.worker:
                return rec.worker
    if new.worker and (stored.last_seen <= new.last_seen or not stored.worker):
        return new.worker
    return stored.worker or new.worker


def row_mapping(row: Sequence[Any]) -> Mapping[str, Any]:
    """A row as a dict by column name (for JSON output and tests)."""
    return dict(zip(TASK_COLUMNS, row, strict=False))
