"""Text from events and brokers made safe for a terminal: control characters shown, never sent.

Anything a worker, a client or a broker can put in a string (task names, ids, args, exceptions,
tracebacks, hostnames, queue names, URLs in error lines) may carry terminal control sequences:
``\\x1b]0;...\\x07`` retitles the window, ``\\x1b[2J`` clears the screen. Every surface that prints
such text to a terminal passes it through :func:`visible` (JSON output keeps JSON's own escaping).
A field may also hold a value of the wrong type (a list where a name belongs, an integer of 400
digits): :func:`text_of` turns any value into text without ever raising, :func:`real` into a
finite float or None (a count or time to format). JSON output escapes
C0 controls itself; :func:`json_visible` escapes the rest (DEL, C1, bidi controls) the JSON way.
Numbers read the same on every surface (dashboard and CLI): :func:`number`, :func:`rate`; so do
durations and ages, each format named for what it shows.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Final

__all__ = ["ODD", "age", "counted", "duration", "fine_duration", "json_visible", "number", "rate",
           "real",
           "text_of", "visible", "visible_lines", "whole_duration"]

#: what a number, time or duration of the wrong type or out of range is shown as
ODD: Final = "?"


def _escape(code: int) -> str:
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


# C0 controls, DEL, C1 controls, and the bidirectional overrides/isolates that reorder what is
# shown ("Trojan source"): each becomes a visible escape such as \x1b.
_CODES: Final = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0), *range(0x202A, 0x202F),
                 *range(0x2066, 0x206A)]
_TABLE: Final[dict[int, str]] = {c: _escape(c) for c in _CODES}
_TABLE_KEEP_NEWLINES: Final[dict[int, str]] = {c: e for c, e in _TABLE.items() if c != 0x0A}
# The same characters as UTF-8 bytes, minus C0 (JSON encoders escape those already): DEL,
# U+0080-U+009F, U+202A-U+202E, U+2066-U+2069.
_JSON_RAW: Final = re.compile(b"\x7f|\xc2[\x80-\x9f]|\xe2\x80[\xaa-\xae]|\xe2\x81[\xa6-\xa9]")


def visible(text: str) -> str:
    """``text`` on one line with every control character shown as an escape (``\\x1b``, ``\\x0a``)."""
    if text.isprintable():  # the common case, checked in C
        return text
    return text.translate(_TABLE)


def visible_lines(text: str) -> str:
    """Like :func:`visible` but newlines stay line breaks (tracebacks, multi-line results)."""
    if text.isprintable():
        return text
    return text.translate(_TABLE_KEEP_NEWLINES)


def text_of(value: object) -> str:
    """Any value as text, never raising: a string as it is, None as ``""``, anything else as its
    ``repr`` (``[1, 2]``, ``nan``); what cannot be shown (an integer beyond Python's 4,300-digit
    limit, a repr that fails) as ``<int: 5,001 digits>`` / ``<list>``. Not escaped: pass the
    result through :func:`visible` before it reaches a terminal."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    try:
        return repr(value)
    except Exception:  # ValueError (huge int), RecursionError (deep nesting), a broken __repr__
        if isinstance(value, int):
            digits = int(abs(value).bit_length() * 0.30103) + 1
            return f"<int: about {digits:,} digits>"
        return f"<{type(value).__name__}>"


