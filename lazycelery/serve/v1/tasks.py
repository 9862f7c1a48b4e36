"""``GET /api/v1/tasks`` and ``/api/v1/tasks/{id}``: tasks matching the filter language, newest
activity first, from memory and then from the history store, paged by an opaque cursor; one
task with its history, transitions and children.

A page is memory's matches first; once memory has no more, the cursor moves into the store
(tasks still in memory are skipped there: memory's copy is the live one). The store is read
page by page and filtered with the same predicate, at most ``STORE_SCAN`` rows per request: a
rare filter returns a short page and a cursor to go on, never a request that runs for minutes."""

from __future__ import annotations

import base64
import binascii
import heapq
import itertools
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from lazycelery.core.index import TaskIndex
from lazycelery.core.model import TaskRecord
from lazycelery.core.query import FilterError, Predicate, compile_filter
from lazycelery.serve import params
from lazycelery.serve.errors import bad_param
from lazycelery.serve.v1.query import v1_int

__all__ = ["MAX_LIMIT", "Cursor", "TaskPage", "compile_q", "memory_page", "parse_cursor",
           "record_dict", "record_json", "scan_page", "store_page"]

DEFAULT_LIMIT: Final = 100
MAX_LIMIT: Final = 1000
#: store rows read (and filtered) per request at most
STORE_SCAN: Final = 20_000
_STORE_BATCH: Final = 500
#: records read newest first under the index lock for one page before ``memory_page`` (a
#: copy, off the lock) takes over: ~1-3 ms of lock at most
SCAN_BUDGET: Final = 5_000
_LAST_SEEN = operator.attrgetter("last_seen")

_cursor_encoder = msgspec.json.Encoder()
_record_encoder = msgspec.json.Encoder()


@dataclass(frozen=True)
class Cursor:
    """Where the next page starts: after (``time``, ``key``) in memory (``key`` the uuid) or
    in the store (``key`` the row id)."""

    source: str  # "memory" | "store"
    time: float
    key: str | int

    def encode(self) -> str:
        raw = _cursor_encoder.encode([self.source, self.time, self.key])
        return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


@dataclass(frozen=True)
class TaskPage:
    records: list[TaskRecord]
    next: Cursor | None
    #: records read from the store for this page (not counting those filtered out)
    from_store: int = 0


def parse_cursor(text: str | None) -> Cursor | None:
    if not text:
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        source, time_, key = msgspec.json.decode(raw)
        if source not in ("memory", "store") or not isinstance(time_, (int, float)) \
                or not isinstance(key, (str, int)) or isinstance(key, bool):
            raise ValueError(source)
        if (source == "memory") != isinstance(key, str):
            raise ValueError(key)
    except (binascii.Error, ValueError, TypeError, msgspec.DecodeError):
        raise bad_param("cursor", "not a cursor this API returned") from None
    return Cursor(source, float(time_), key)


def compile_q(query: Any) -> Predicate | None:
    text = params.text(query, "q")
    if text is None or not text.strip():
        return None
    try:
        return compile_filter(text)
    except FilterError as exc:
        raise bad_param("q", str(exc)) from None


def limit_of(query: Any) -> int:
    """``limit``: 1 .. MAX_LIMIT; larger is capped (as documented), not refused."""
    return v1_int(query, "limit", DEFAULT_LIMIT, minimum=1, cap=MAX_LIMIT)


def _key(rec: TaskRecord) -> tuple[float, str]:
    return (rec.last_seen, rec.uuid)


