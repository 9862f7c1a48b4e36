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

Nothing here imports celery, kombu or redis at module level; ``run()`` imports the config and the
ingest modules when the command actually runs.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import fnmatch
import os
import re
import select
import shutil
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import IO, Any, Final, Protocol, TextIO

import msgspec

from lazycelery.core.index import DEFAULT_MAX_TASKS, TaskIndex
from lazycelery.core.model import STATES, TaskRecord, WorkerRecord
from lazycelery.core.query import Predicate, compile_filter
from lazycelery.errors import UsageError

__all__ = [
    "JSON_KEYS",
    "KNOWN_TYPES",
    "MAX_PENDING_BYTES",
    "MAX_PENDING_LINES",
    "EventFilter",
    "Fatal",
    "Gap",
    "JsonFormatter",
    "LineBuffer",
    "Notice",
    "StatusReporter",
    "TailEvent",
    "TailIndex",
    "TailSink",
    "TextFormatter",
    "filter_from_args",
    "follow",
    "run",
    "use_color",
]

#: Event types Celery itself sends (CELERY-INTERNALS §1). Others (custom task events) pass too.
KNOWN_TYPES: Final = (
    "task-sent", "task-received", "task-started", "task-succeeded", "task-failed",
    "task-retried", "task-revoked", "task-rejected", "task-cancelled",
    "worker-online", "worker-heartbeat", "worker-offline",
)
HEARTBEAT: Final = "worker-heartbeat"

#: Keys present on every ``--json`` line, in this order; the event's other fields follow.
JSON_KEYS: Final = (
    "type", "time", "timestamp", "local_received", "hostname", "worker", "uuid", "name", "state",
    "args", "kwargs", "retries", "parent_id", "root_id", "queue",
    "args_truncated", "kwargs_truncated", "result_truncated",
)
# Computed by tail: an event field of the same name (there is none in Celery's events) is ignored.
_DERIVED_KEYS: Final = frozenset({
    "time", "worker", "state", "args_truncated", "kwargs_truncated", "result_truncated",
})

#: Bounds of the backlog between the ingest thread and the writer (see the module docstring).
MAX_PENDING_LINES: Final = 100_000
MAX_PENDING_BYTES: Final = 64 * 1024 * 1024


# --------------------------------------------------------------------------- enriched events


class TailEvent(msgspec.Struct, frozen=True):
    """One event plus what the index knew about its task right after it was applied.

    A frozen msgspec Struct rather than a frozen dataclass: one is built per event on the
    ingest thread, and the dataclass ``__init__`` costs four times as much."""

    event: Mapping[str, Any]
    type: str
    uuid: str | None = None
    name: str | None = None
    state: str | None = None
    worker: str | None = None
    args: str | None = None
    kwargs: str | None = None
    retries: int | None = None
    parent_id: str | None = None
    root_id: str | None = None
    queue: str | None = None
    args_truncated: bool = False
    kwargs_truncated: bool = False
    result_truncated: bool = False

    @property
    def hostname(self) -> str | None:
        host = self.event.get("hostname")
        return host if isinstance(host, str) else None

    @property
    def timestamp(self) -> float | None:
        """The sender's epoch time, else the local receive time (None if neither is a number)."""
        for key in ("timestamp", "local_received"):
            value = self.event.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
        return None


# (state, worker, retries) of a task right after one event
_After = tuple[str, str | None, int]


