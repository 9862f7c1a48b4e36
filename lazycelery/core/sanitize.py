"""Bounds on what an event may hold (nesting, integer size, finite numbers, string sizes) and the
per-kind counts of bad input that was skipped or repaired, reported at most every 10 s a kind.

One bad event costs one event: every reader decodes and checks each message and each event on
its own, counts what it skips or repairs here (``BadInput``), and never treats bad input as a
broker failure. The checks come in two layers, both shared by every ingest path:

* **bounds** (this module): a value nested deeper than ``DEPTH_MAX``, an integer outside 64
  bits, a float that is not finite, a string longer than ``STRING_MAX``. The fast paths get
  this for free from a typed msgspec decoder (``SCREEN``: same cost as untyped decoding); what
  it refuses, and everything on the kombu path, goes through ``clean_event`` in Python.
* **field types** (``lazycelery.core.model``): where the index reads a field it checks its type
  (a ``parent_id`` that is a list, a ``timestamp`` that is a string or out of range) and drops
  or replaces it, counting it here: those checks cost almost nothing because the index reads
  those values anyway.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Annotated, Any, Final, Union

import msgspec

__all__ = [
    "DEPTH_MAX",
    "KNOWN_FIELDS",
    "REPORT_EVERY",
    "SCREEN",
    "STRING_MAX",
    "TIME_MAX",
    "BadInput",
    "clean_event",
    "cut_text",
    "field_kind",
    "is_cut",
]

#: characters kept of one string in an event; longer ones are cut with a visible mark
#: (celery itself cuts args/kwargs/result reprs at 1024; tracebacks are sent whole)
STRING_MAX: Final = 65_536
#: containers inside one field's value (celery's own events have at most one: ``loadavg``)
DEPTH_MAX: Final = 8
#: field names longer than this are dropped (celery's longest is 14 characters)
KEY_MAX: Final = 256
INT_MIN: Final = -(1 << 63)
INT_MAX: Final = (1 << 63) - 1
#: sender times the index accepts (epoch seconds: 1970 to 2286); others are replaced by the
#: time the event was received
TIME_MAX: Final = 1e10
#: seconds between two stderr lines about the same kind of bad input
REPORT_EVERY: Final = 10.0

#: what ``cut_text`` appends (``{n}`` = characters cut); ``is_cut`` recognises it
CUT_MARK: Final = " … [{n} characters cut by lazycelery]"
_CUT_END: Final = " characters cut by lazycelery]"

#: every field celery puts in an event (CELERY-INTERNALS §1), plus what the receiver adds
KNOWN_FIELDS: Final = frozenset({
    "type", "hostname", "timestamp", "utcoffset", "pid", "clock", "local_received", "uuid",
    "name", "args", "kwargs", "root_id", "parent_id", "retries", "eta", "expires", "queue",
    "exchange", "routing_key", "result", "runtime", "exception", "traceback", "terminated",
    "signum", "expired", "requeue", "freq", "active", "processed", "loadavg", "sw_ident",
    "sw_ver", "sw_sys",
})
#: fields an event cannot do without: when one is out of bounds the event is skipped
#: (``clock`` too: the receiver's Lamport clock would take it over)
REQUIRED: Final = frozenset({"type", "uuid", "hostname", "clock"})

# kinds of bad input (one stderr line each); field problems are "bad field <name>"
INVALID_JSON: Final = "invalid JSON"
INVALID_UTF8: Final = "invalid UTF-8"
TOO_DEEP: Final = "too deep"
BAD_ENVELOPE: Final = "bad envelope"
BAD_BASE64: Final = "bad base64"
NOT_AN_EVENT: Final = "not an event"
UNSUPPORTED_CONTENT: Final = "unsupported content type"
UNSUPPORTED_ENCODING: Final = "unsupported body encoding"
BAD_COMPRESSION: Final = "undecodable compressed body"
APPLY_FAILED: Final = "failed to apply"
#: an error the decoder did not foresee (the message is skipped, never raised)
UNDECODABLE: Final = "undecodable message"

# --------------------------------------------------------------------------- the screen

_Str = Annotated[str, msgspec.Meta(max_length=STRING_MAX)]
_Int = Annotated[int, msgspec.Meta(ge=INT_MIN, le=INT_MAX)]
_Scalar = Union[_Str, _Int, float, bool, None]  # noqa: UP007 (msgspec needs a typing.Union)
# Keys are not bounded here (a bound on dict keys costs a third of the decoding): a long
# unknown field name reaches no record, and clean_event drops it on the general route.
_Event = dict[str, Union[_Scalar, list[_Scalar]]]  # noqa: UP007
#: A message body whose every value is within bounds: an event or a ``task.multi`` list of
#: them, values being scalars or lists of scalars (JSON has no NaN or Infinity). Same cost
#: as untyped decoding; it raises ``msgspec.ValidationError`` for anything else, which then
#: takes the general route (untyped decoding and ``clean_event``).
SCREEN: Final = msgspec.json.Decoder(Union[list[_Event], _Event])  # noqa: UP007


# --------------------------------------------------------------------------- counting


def field_kind(name: object) -> str:
    """``bad field timestamp``; names that are not celery's share one kind (bounded)."""
    return f"bad field {name}" if name in KNOWN_FIELDS else "bad field (other)"


