"""Text helpers for cells: fitting to terminal cells, numbers, times, sparklines.

No prompt_toolkit here (cell widths come from ``wcwidth``, as prompt_toolkit's own do): the
built-in pane modules format with these and must import without the TUI (``lazycelery plugins``).
Durations and ages are ``lazycelery.text``'s, shared with the CLI."""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import lru_cache
from typing import Final

from wcwidth import wcwidth

from lazycelery.text import age, duration

__all__ = [
    "age",
    "clock_time",
    "duration",
    "fit",
    "number",
    "one_line",
    "percent",
    "short_id",
    "sparkline",
    "wrap",
]

_BARS: Final = "▁▂▃▄▅▆▇█"
# control characters (newlines in args, escape sequences) must never reach the terminal
_CONTROL: Final = {c: " " for c in range(32)} | {127: " "} | {0x9B: " "}


def one_line(text: str) -> str:
    """Control characters (newline, tab, ESC) replaced by spaces."""
    return text.translate(_CONTROL)


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


def number(value: float | int | None) -> str:
    """1234 -> ``1,234``; 12.5k and 3.4M past six digits; None -> ``–``."""
    if value is None:
        return "–"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    v = int(value)
    if abs(v) >= 10_000_000:
        return f"{v / 1_000_000:.1f}M"
    if abs(v) >= 1_000_000:
        return f"{v / 1_000_000:.2f}M"
    return f"{v:,}"


def percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def clock_time(ts: float | None, millis: bool = False) -> str:
    """Local wall-clock time of an epoch timestamp: ``14:03:07`` (``.123`` with millis)."""
    if ts is None:
        return ""
    text = time.strftime("%H:%M:%S", time.localtime(ts))
    if millis:
        text += f".{int(ts * 1000) % 1000:03d}"
    return text


def short_id(uuid: str, n: int = 8) -> str:
    return uuid[:n]


def sparkline(values: Sequence[float], width: int | None = None) -> str:
    """One block character per value, scaled to the largest (zero stays the lowest bar)."""
    if width is not None:
        values = values[-width:] if width > 0 else []
    if not values:
        return ""
    top = max(values)
    if top <= 0:
        return _BARS[0] * len(values)
    last = len(_BARS) - 1
    return "".join(_BARS[min(last, round(v / top * last))] for v in values)
