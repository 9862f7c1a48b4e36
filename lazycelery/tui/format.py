"""Text helpers for cells: fitting to terminal cells, numbers, durations, ages, sparklines."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Final

from prompt_toolkit.utils import get_cwidth

from lazycelery.text import number, rate

__all__ = [
    "age",
    "clock_time",
    "duration",
    "fit",
    "number",
    "one_line",
    "percent",
    "rate",
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


def _width(text: str) -> int:
    return len(text) if text.isascii() else get_cwidth(text)


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


def percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def duration(seconds: float | None) -> str:
    """Runtimes: ``850ms``, ``2.31s``, ``1m05s``, ``2h03m``."""
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.2f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def age(seconds: float | None) -> str:
    """How long ago: ``3s``, ``12m``, ``5h``, ``2d``."""
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
