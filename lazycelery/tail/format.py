"""How `tail` prints an event: coloured text columns or one JSON object per line, as bytes.

Text lines show every value whatever its type (``lazycelery.text.text_of``) with control
characters as escapes (``lazycelery.text.visible``): one event is one line, and nothing from an
event reaches the terminal as a control sequence. JSON lines keep JSON's own escaping."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import IO, Any, Final, Protocol

import msgspec

from lazycelery.tail.events import HEARTBEAT, TailEvent
from lazycelery.text import json_visible, real, text_of, visible

__all__ = ["JSON_KEYS", "Formatter", "JsonFormatter", "TextFormatter", "reconciled_line",
           "use_color"]


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

_EVENT_BASE_KEYS: Final = frozenset({
    "type", "hostname", "timestamp", "utcoffset", "pid", "clock", "local_received", "uuid",
})


def _clock_text(ts: float | None) -> str:
    if ts is None:
        return "--:--:--.---"
    try:
        lt = time.localtime(ts)
        millis = int(ts * 1000) % 1000
    except (OverflowError, ValueError, OSError, TypeError):
        return "--:--:--.---"
    return f"{lt.tm_hour:02d}:{lt.tm_min:02d}:{lt.tm_sec:02d}.{millis:03d}"


def _runtime_text(value: Any) -> str | None:
    """``98µs``, ``23.0ms``, ``1.23s``, ``95s``: short, and never in exponent notation."""
    value = real(value)
    if value is None or value < 0:
        return None
    if value < 0.001:
        return f"{value * 1e6:.0f}µs"
    if value < 1:
        return f"{value * 1e3:.1f}ms"
    if value < 60:
        return f"{value:.2f}s"
    return f"{value:.0f}s"


def _signal_name(signum: Any) -> str:
    if isinstance(signum, int) and not isinstance(signum, bool):
        try:
            return signal.Signals(signum).name
        except (ValueError, OverflowError):
            return f"signal {text_of(signum)}"
    return ""


def _summary(item: TailEvent) -> str:
    """The last column of a text line: what this event says, in a few words."""
    event, kind = item.event, item.type
    if kind == "task-succeeded":
        runtime = _runtime_text(event.get("runtime"))
        parts = [runtime] if runtime else []
        if "result" in event:
            parts.append(f"-> {text_of(event.get('result'))}")
        return " ".join(parts)
    if kind in ("task-failed", "task-retried"):
        return text_of(event.get("exception") or "")
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
    extra = [f"{text_of(k)}={text_of(v)}" for k, v in event.items() if k not in _EVENT_BASE_KEYS]
    return " ".join(extra)


def _call_text(item: TailEvent) -> str:
    event = item.event
    args = event.get("args", item.args)
    kwargs = event.get("kwargs", item.kwargs)
    parts = [f"args={text_of(args)}" if args is not None else ""]
    if kwargs is not None and kwargs != "{}":
        parts.append(f"kwargs={text_of(kwargs)}")
    retries = event.get("retries")
    if isinstance(retries, int) and not isinstance(retries, bool) and retries > 0:
        parts.append(f"retries={text_of(retries)}")
    for key in ("eta", "expires"):
        if event.get(key):
            parts.append(f"{key}={text_of(event.get(key))}")
    return " ".join(p for p in parts if p)


def _worker_text(event: Mapping[str, Any]) -> str:
    parts = []
    for key in ("active", "processed"):
        if key in event:
            parts.append(f"{key}={text_of(event.get(key))}")
    load = event.get("loadavg")
    if isinstance(load, (list, tuple)):
        parts.append("load=" + ",".join(text_of(x) for x in load))
    if not parts and event.get("freq") is not None:
        parts.append(f"freq={text_of(event.get('freq'))}")
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
        kind = visible(text_of(item.type))
        name = visible(text_of(item.name or "-"))
        short = visible(text_of(item.uuid)[:8]) if item.uuid else "-"
        worker = visible(text_of(item.worker or "-"))
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
        summary = visible(_summary(item))
        width = self.width
        if width is not None and summary:
            room = max(width - plain_len - 1, 12)
            if len(summary) > room:
                summary = summary[: room - 1] + "…"
        if not summary:
            return prefix.rstrip()
        return f"{prefix} {self._paint(summary, _SUMMARY_COLORS.get(item.type))}"


class CorrectionLike(Protocol):
    """The fields of ``lazycelery.core.reconcile.Correction`` a ``reconciled`` line shows."""

    @property
    def uuid(self) -> str: ...
    @property
    def name(self) -> str | None: ...
    @property
    def old_state(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def unknown_since(self) -> float | None: ...


def reconciled_line(correction: CorrectionLike, now: float) -> bytes:
    """``HH:MM:SS.mmm reconciled  name short-id OLD -> NEW [source]``: a task reconciliation
    corrected, escaped like the task-* lines (a name or id may carry control sequences)."""
    since = (f" (unknown since {_clock_text(correction.unknown_since)})"
             if correction.unknown_since is not None else "")
    text = (f"{_clock_text(now)} reconciled       {text_of(correction.name or '?')} "
            f"{text_of(correction.uuid)[:8]} {text_of(correction.old_state)} -> "
            f"{text_of(correction.state)}{since} [{text_of(correction.source)}]")
    return (visible(text) + "\n").encode("utf-8", "backslashreplace")


def _json_fallback(value: Any) -> Any:
    # msgspec already writes datetime/date/time (ISO 8601), timedelta (ISO 8601 duration),
    # Decimal and UUID (strings), bytes (base64), sets and tuples (arrays), NaN/inf (null).
    return str(value)


def _json_clean(value: Any) -> Any:
    """Make what msgspec refused encodable: string keys, strings without lone surrogates,
    integers beyond Python's 4,300-digit limit (as text saying so)."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, int) and value.bit_length() > 14_000:
        return text_of(value)
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
            data = msgspec.json.encode(doc, enc_hook=_json_fallback)
        except (TypeError, ValueError, UnicodeError, msgspec.EncodeError):
            data = msgspec.json.encode(_json_clean(doc), enc_hook=_json_fallback)
        return json_visible(data) + b"\n"


def _isatty(stream: IO[Any]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False
