"""Text from events and brokers made safe for a terminal: control characters shown, never sent.

Anything a worker, a client or a broker can put in a string (task names, ids, args, exceptions,
tracebacks, hostnames, queue names, URLs in error lines) may carry terminal control sequences:
``\\x1b]0;...\\x07`` retitles the window, ``\\x1b[2J`` clears the screen. Every surface that prints
such text to a terminal passes it through :func:`visible` (JSON output keeps JSON's own escaping).
A field may also hold a value of the wrong type (a list where a name belongs, an integer of 400
digits): :func:`text_of` turns any value into text without ever raising, :func:`real` into a
finite float or None (a count or time to format). JSON output escapes
C0 controls itself; :func:`json_visible` escapes the rest (DEL, C1, bidi controls) the JSON way.
Numbers read the same on every surface (dashboard and CLI): :func:`number`, :func:`rate`.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Final

__all__ = ["ODD", "json_visible", "number", "rate", "real", "text_of", "visible", "visible_lines"]

#: what a number of the wrong type or out of range is shown as
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