def scan_page(index: TaskIndex, pred: Predicate | None, after: Cursor | None,
              limit: int, budget: int = SCAN_BUDGET) -> tuple[list[TaskRecord], bool] | None:
    """``memory_page`` read newest first under the index lock, stopping once the page (and
    every record tying with its last one) is found: O(limit) for the default page, O(depth)
    for a cursor or a rare filter. None when ``budget`` records did not hold the page (then
    ``memory_page`` works on a copy, off the lock). Cheap enough for the event loop."""
    want = limit + 1
    bound = None if after is None else (after.time, str(after.key))
    out: list[TaskRecord] = []
    edge: float | None = None  # last_seen of the want-th match: its ties are still taken
    with index.lock:
        # each pool is in last_seen order (the index keeps it so): the merge is newest first
        for seen, rec in enumerate(index.iter_newest(), 1):
            t = rec.last_seen
            if edge is not None and t < edge:
                break
            if seen > budget:
                return None
            if bound is not None and (t, rec.uuid) >= bound:
                continue
            if pred is None or pred(rec):
                out.append(rec)
                if edge is None and len(out) >= want:
                    edge = t
    out.sort(key=_key, reverse=True)
    return out[:limit], len(out) > limit


def memory_page(index: TaskIndex, pred: Predicate | None, after: Cursor | None,
                limit: int) -> tuple[list[TaskRecord], bool]:
    """Up to ``limit`` matches older than ``after`` (newest first), and whether memory holds
    more. O(n) over memory: the records are referenced, not copied, outside the lock; the
    ``limit + 1``-th newest time is found over the bare floats (C, no key call per record),
    only the records at or past it are sorted by (time, uuid)."""
    records = index.records()
    if pred is not None:
        records = pred.filter(records)
    if after is not None:
        bound = (after.time, str(after.key))
        records = [r for r in records if _key(r) < bound]
    want = limit + 1
    if len(records) > want:
        times = list(map(_LAST_SEEN, records))
        # the records come roughly oldest first: read backwards, the heap rarely moves
        edge = heapq.nlargest(want, reversed(times))[-1]
        records = list(itertools.compress(records, map(operator.le, itertools.repeat(edge),
                                                       times)))
    top = sorted(records, key=_key, reverse=True)[:want]
    return top[:limit], len(top) > limit


def store_page(open_store: Callable[[], Any], index: TaskIndex, pred: Predicate | None,
               after: Cursor | None, limit: int) -> tuple[list[TaskRecord], Cursor | None]:
    """Up to ``limit`` stored matches not in memory, after ``after``; the cursor to go on
    (None: the store has no more). Blocks: run it in a thread."""
    from lazycelery.store import query as stored

    since, until = pred.time_range if pred is not None else (None, None)
    flt = stored.TaskFilter(since=since, until=until)
    before = (after.time, int(after.key)) if after is not None else None
    store = open_store()
    out: list[TaskRecord] = []
    scanned = 0
    try:
        while len(out) < limit and scanned < STORE_SCAN:
            page = stored.page(store, flt, before, _STORE_BATCH)
            taken = 0
            for found in page.tasks:
                taken += 1
                before = found.cursor
                if found.record.uuid in index or (pred is not None and not pred(found.record)):
                    continue
                out.append(found.record)
                if len(out) >= limit:
                    break
            scanned += taken
            if page.next is None and taken == len(page.tasks):
                return out, None  # the store has no more
    finally:
        store.close()
    return out, None if before is None else Cursor("store", before[0], before[1])


def record_dict(rec: TaskRecord, children: list[str]) -> dict[str, Any]:
    """A task as the v1 API shows it: every field of lazycelery's record (the same shape a
    remote viewer rebuilds its record from), its children, and ``timestamp``."""
    out: dict[str, Any] = msgspec.to_builtins(rec)
    out["children"] = children
    out["timestamp"] = rec.timestamp
    return out


def record_json(rec: TaskRecord, children: list[str]) -> msgspec.Raw:
    """``record_dict`` already encoded: the record's own JSON (msgspec, in C, field order)
    with ``children`` and ``timestamp`` appended; it goes into a response as it is. A page's
    records cost half what building and encoding their dicts did."""
    encode = _record_encoder.encode
    body = encode(rec)
    return msgspec.Raw(b'%s,"children":%s,"timestamp":%s}' % (
        body[:-1], encode(children), encode(rec.timestamp)))