def real(value: object) -> float | None:
    """``value`` as a finite float, or None when it is not a real number (bool, str, NaN, inf,
    an integer too large for a float): what a time, duration or rate formatter can use."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        f = float(value)
    except OverflowError:
        return None
    return f if math.isfinite(f) else None


def _json_escape(match: re.Match[bytes]) -> bytes:
    return b"\\u%04x" % ord(match.group().decode("utf-8"))


def json_visible(data: bytes) -> bytes:
    """UTF-8 JSON with the control characters JSON leaves raw (DEL, C1, bidi overrides)
    written as ``\\u`` escapes: the same document, safe to print on a terminal."""
    return _JSON_RAW.sub(_json_escape, data)


def number(value: object, missing: str = "–") -> str:
    """1234 -> ``1,234``; 12.5M and 3.45M past six digits; ``1.00e+15`` beyond; None ->
    ``missing``; not a number (or NaN, inf) -> ``?``.

    The one number format of the dashboard and the CLI tables (``--json`` keeps plain numbers)."""
    if value is None:
        return missing
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return ODD
    if isinstance(value, float):
        if not math.isfinite(value):
            return ODD
        if not value.is_integer():
            return f"{value:,.1f}" if abs(value) < 1e15 else f"{value:.2e}"
    v = int(value)
    if abs(v) >= 10**15:
        return format(Decimal(v), ".2e")  # exact for any size: no float conversion
    if abs(v) >= 10_000_000:
        return f"{v / 1_000_000:.1f}M"
    if abs(v) >= 1_000_000:
        return f"{v / 1_000_000:.2f}M"
    return f"{v:,}"


def counted(n: int, noun: str, plural: str | None = None, *, short: bool = False) -> str:
    """``n`` things with the noun agreeing: ``1 group``, ``0 groups``, ``1,234,567 groups``;
    ``plural`` when adding an s is wrong (``counted(n, "entry", "entries")``); ``short`` in
    :func:`number`'s format, which shortens past a million (``12.3M groups``: headers,
    confirmations)."""
    shown = number(n) if short else f"{n:,}"
    return f"{shown} {noun if n == 1 else plural or noun + 's'}"


def rate(value: object, *, signed: bool = False, missing: str = "–") -> str:
    """A per-second rate with one decimal: ``12.5``, ``+3.0`` / ``-0.4`` when ``signed``;
    anything that would print as 0.0 is ``0`` (never ``-0.0``); not a real number -> ``?``."""
    if value is None:
        return missing
    finite = real(value)
    if finite is None:
        return ODD
    if abs(finite) < 0.05:
        return "0"
    return f"{finite:+,.1f}" if signed else f"{finite:,.1f}"


# --------------------------------------------------------------------------- durations


def _minutes_and_hours(whole: int) -> str:
    """``1m05s`` below an hour, ``2h03m`` above: the shared middle of the duration formats."""
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def duration(value: object) -> str:
    """A runtime in the dashboard: ``850ms``, ``2.31s``, ``1m05s``, ``2h03m``; None -> ``""``;
    not a real number -> ``?``."""
    if value is None:
        return ""
    seconds = real(value)
    if seconds is None:
        return ODD
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.2f}s"
    return _minutes_and_hours(int(seconds))


def fine_duration(value: object) -> str | None:
    """A runtime in ``tail``'s lines, finer below a second and never in exponent notation:
    ``98µs``, ``23.0ms``, ``1.23s``, ``95s``; None when ``value`` is not a real number >= 0."""
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


def whole_duration(seconds: object, missing: str = "–") -> str:
    """How old, in whole seconds (CLI tables): ``59s``, ``1m00s``, ``1h00m``, ``1d01h``; not a
    real number -> ``?``."""
    if seconds is None:
        return missing
    finite = real(seconds)
    if finite is None:
        return ODD
    whole = int(finite)
    if whole < 60:
        return f"{whole}s"
    if whole < 86400:
        return _minutes_and_hours(whole)
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def age(seconds: object) -> str:
    """How long ago, in one unit: ``3s``, ``12m``, ``5h``, ``2d``; None -> ``–``; not a real
    number -> ``?``."""
    if seconds is None:
        return "–"
    v = real(seconds)
    if v is None:
        return ODD
    s = max(0.0, v)
    if s < 60:
        return f"{s:.0f}s"
    if s < 3600:
        return f"{s // 60:.0f}m"
    if s < 86400:
        return f"{s // 3600:.0f}h"
    return f"{s // 86400:.0f}d"