class TailIndex(TaskIndex):
    """A TaskIndex that remembers each task's state right after every event of the last batch.

    The ingest thread applies a whole batch before ``on_batch`` runs, so a record touched twice
    in one batch (received and started often travel in the same ``task.multi`` message) would
    only show its final state, and ``--state SUCCESS`` would print the task-received line of a
    task that succeeded a millisecond later. Tail has no other reader of the index, so applying
    the events one at a time through the public API costs one uncontended lock per event.
    """

    def __init__(self, max_tasks: int = DEFAULT_MAX_TASKS,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(max_tasks, clock=clock)
        self._after: list[_After | None] = []

    def apply_batch(self, events: Iterable[Mapping[str, Any]]) -> list[TaskRecord | WorkerRecord | None]:
        touched: list[TaskRecord | WorkerRecord | None] = []
        after: list[_After | None] = []
        for event in events:
            rec = super().apply_batch((event,))[0]
            touched.append(rec)
            after.append((rec.state, rec.worker, rec.retries)
                         if isinstance(rec, TaskRecord) else None)
        self._after = after
        return touched

    def take_after(self, count: int) -> list[_After | None] | None:
        """The per-event snapshots of the last batch, if it had ``count`` events."""
        after, self._after = self._after, []
        return after if len(after) == count else None


def enrich(event: Mapping[str, Any], record: TaskRecord | WorkerRecord | None,
           after: _After | None) -> TailEvent | None:
    """Combine an event with its record; None for an event without a string ``type``."""
    kind = event.get("type")
    if not isinstance(kind, str):
        return None
    if isinstance(record, TaskRecord):
        state, worker, retries = after if after is not None else (
            record.state, record.worker, record.retries)
        return TailEvent(
            event=event, type=kind, uuid=record.uuid, name=record.name, state=state,
            worker=worker, args=record.args, kwargs=record.kwargs, retries=retries,
            parent_id=record.parent_id, root_id=record.root_id, queue=record.queue,
            args_truncated=record.args_truncated, kwargs_truncated=record.kwargs_truncated,
            result_truncated="result" in event and record.result_truncated,
        )
    if isinstance(record, WorkerRecord):
        return TailEvent(event=event, type=kind, worker=record.hostname)
    uuid = event.get("uuid")
    host = event.get("hostname")
    return TailEvent(event=event, type=kind, uuid=uuid if isinstance(uuid, str) else None,
                     worker=host if isinstance(host, str) and kind.startswith("worker-") else None)


# --------------------------------------------------------------------------- filters


def _glob_regex(patterns: Sequence[str], ignore_case: bool = False) -> re.Pattern[str] | None:
    if not patterns:
        return None
    flags = re.IGNORECASE if ignore_case else 0
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns), flags)


@dataclass(frozen=True)
class EventFilter:
    """What ``--type/--state/--name/--worker/--task-id/--heartbeats`` select.

    Different options are AND-ed; the values of one repeated option are OR-ed. ``--state``,
    ``--name`` and ``--task-id`` select task events only (worker events have none of them).
    worker-heartbeat is hidden unless ``heartbeats`` is set or a ``--type`` pattern names it.
    """

    types: tuple[str, ...] = ()
    states: frozenset[str] = frozenset()
    names: tuple[str, ...] = ()
    workers: tuple[str, ...] = ()
    task_ids: tuple[str, ...] = ()
    heartbeats: bool = False
    #: the dashboard's filter language (``--filter``), evaluated on the task's record
    query: Predicate | None = None
    _type_re: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    _name_re: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    _worker_re: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    _type_cache: dict[str, bool] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_type_re", _glob_regex(self.types, ignore_case=True))
        object.__setattr__(self, "_name_re", _glob_regex(self.names))
        object.__setattr__(self, "_worker_re", _glob_regex(self.workers))
        object.__setattr__(self, "_type_cache", {})
        object.__setattr__(self, "task_ids", tuple(t.lower() for t in self.task_ids))
        object.__setattr__(self, "states", frozenset(s.upper() for s in self.states))

    @property
    def shows_heartbeats(self) -> bool:
        return self.heartbeats or any("heartbeat" in t.lower() for t in self.types)

    def type_matches(self, kind: str) -> bool:
        """The type test alone (cached: there are few distinct types), run before enriching."""
        hit = self._type_cache.get(kind)
        if hit is None:
            if kind == HEARTBEAT and not self.shows_heartbeats:
                hit = False
            else:
                hit = self._type_re is None or self._type_re.match(kind) is not None
            if len(self._type_cache) < 1024:
                self._type_cache[kind] = hit
        return hit

    def matches(self, item: TailEvent) -> bool:
        if not self.type_matches(item.type):
            return False
        if self.states and (item.state is None or item.state not in self.states):
            return False
        if self._name_re is not None and (item.name is None
                                          or self._name_re.match(item.name) is None):
            return False
        if self.task_ids and (item.uuid is None
                              or not item.uuid.lower().startswith(self.task_ids)):
            return False
        if self._worker_re is not None:
            hosts = (item.worker, item.hostname)
            if not any(h is not None and self._worker_re.match(h) for h in hosts):
                return False
        return True


def _split_states(values: Sequence[str] | None) -> frozenset[str]:
    states: set[str] = set()
    for value in values or ():
        for part in value.split(","):
            part = part.strip().upper()
            if not part:
                continue
            if part not in STATES:
                raise UsageError(f"unknown state {part!r} for --state; "
                                 f"choose from {', '.join(STATES)}")
            states.add(part)
    return frozenset(states)