class BadInput:
    """Counts of bad input by kind, with the latest detail of each; written by the ingest
    thread only. ``report`` turns new counts into stderr lines, one a kind per ``every`` s."""

    def __init__(self, every: float = REPORT_EVERY,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.every = every
        self.clock = clock
        #: how often each kind was seen (skipped or repaired)
        self.counts: dict[str, int] = {}
        #: how often each kind made an event or message be skipped whole
        self.skips: dict[str, int] = {}
        self.details: dict[str, str] = {}
        #: events or messages skipped whole
        self.skipped = 0
        #: fields dropped, replaced or cut in events that were applied
        self.repaired = 0
        #: True while some count has not been reported
        self.pending = False
        # kind -> (count, skips) at its last line, and when that was
        self._reported: dict[str, tuple[int, int, float]] = {}

    def skip(self, kind: str, detail: str | None = None) -> None:
        self.skipped += 1
        self.skips[kind] = self.skips.get(kind, 0) + 1
        self._count(kind, detail)

    def repair(self, kind: str, detail: str | None = None) -> None:
        self.repaired += 1
        self._count(kind, detail)

    def _count(self, kind: str, detail: str | None) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if detail:
            self.details[kind] = detail
        self.pending = True

    @property
    def total(self) -> int:
        return self.skipped + self.repaired

    def report(self, force: bool = False) -> list[str]:
        """One line per kind with new counts whose last line is ``every`` s old (or that
        never had one; all of them with ``force``): ``bad events: invalid JSON, 3 skipped``."""
        if not self.pending:
            return []
        now = self.clock()
        lines: list[str] = []
        waiting = False
        for kind, count in self.counts.items():
            done, done_skips, at = self._reported.get(kind, (0, 0, -math.inf))
            if count == done:
                continue
            if not force and now - at < self.every:
                waiting = True
                continue
            skips = self.skips.get(kind, 0)
            self._reported[kind] = (count, skips, now)
            detail = self.details.get(kind)
            what = f"{kind} ({detail})" if detail else kind
            new = _outcome(skips - done_skips, count - done - (skips - done_skips),
                           "more " if done else "")
            if done:
                lines.append(f"bad events: {what}, {new} ({count:,} in all)")
            else:
                lines.append(f"bad events: {what}, {new} (one line a kind every "
                             f"{self.every:.0f} s at most)")
        self.pending = waiting
        return lines


def _outcome(skipped: int, repaired: int, more: str) -> str:
    parts = [f"{n:,} {more}{verb}" for n, verb in ((skipped, "skipped"), (repaired, "repaired"))
             if n]
    return " and ".join(parts)


# --------------------------------------------------------------------------- cleaning


def _container_problem(value: list[Any] | dict[Any, Any], depth: int) -> str | None:
    if depth > DEPTH_MAX:
        return TOO_DEEP
    items = value.values() if value.__class__ is dict else value
    for item in items:
        cls = item.__class__
        if cls is list or cls is dict:
            problem = _container_problem(item, depth + 1)
        elif cls is str:
            problem = "string too long" if len(item) > STRING_MAX else None
        else:
            problem = _scalar_problem(item)
        if problem is not None:
            return problem
    return None


def _scalar_problem(value: Any) -> str | None:
    cls = value.__class__
    if cls is int:
        return None if INT_MIN <= value <= INT_MAX else "integer too large"
    if cls is float:
        return None if math.isfinite(value) else "not a finite number"
    return None  # bool, None, and what kombu's __type__ markers decode to (datetime, UUID ...)


_LONG: Final = "too long"


def _problem(value: Any) -> str | None:
    cls = value.__class__
    if cls is str:
        return _LONG if len(value) > STRING_MAX else None
    if cls is list or cls is dict:
        return _container_problem(value, 1)
    return _scalar_problem(value)


def clean_event(event: dict[str, Any], bad: BadInput) -> dict[str, Any] | None:
    """The event itself when every value is within bounds, else a copy with the offending
    fields dropped (strings cut), or None (counted) when a field in ``REQUIRED`` is bad.

    The Python route for what the typed ``SCREEN`` refused and for the kombu path; the fast
    paths never call it for what celery sends."""
    out: dict[str, Any] | None = None
    for key, value in event.items():
        problem = _problem(value)
        if problem is None and (key.__class__ is str and len(key) <= KEY_MAX):
            continue
        if out is None:
            out = dict(event)
        if key in REQUIRED:
            bad.skip(field_kind(key), problem)
            return None
        if problem is _LONG:
            out[key] = cut_text(value, keep_end=key == "traceback")
            bad.repair(f"long field {key} cut" if key in KNOWN_FIELDS else "long field cut")
        else:
            del out[key]
            bad.repair(field_kind(key), problem or "name too long")
    return event if out is None else out


def cut_text(text: str, keep_end: bool = False, limit: int = STRING_MAX) -> str:
    """``text`` cut to about ``limit`` characters with a mark saying how many were cut; with
    ``keep_end`` the middle goes (a traceback's last lines name the exception)."""
    if len(text) <= limit:
        return text
    cut = len(text) - limit
    mark = CUT_MARK.format(n=f"{cut:,}")
    if keep_end:
        head = limit // 4
        return text[:head] + mark + " … " + text[head + cut:]
    return text[:limit] + mark


def is_cut(text: str) -> bool:
    """True for a string ``cut_text`` shortened at its end (args, kwargs, result)."""
    return text.endswith(_CUT_END)
