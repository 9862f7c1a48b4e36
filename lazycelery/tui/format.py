"""Text helpers for cells: fitting to terminal cells, numbers, times, sparklines.

No prompt_toolkit here (cell widths come from ``wcwidth``, as prompt_toolkit's own do): the
built-in pane modules format with these and must import without the TUI (``lazycelery plugins``).
Durations and ages are ``lazycelery.text``'s, shared with the CLI.

Every helper is total: a value of the wrong type or out of range (a timestamp of 1e308, a NaN
runtime, a count of 10**400, a list where a name belongs) gives ``?`` or its repr made visible,
never an exception, and text from events never carries a control character to the terminal.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import lru_cache
from typing import Final

from wcwidth import wcwidth

from lazycelery.text import ODD, age, duration, number, rate, real, text_of, visible, visible_lines

__all__ = [
    "ODD",
    "age",
    "clock_time",
    "duration",
    "fit",
    "fixed",
    "lines_of",
    "number",
    "one_line",
    "percent",
    "rate",
    "short_id",
    "sparkline",
    "wrap",
]

_BARS: Final = "▁▂▃▄▅▆▇█"


def one_line(value: object) -> str:
    """Any value as one line of text, control characters (newline, ESC, BEL, bidi overrides)
    shown as escapes (``\\x1b``): safe in a fixed-width cell and on the terminal."""
    return visible(text_of(value))


def lines_of(value: object) -> list[str]:
    """Any value as lines of text (tracebacks keep their line breaks), escapes made visible."""
    return visible_lines(text_of(value)).split("\n")


@lru_cache(maxsize=8192)
def get_cwidth(char: str) -> int:
    """Terminal cells of one character; control characters (-1 in wcwidth) count 0, as in
    prompt_toolkit's renderer."""
    return max(0, wcwidth(char))


def _width(text: str) -> int:
    return len(text) if text.isascii() else sum(get_cwidth(c) for c in text)


def fit(text: str, width: int, align: str = "left") -> str:
    """``text`` cut or padded to exactly ``width`` terminal cells (… marks a cut)."""
    if width <= 0:
        return ""
    w = _width(text)
    if w > width:
        if text.isascii():
            text = text[: width - 1] + "…"
        else:
            out, used = [], 0
            for ch in text:
                cw = get_cwidth(ch)
                if used + cw > width - 1:
                    break
                out.append(ch)
                used += cw
            text = "".join(out) + "…" + " " * (width - 1 - used)
        return text
    pad = " " * (width - w)
    return pad + text if align == "right" else text + pad


def wrap(text: str, width: int) -> list[str]:
    """Hard-wrap one line of text to ``width`` cells (no word breaking: exact content)."""
    if width <= 0:
        return [text]
    text = text.replace("\t", "    ")
    if text.isascii():
        return [text[i:i + width] for i in range(0, len(text), width)] or [""]
    lines: list[str] = []
    cur: list[str] = []
    used = 0
    for ch in text:
        cw = get_cwidth(ch)
        if used + cw > width:
            lines.append("".join(cur))
            cur, used = [], 0
        cur.append(ch)
        used += cw
    lines.append("".join(cur))
    return lines


def percent(value: object) -> str:
    if value is None:
        return "–"
    v = real(value)
    return ODD if v is None else f"{v * 100:.1f}%"


def fixed(value: object, digits: int = 2) -> str:
    """A real number with ``digits`` decimals; None -> ``–``; anything else -> ``?``."""
    if value is None:
        return "–"
    v = real(value)
    return ODD if v is None else f"{v:.{digits}f}"


def clock_time(ts: object, millis: bool = False) -> str:
    """Local wall-clock time of an epoch timestamp: ``14:03:07`` (``.123`` with millis);
    ``?`` for a value that is not a time the platform can convert (1e20, NaN, a string)."""
    if ts is None:
        return ""
    t = real(ts)
    if t is None:
        return ODD
    try:
        local = time.localtime(t)
    except (OverflowError, OSError, ValueError):
        return ODD
    text = time.strftime("%H:%M:%S", local)
    if millis:
        text += f".{int(t * 1000) % 1000:03d}"
    return text


def short_id(uuid: object, n: int = 8) -> str:
    return one_line(uuid)[:n]


def sparkline(values: Sequence[object], width: int | None = None) -> str:
    """One block character per value, scaled to the largest (zero stays the lowest bar)."""
    if width is not None:
        values = values[-width:] if width > 0 else []
    # not a real number (NaN, a string) or below zero: the lowest bar
    clean = [max(0.0, r) if (r := real(v)) is not None else 0.0 for v in values]
    if not clean:
        return ""
    top = max(clean)
    if top <= 0:
        return _BARS[0] * len(clean)
    last = len(_BARS) - 1
    return "".join(_BARS[min(last, round(v / top * last))] for v in clean)