def type_warnings(patterns: Sequence[str]) -> list[str]:
    """Warnings for ``--type`` values that are no Celery event type (custom ones may exist)."""
    out = []
    for pattern in patterns:
        if any(ch in pattern for ch in "*?[") or pattern.lower() in KNOWN_TYPES:
            continue
        close = difflib.get_close_matches(pattern.lower(), KNOWN_TYPES, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        out.append(f"--type {pattern}: Celery sends no such event{hint}; "
                   "showing it if a custom event of that type arrives")
    return out


def filter_from_args(args: argparse.Namespace) -> EventFilter:
    text = getattr(args, "query", None)
    return EventFilter(
        query=compile_filter(text) if text else None,
        types=tuple(getattr(args, "type", None) or ()),
        states=_split_states(getattr(args, "state", None)),
        names=tuple(getattr(args, "name", None) or ()),
        workers=tuple(getattr(args, "worker", None) or ()),
        task_ids=tuple(getattr(args, "task_id", None) or ()),
        heartbeats=bool(getattr(args, "heartbeats", False)),
    )


# --------------------------------------------------------------------------- formatting


class Formatter(Protocol):
    def format(self, item: TailEvent) -> bytes: ...


def use_color(stream: IO[Any], no_color: bool, environ: Mapping[str, str] | None = None) -> bool:
    """Colour only on a terminal, and never with ``--no-color``, ``NO_COLOR`` or ``TERM=dumb``."""
    env = os.environ if environ is None else environ
    if no_color or env.get("NO_COLOR") or env.get("TERM") == "dumb":
        return False
    return _isatty(stream)


# ANSI SGR codes by the state an event type leads to (colour names, so light and dark themes work)
_TYPE_COLORS: Final[Mapping[str, str]] = {
    "task-sent": "2", "task-received": "34", "task-started": "36", "task-succeeded": "32",
    "task-failed": "1;31", "task-retried": "33", "task-revoked": "35", "task-rejected": "31",
    "task-cancelled": "33", "worker-online": "32", "worker-offline": "1;31", HEARTBEAT: "2",
}
_SUMMARY_COLORS: Final[Mapping[str, str]] = {"task-failed": "31", "task-retried": "33"}
_DIM: Final = "2"

# Control characters in names, args or results must not reach the terminal (escape sequences).
_CONTROL: Final[dict[int, str]] = {
    code: f"\\x{code:02x}" for code in (*range(0x00, 0x20), *range(0x7F, 0xA0))
}
_EVENT_BASE_KEYS: Final = frozenset({
    "type", "hostname", "timestamp", "utcoffset", "pid", "clock", "local_received", "uuid",
})


def _clock_text(ts: float | None) -> str:
    if ts is None:
        return "--:--:--.---"
    try:
        lt = time.localtime(ts)
    except (OverflowError, ValueError, OSError):
        return "--:--:--.---"
    return f"{lt.tm_hour:02d}:{lt.tm_min:02d}:{lt.tm_sec:02d}.{int(ts * 1000) % 1000:03d}"


def _runtime_text(value: Any) -> str | None:
    """``98µs``, ``23.0ms``, ``1.23s``, ``95s``: short, and never in exponent notation."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value:
        return None
    if value < 0.001:
        return f"{value * 1e6:.0f}µs"
    if value < 1:
        return f"{value * 1e3:.1f}ms"
    if value < 60:
        return f"{value:.2f}s"
    return f"{value:.0f}s"


def _signal_name(signum: Any) -> str:
    if isinstance(signum, int):
        try:
            return signal.Signals(signum).name
        except ValueError:
            return f"signal {signum}"
    return ""


def _summary(item: TailEvent) -> str:
    """The last column of a text line: what this event says, in a few words."""
    event, kind = item.event, item.type
    if kind == "task-succeeded":
        runtime = _runtime_text(event.get("runtime"))
        parts = [runtime] if runtime else []
        if "result" in event:
            parts.append(f"-> {event.get('result')}")
        return " ".join(parts)
    if kind in ("task-failed", "task-retried"):
        return str(event.get("exception") or "")
    if kind in ("task-received", "task-sent"):
        return _call_text(item)
    if kind == "task-revoked":
        if event.get("terminated"):
            sig = _signal_name(event.get("signum"))
            return f"terminated ({sig})" if sig else "terminated"
        return "expired" if event.get("expired") else "revoked"
    if kind == "task-rejected":
        return "requeued" if event.get("requeue") else "rejected"
    if kind.startswith("worker-"):
        return _worker_text(event)
    if kind in ("task-started", "task-cancelled"):
        return ""
    extra = [f"{k}={v}" for k, v in event.items() if k not in _EVENT_BASE_KEYS]
    return " ".join(extra)


def _call_text(item: TailEvent) -> str:
    event = item.event
    args = event.get("args", item.args)
    kwargs = event.get("kwargs", item.kwargs)
    parts = [f"args={args}" if args is not None else ""]
    if kwargs not in (None, "{}"):
        parts.append(f"kwargs={kwargs}")
    retries = event.get("retries")
    if isinstance(retries, int) and retries > 0:
        parts.append(f"retries={retries}")
    for key in ("eta", "expires"):
        if event.get(key):
            parts.append(f"{key}={event.get(key)}")
    return " ".join(p for p in parts if p)


def _worker_text(event: Mapping[str, Any]) -> str:
    parts = []
    for key in ("active", "processed"):
        if key in event:
            parts.append(f"{key}={event.get(key)}")
    load = event.get("loadavg")
    if isinstance(load, (list, tuple)):
        parts.append("load=" + ",".join(str(x) for x in load))
    if not parts and event.get("freq") is not None:
        parts.append(f"freq={event.get('freq')}")
    return " ".join(parts)


class TextFormatter:
    """``HH:MM:SS.mmm  type  name  short-id  worker  summary``, coloured or plain.

    The name and worker columns widen to the longest value seen (up to a cap) so columns line
    up. On a terminal (``width`` set) the summary is cut to fit the line; piped output keeps it
    whole. Used from one thread at a time (the ingest thread); ``width`` may be reassigned from
    the main thread on SIGWINCH.
    """

    NAME_MAX: Final = 40
    WORKER_MAX: Final = 32

    def __init__(self, color: bool = False, width: int | None = None,
                 encoding: str = "utf-8") -> None:
        self.color = color
        self.width = width
        self.encoding = encoding
        self._name_w = 16
        self._worker_w = 12

    def _paint(self, text: str, code: str | None) -> str:
        if not self.color or not code or not text:
            return text
        return f"\x1b[{code}m{text}\x1b[0m"

    def format(self, item: TailEvent) -> bytes:
        return (self.format_text(item) + "\n").encode(self.encoding, "backslashreplace")

    def format_text(self, item: TailEvent) -> str:
        kind = item.type.translate(_CONTROL)
        name = (item.name or "-").translate(_CONTROL)
        short = item.uuid[:8].translate(_CONTROL) if item.uuid else "-"
        worker = (item.worker or "-").translate(_CONTROL)
        if len(name) > self._name_w:
            self._name_w = min(len(name), self.NAME_MAX)
        if len(worker) > self._worker_w:
            self._worker_w = min(len(worker), self.WORKER_MAX)
        cols = [
            (_clock_text(item.timestamp), 12, _DIM),
            (kind, 16, _TYPE_COLORS.get(item.type)),
            (name, self._name_w, None),
            (short, 8, _DIM),
            (worker, self._worker_w, None),
        ]
        plain_len = sum(max(len(text), width) + 1 for text, width, _ in cols)
        prefix = " ".join(self._paint(text.ljust(width), code) for text, width, code in cols)
        summary = _summary(item).translate(_CONTROL)
        width = self.width
        if width is not None and summary:
            room = max(width - plain_len - 1, 12)
            if len(summary) > room:
                summary = summary[: room - 1] + "…"
        if not summary:
            return prefix.rstrip()
        return f"{prefix} {self._paint(summary, _SUMMARY_COLORS.get(item.type))}"


def _json_fallback(value: Any) -> Any:
    # msgspec already writes datetime/date/time (ISO 8601), timedelta (ISO 8601 duration),
    # Decimal and UUID (strings), bytes (base64), sets and tuples (arrays), NaN/inf (null).
    return str(value)


def _json_clean(value: Any) -> Any:
    """Make what msgspec refused encodable: string keys and strings without lone surrogates."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, Mapping):
        return {_json_clean(k if isinstance(k, str) else str(k)): _json_clean(v)
                for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_json_clean(v) for v in value]
    return value


_ZONES: dict[int, timezone] = {}


def _iso_time(ts: float | None) -> str | None:
    """Local ISO 8601 time with its UTC offset (DST-correct: the offset is looked up per time)."""
    if ts is None:
        return None
    try:
        offset = time.localtime(ts).tm_gmtoff
        zone = _ZONES.get(offset)
        if zone is None:
            zone = _ZONES.setdefault(offset, timezone(timedelta(seconds=offset)))
        return datetime.fromtimestamp(ts, zone).isoformat(timespec="milliseconds")
    except (OverflowError, ValueError, OSError):
        return None


class JsonFormatter:
    """One JSON object per line: ``JSON_KEYS`` first (always present), then the event's fields.

    The event's own value wins for a key it carries (unless it is null), except for the keys
    tail computes (``time``, ``worker``, ``state``, the ``*_truncated`` flags).
    """

    def format(self, item: TailEvent) -> bytes:
        return self.encode(self.document(item))

    def document(self, item: TailEvent) -> dict[str, Any]:
        event = item.event
        ts = item.timestamp
        doc: dict[str, Any] = {
            "type": item.type,
            "time": _iso_time(ts),
            "timestamp": event.get("timestamp"),
            "local_received": event.get("local_received"),
            "hostname": event.get("hostname"),
            "worker": item.worker,
            "uuid": item.uuid,
            "name": item.name,
            "state": item.state,
            "args": item.args,
            "kwargs": item.kwargs,
            "retries": item.retries,
            "parent_id": item.parent_id,
            "root_id": item.root_id,
            "queue": item.queue,
            "args_truncated": item.args_truncated,
            "kwargs_truncated": item.kwargs_truncated,
            "result_truncated": item.result_truncated,
        }
        for key, value in event.items():
            if key in _DERIVED_KEYS:
                continue
            if value is None and doc.get(key) is not None:
                continue
            doc[key] = value
        return doc

    @staticmethod
    def encode(doc: Mapping[str, Any]) -> bytes:
        try:
            return msgspec.json.encode(doc, enc_hook=_json_fallback) + b"\n"
        except (TypeError, ValueError, UnicodeError, msgspec.EncodeError):
            return msgspec.json.encode(_json_clean(doc), enc_hook=_json_fallback) + b"\n"


# --------------------------------------------------------------------------- hand-off buffer


@dataclass(frozen=True, slots=True)
class Notice:
    """A line for stderr (never dropped)."""

    text: str


@dataclass(frozen=True, slots=True)
class Gap:
    """``count`` matching events were dropped here because the writer fell behind."""

    count: int


@dataclass(frozen=True, slots=True)
class Fatal:
    """The event stream ended on its own: print ``text`` and exit with status 2."""

    text: str


Item = bytes | Notice | Gap | Fatal


class LineBuffer:
    """A bounded queue of encoded lines from the ingest thread to the writer (main thread).

    ``put_lines`` never blocks: past ``max_lines`` or ``max_bytes`` pending, new lines are
    dropped and counted until the backlog is down to half, and a ``Gap`` marker is queued
    before the next line kept, so the writer reports each run of drops once, where it
    happened. Notices are never dropped (they are rare: one per connection state change).

    The writer waits in ``wait()`` on a self-pipe and, when given, on stdout itself: poll()
    reports POLLERR/POLLHUP on a pipe whose reader has gone (``| head -1``), so tail exits then
    instead of at its next write, which on a quiet cluster could be minutes later.
    """

    def __init__(self, max_lines: int = MAX_PENDING_LINES, max_bytes: int = MAX_PENDING_BYTES,
                 watch_fd: int | None = None) -> None:
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._items: deque[Item] = deque()
        self._lines = 0
        self._bytes = 0
        self._dropping = 0
        self.dropped_total = 0
        self._signalled = False
        self._poll: Any = None
        self._wake_r = self._wake_w = -1
        self._event = threading.Event()
        self._watch_fd = watch_fd
        if hasattr(select, "poll"):
            self._wake_r, self._wake_w = os.pipe()
            os.set_blocking(self._wake_r, False)
            os.set_blocking(self._wake_w, False)
            self._poll = select.poll()
            self._poll.register(self._wake_r, select.POLLIN)
            if watch_fd is not None:
                self._poll.register(watch_fd, 0)  # POLLERR / POLLHUP / POLLNVAL are always reported
        self.output_closed = False

    # -- ingest thread side

    def put_lines(self, lines: Sequence[bytes]) -> int:
        """Queue what fits; returns how many lines were queued (the rest were dropped).

        Once full, the buffer keeps dropping until the writer has worked it down to half, so
        an overload is reported as a few large gaps rather than one per line written."""
        queued = 0
        with self._lock:
            for line in lines:
                if self._dropping:
                    if self._lines > self.max_lines // 2 or self._bytes > self.max_bytes // 2:
                        self._dropping += 1
                        self.dropped_total += 1
                        continue
                    self._items.append(Gap(self._dropping))
                    self._dropping = 0
                if self._lines >= self.max_lines or self._bytes + len(line) > self.max_bytes:
                    self._dropping = 1
                    self.dropped_total += 1
                    continue
                self._items.append(line)
                self._lines += 1
                self._bytes += len(line)
                queued += 1
            self._wake()
        return queued

    def put(self, item: Notice | Fatal) -> None:
        with self._lock:
            self._items.append(item)
            self._wake()

    def _wake(self) -> None:  # with the lock held
        if self._signalled or not self._items:
            return
        self._signalled = True
        if self._wake_w >= 0:
            with contextlib.suppress(OSError):  # full pipe: a wakeup is pending anyway
                os.write(self._wake_w, b"x")
        else:
            self._event.set()

    # -- writer side

    def take(self, max_items: int = 4096) -> list[Item]:
        """Up to ``max_items`` pending items, oldest first; a run of drops with nothing queued
        after it comes last as a ``Gap``. Taking in chunks keeps what the writer holds small."""
        with self._lock:
            items: list[Item] = []
            pop = self._items.popleft
            while self._items and len(items) < max_items:
                item = pop()
                if isinstance(item, bytes):
                    self._lines -= 1
                    self._bytes -= len(item)
                items.append(item)
            if self._dropping and not self._items:
                items.append(Gap(self._dropping))
                self._dropping = 0
            if not self._items:
                self._signalled = False
                self._drain_wakeups()
        return items

    def _drain_wakeups(self) -> None:  # with the lock held
        if self._wake_r < 0:
            self._event.clear()
            return
        try:
            while os.read(self._wake_r, 4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def wait(self, timeout: float | None) -> None:
        """Return when items are pending, after ``timeout`` s, or when stdout's reader is gone
        (then ``output_closed`` is set). May return early; callers re-check."""
        if self._poll is None:
            self._event.wait(timeout)
            return
        ms = None if timeout is None else max(0, int(timeout * 1000 + 0.999))
        for fd, flags in self._poll.poll(ms):
            if fd == self._watch_fd and flags & (select.POLLERR | select.POLLHUP | select.POLLNVAL):
                self.output_closed = True

    def close(self) -> None:
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1
        self._poll = None


# --------------------------------------------------------------------------- connection status


class GapInfo(Protocol):
    @property
    def seconds(self) -> float: ...


class StatusInfo(Protocol):
    """The fields of ``lazycelery.core.ingest.IngestStatus`` that tail reads."""

    @property
    def state(self) -> str: ...
    @property
    def attempt(self) -> int: ...
    @property
    def next_retry_in(self) -> float | None: ...
    @property
    def last_error(self) -> str | None: ...
    @property
    def gap(self) -> GapInfo | None: ...


def _url_secrets(url: str) -> list[str]:
    """Passwords in a broker URL (or a ``;``-separated list of them), to scrub from errors."""
    from urllib.parse import unquote, urlsplit

    secrets: list[str] = []
    for part in url.split(";"):
        try:
            password = urlsplit(part.strip()).password
        except ValueError:
            continue
        if password:
            secrets.extend({password, unquote(password)})
    return sorted(secrets, key=len, reverse=True)


class StatusReporter:
    """Turns ingest status updates into one stderr line per change of connection state.

    connecting -> connected is silent; connected -> reconnecting says ``connection lost``; a
    first connection that fails says ``cannot connect``; further attempts add nothing (their
    number and the latest error are in the ingest status, not worth a line each);
    reconnecting -> connected says how long the gap was. A ``stopped`` status that tail did not
    ask for is fatal.
    """

    def __init__(self, masked_url: str, broker_url: str = "",
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.masked_url = masked_url
        self._secrets = _url_secrets(broker_url)
        self._clock = clock
        self._ever_connected = False
        self._trouble_since: float | None = None
        self.stopping = False

    def _scrub(self, text: str | None) -> str:
        text = " ".join((text or "unknown error").split())
        for secret in self._secrets:
            text = text.replace(secret, "********")
        return text

    def _retry_text(self, status: StatusInfo) -> str:
        nxt = status.next_retry_in
        when = f", next try in {nxt:.1f} s" if nxt is not None else ""
        return f"attempt {status.attempt}{when}"

    def update(self, status: StatusInfo) -> Notice | Fatal | None:
        state = status.state
        if state == "connected":
            return self._connected(status)
        if state == "reconnecting":
            return self._reconnecting(status)
        if state == "stopped" and not self.stopping:
            error = self._scrub(status.last_error) if status.last_error else "no reason given"
            return Fatal(f"event stream stopped: {error}")
        return None  # "connecting" (the first attempt, or one more attempt) changes nothing

    def _connected(self, status: StatusInfo) -> Notice | None:
        since, self._trouble_since = self._trouble_since, None
        first, self._ever_connected = not self._ever_connected, True
        if since is None:
            return None
        gap = status.gap.seconds if status.gap is not None else self._clock() - since
        if first:
            return Notice(f"connected to {self.masked_url} after {gap:.1f} s")
        reason = getattr(status.gap, "reason", None)
        why = f" ({self._scrub(reason)})" if isinstance(reason, str) and reason else ""
        return Notice(f"reconnected after {gap:.1f} s gap{why}")

    def _reconnecting(self, status: StatusInfo) -> Notice | None:
        if self._trouble_since is not None:
            return None  # one more attempt is no change of state
        self._trouble_since = self._clock()
        error = self._scrub(status.last_error)
        retry = self._retry_text(status)
        if self._ever_connected:
            return Notice(f"connection lost ({error}); reconnecting ({retry})")
        return Notice(f"cannot connect to {self.masked_url} ({error}); retrying ({retry})")


# --------------------------------------------------------------------------- the ingest-side sink


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
                 touched: Sequence[TaskRecord | WorkerRecord | None]) -> None:
        if self.limit is not None and self.queued >= self.limit:
            return
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

    def on_status(self, status: StatusInfo) -> None:
        message = self.reporter.update(status)
        if message is not None:
            self.buffer.put(message)


def _query_matches(query: Predicate, record: TaskRecord | WorkerRecord | None,
                   item: TailEvent) -> bool:
    """``--filter`` on the task as it was right after this event (like ``--state``)."""
    if not isinstance(record, TaskRecord):
        return False
    if item.state is not None and item.state != record.state:
        record = msgspec.structs.replace(record, state=item.state)
    return query(record)


# --------------------------------------------------------------------------- the writer


class IngestorLike(Protocol):
    def start(self) -> None: ...
    def stop(self, timeout: float = 2.0) -> None: ...


def _silence(stream: IO[Any]) -> None:
    """The reader went away: point the fd at /dev/null so no later flush raises again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def _stop_quietly(ingestor: IngestorLike, reporter: StatusReporter) -> None:
    """Stop the ingest thread (bounded by its 2 s timeout); a second Ctrl-C can't interrupt."""
    reporter.stopping = True
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if in_main else None
    try:
        ingestor.stop(timeout=2.0)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def follow(ingestor: IngestorLike, buffer: LineBuffer, reporter: StatusReporter,
           out: IO[bytes], err: TextIO, *, limit: int | None = None,
           timeout: float | None = None, clock: Callable[[], float] = time.monotonic) -> int:
    """Start the ingestor and write what the sink queues until a stop condition; exit code.

    Exit 0 after ``limit`` lines, after ``timeout`` s without a matching event, on Ctrl-C and
    when stdout's reader goes away; exit 2 if the event stream stops by itself.
    """
    written = 0
    deadline = None if timeout is None else clock() + timeout
    try:
        ingestor.start()
        while True:
            wait = None if deadline is None else max(0.0, deadline - clock())
            buffer.wait(wait)
            if buffer.output_closed:
                _silence(out)
                return 0
            items = buffer.take()
            if not items:
                if deadline is not None and clock() >= deadline:
                    return 0
                continue
            activity = False
            for item in items:
                if isinstance(item, bytes):
                    out.write(item)
                    written += 1
                    activity = True
                    if limit is not None and written >= limit:
                        out.flush()
                        return 0
                elif isinstance(item, Gap):
                    out.flush()
                    _report_gap(err, item.count, buffer)
                    activity = True
                elif isinstance(item, Notice):
                    out.flush()
                    _err_line(err, item.text)
                else:
                    out.flush()
                    _err_line(err, item.text)
                    return 2
            out.flush()
            if activity and timeout is not None:
                deadline = clock() + timeout
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        _silence(out)
        return 0
    finally:
        with contextlib.suppress(KeyboardInterrupt):
            _stop_quietly(ingestor, reporter)


def _err_line(err: TextIO, text: str) -> None:
    try:
        err.write(f"lazycelery: {text}\n")
        err.flush()
    except (BrokenPipeError, ValueError, OSError):
        pass


def _report_gap(err: TextIO, count: int, buffer: LineBuffer) -> None:
    noun = "event" if count == 1 else "events"
    _err_line(err, f"output too slow: {count:,} matching {noun} not printed here "
                   f"(more than {buffer.max_lines:,} lines were waiting to be written)")


# --------------------------------------------------------------------------- the command


def _path_label(path: str) -> str:
    if not path or path == "auto":
        return ""
    return f" ({path})" if "path" in path else f" ({path} path)"


def _stdout_binary() -> IO[bytes]:
    buffer: IO[bytes] | None = getattr(sys.stdout, "buffer", None)
    if buffer is None:
        raise UsageError("stdout is not a binary stream")
    return buffer


def _isatty(stream: IO[Any]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def _text_formatter(no_color: bool) -> TextFormatter:
    """Colour and width follow stdout: a terminal gets both (width tracked on SIGWINCH)."""
    tty = _isatty(sys.stdout)
    text = TextFormatter(
        color=use_color(sys.stdout, no_color),
        width=shutil.get_terminal_size().columns if tty else None,
        encoding=sys.stdout.encoding or "utf-8",
    )
    if tty and hasattr(signal, "SIGWINCH"):
        def on_resize(signum: int, frame: object) -> None:
            text.width = shutil.get_terminal_size().columns

        signal.signal(signal.SIGWINCH, on_resize)
    return text


def run(args: argparse.Namespace) -> int:
    """The `lazycelery tail` command; Ctrl-C anywhere (even while connecting) exits 0 quietly."""
    try:
        return _run(args)
    except KeyboardInterrupt:
        return 0


def _run(args: argparse.Namespace) -> int:
    from lazycelery.config import resolve
    from lazycelery.core.ingest import Ingestor

    event_filter = filter_from_args(args)
    limit: int | None = getattr(args, "limit", None)
    timeout: float | None = getattr(args, "timeout", None)
    settings = resolve(args)
    for warning in type_warnings(event_filter.types):
        _err_line(sys.stderr, warning)

    out = _stdout_binary()
    formatter: Formatter = (JsonFormatter() if getattr(args, "json", False)
                            else _text_formatter(bool(settings.no_color)))
    index = TailIndex(max_tasks=settings.max_tasks)
    buffer = LineBuffer(watch_fd=out.fileno())
    masked = settings.masked_broker()
    reporter = StatusReporter(masked, settings.broker_url)
    sink = TailSink(index, event_filter, formatter, buffer, reporter, limit=limit)
    reconciler = _reconciler(settings, index, buffer, json_lines=getattr(args, "json", False))
    on_status: Callable[[Any], None] = sink.on_status
    if reconciler is not None:
        def on_status(status: Any) -> None:
            sink.on_status(status)
            reconciler.on_ingest_status(status)

        reconciler.start()
    try:
        # wakeup=False: the Receiver's wakeup broadcasts a `heartbeat` control command to every
        # worker on the broker; tail hides heartbeats by default and needs no worker list.
        ingestor = Ingestor(
            settings.broker_url, index, mode=settings.ingest,
            app=settings.celery_app() if settings.app_spec else None,
            transport_options=settings.transport_options,
            on_batch=sink.on_batch, on_status=on_status, wakeup=False,
        )
        if _isatty(sys.stderr):
            path = getattr(ingestor, "path", "")
            _err_line(sys.stderr, f"following {masked}{_path_label(path)}")
        return follow(ingestor, buffer, reporter, out, sys.stderr, limit=limit, timeout=timeout)
    finally:
        if reconciler is not None:
            reconciler.stop(timeout=1.0)
        buffer.close()


def _reconciler(settings: Any, index: TaskIndex, buffer: LineBuffer, *,
                json_lines: bool) -> Any:
    """Checks tasks left unfinished by a gap in the stream (result backend, then the workers
    that hold them) and prints one line per corrected task. None without a Celery app to ask
    (celery's import is paid only here, after the stream is set up)."""
    from lazycelery.core.reconcile import Correction, Reconciler, ReconcileReport

    try:
        app = settings.celery_app()
    except Exception as exc:  # a broken -A app was reported by resolve(); be quiet here
        buffer.put(Notice(f"reconciliation off: {exc}"))
        return None

    def line(correction: Correction) -> bytes:
        if json_lines:
            doc = {"type": "reconciled", "time": _iso_time(time.time()), **correction.to_json()}
            return JsonFormatter.encode(doc)
        since = (f" (unknown since {_clock_text(correction.unknown_since)})"
                 if correction.unknown_since is not None else "")
        text = (f"{_clock_text(time.time())} reconciled       {correction.name or '?'} "
                f"{correction.uuid[:8]} {correction.old_state} -> {correction.state}{since} "
                f"[{correction.source}]\n")
        return text.encode("utf-8", "replace")

    def on_report(report: ReconcileReport) -> None:
        changed = report.corrected + report.unknown
        if changed:
            buffer.put(Notice(f"{report.summary()}"))
            buffer.put_lines([line(c) for c in changed])

    return Reconciler(index, app, on_report=on_report)
