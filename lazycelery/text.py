"""Text from events and brokers made safe for a terminal: control characters shown, never sent.

Anything a worker, a client or a broker can put in a string (task names, ids, args, exceptions,
tracebacks, hostnames, queue names, URLs in error lines) may carry terminal control sequences:
``\\x1b]0;...\\x07`` retitles the window, ``\\x1b[2J`` clears the screen. Every surface that prints
such text to a terminal passes it through :func:`visible` (JSON output keeps JSON's own escaping).
"""

from __future__ import annotations

from typing import Final

__all__ = ["visible", "visible_lines"]


def _escape(code: int) -> str:
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


# C0 controls, DEL, C1 controls, and the bidirectional overrides/isolates that reorder what is
# shown ("Trojan source"): each becomes a visible escape such as \x1b.
_CODES: Final = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0), *range(0x202A, 0x202F),
                 *range(0x2066, 0x206A)]
_TABLE: Final[dict[int, str]] = {c: _escape(c) for c in _CODES}
_TABLE_KEEP_NEWLINES: Final[dict[int, str]] = {c: e for c, e in _TABLE.items() if c != 0x0A}


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


def error_line(exc: BaseException, *, with_type: bool = False, limit: int | None = None) -> str:
    """An exception as one line: whitespace collapsed, every URL in it with its password masked
    (broker errors quote the URL), cut to ``limit`` characters. ``with_type`` puts the type
    first (``ValueError: bad``), except for an ImportError, whose message names the module."""
    from lazycelery.urls import mask_text

    text = " ".join(str(exc).split())
    if with_type and not isinstance(exc, ImportError):
        text = f"{type(exc).__name__}: {text}" if text else ""
    text = mask_text(text or type(exc).__name__)
    if limit is not None and len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


# --------------------------------------------------------------------------- durations


def _minutes_and_hours(whole: int) -> str:
    """``1m05s`` below an hour, ``2h03m`` above: the shared middle of the duration formats."""
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def duration(seconds: float | None) -> str:
    """A runtime in the dashboard: ``850ms``, ``2.31s``, ``1m05s``, ``2h03m``; None -> ``""``."""
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.2f}s"
    return _minutes_and_hours(int(seconds))


def fine_duration(value: object) -> str | None:
    """A runtime in ``tail``'s lines, finer below a second and never in exponent notation:
    ``98µs``, ``23.0ms``, ``1.23s``, ``95s``; None when ``value`` is not a number."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value:
        return None
    if value < 0.001:
        return f"{value * 1e6:.0f}µs"
    if value < 1:
        return f"{value * 1e3:.1f}ms"
    if value < 60:
        return f"{value:.2f}s"
    return f"{value:.0f}s"


def whole_duration(seconds: float | None, missing: str = "–") -> str:
    """How old, in whole seconds (CLI tables): ``59s``, ``1m00s``, ``1h00m``, ``1d01h``."""
    if seconds is None:
        return missing
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 86400:
        return _minutes_and_hours(whole)
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def age(seconds: float | None) -> str:
    """How long ago, in one unit: ``3s``, ``12m``, ``5h``, ``2d``; None -> ``–``."""
    if seconds is None:
        return "–"
    s = max(0.0, seconds)
    if s < 60:
        return f"{s:.0f}s"
    if s < 3600:
        return f"{s // 60:.0f}m"
    if s < 86400:
        return f"{s // 3600:.0f}h"
    return f"{s // 86400:.0f}d"
