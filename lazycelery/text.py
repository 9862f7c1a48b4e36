"""Text for a terminal: control characters from events and brokers shown, never sent; numbers
formatted the same way on every surface (dashboard and CLI).

Anything a worker, a client or a broker can put in a string (task names, ids, args, exceptions,
tracebacks, hostnames, queue names, URLs in error lines) may carry terminal control sequences:
``\\x1b]0;...\\x07`` retitles the window, ``\\x1b[2J`` clears the screen. Every surface that prints
such text to a terminal passes it through :func:`visible` (JSON output keeps JSON's own escaping).
"""

from __future__ import annotations

from typing import Final

__all__ = ["number", "rate", "visible", "visible_lines"]


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


def number(value: float | None, missing: str = "–") -> str:
    """1234 -> ``1,234``; 12.5M and 3.45M past six digits; None -> ``missing``.

    The one number format of the dashboard and the CLI tables (``--json`` keeps plain numbers)."""
    if value is None:
        return missing
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    v = int(value)
    if abs(v) >= 10_000_000:
        return f"{v / 1_000_000:.1f}M"
    if abs(v) >= 1_000_000:
        return f"{v / 1_000_000:.2f}M"
    return f"{v:,}"


def rate(value: float | None, *, signed: bool = False, missing: str = "–") -> str:
    """A per-second rate with one decimal: ``12.5``, ``+3.0`` / ``-0.4`` when ``signed``;
    anything that would print as 0.0 is ``0`` (never ``-0.0``)."""
    if value is None:
        return missing
    if abs(value) < 0.05:
        return "0"
    return f"{value:+,.1f}" if signed else f"{value:,.1f}"
