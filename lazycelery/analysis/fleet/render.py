"""Terminal charts from block characters, as pure functions of numbers: sparklines, horizontal
bars, and heatmaps on a four-step colour scale with its legend.

They return text, and for the heatmap each cell's *level* (0-3, None for an empty cell), so the
CLI colours a level with ANSI codes and the dashboard with a style class: the same chart in
both, and a test can read the levels rather than escape codes."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from lazycelery.text import duration

__all__ = ["LEVELS", "SHADES", "SPARKS", "HeatChart", "bar", "fmt_seconds", "heat_chart",
           "heat_level", "heat_thresholds", "sparkline", "time_axis"]

SPARKS: Final = "▁▂▃▄▅▆▇█"
#: one shade per heat level, lightest (lowest values) first
SHADES: Final = "░▒▓█"
LEVELS: Final = len(SHADES)
_EIGHTHS: Final = " ▏▎▍▌▋▊▉"


def sparkline(values: Sequence[float | None], top: float | None = None) -> str:
    """One character per value: blank for None, ``▁`` for 0 (and the smallest values), up to
    ``█`` for ``top`` (default: the largest value)."""
    known = [v for v in values if v is not None and math.isfinite(v)]
    peak = top if top is not None else max(known, default=0.0)
    out = []
    for v in values:
        if v is None or not math.isfinite(v):
            out.append(" ")
        elif peak <= 0 or v <= 0:
            out.append(SPARKS[0])
        else:
            out.append(SPARKS[max(0, min(len(SPARKS) - 1, math.ceil(v / peak * len(SPARKS)) - 1))])
    return "".join(out)


def bar(value: float, top: float, width: int) -> str:
    """A horizontal bar of ``width`` cells for ``value`` out of ``top``, in eighths of a cell;
    padded with spaces to ``width``."""
    if width <= 0:
        return ""
    share = 0.0 if top <= 0 or not math.isfinite(value) else max(0.0, min(1.0, value / top))
    eighths = round(share * width * 8)
    text = "█" * (eighths // 8) + (_EIGHTHS[eighths % 8] if eighths % 8 else "")
    return text.ljust(width)


def heat_thresholds(values: Sequence[float | None]) -> tuple[float, ...]:
    """The upper bound of each level: the quartiles of the cells' values (nearest rank), so each
    shade covers about a quarter of the cells however skewed the runtimes are (one slow task
    name does not leave every other cell in the lowest shade). A cell is at level i when its
    value is at most ``thresholds[i]``."""
    known = sorted(v for v in values if v is not None)
    if not known:
        return tuple(0.0 for _ in range(LEVELS))
    return tuple(known[max(1, math.ceil((i + 1) / LEVELS * len(known))) - 1]
                 for i in range(LEVELS))


def heat_level(value: float | None, thresholds: Sequence[float]) -> int | None:
    if value is None:
        return None
    for i, bound in enumerate(thresholds):
        if value <= bound:
            return i
    return len(thresholds) - 1


def fmt_seconds(value: float) -> str:
    return duration(value) or "0ms"


def _fmt_count(value: float) -> str:
    return f"{value:,.0f}"


@dataclass(frozen=True)
class HeatChart:
    """A rendered heatmap: per row its label and cells ``(level, text)``; the legend line."""

    rows: tuple[tuple[str, tuple[tuple[int | None, str], ...]], ...]
    legend: tuple[tuple[int | None, str], ...]
    label_width: int


def heat_chart(rows: Sequence[str], cells: Sequence[Sequence[float | None]], *,
               seconds: bool, cell_width: int = 1, label_width: int = 28) -> HeatChart:
    """Each value as ``cell_width`` shade characters of its level; the legend says which range
    each shade stands for (``seconds``: the values are runtimes, else counts)."""
    flat = [v for row in cells for v in row]
    bounds = heat_thresholds(flat)
    fmt: Callable[[float], str] = fmt_seconds if seconds else _fmt_count
    out = []
    for label, row in zip(rows, cells, strict=True):
        drawn = []
        for v in row:
            level = heat_level(v, bounds)
            drawn.append((level, (SHADES[level] if level is not None else " ") * cell_width))
        out.append((label, tuple(drawn)))
    legend: list[tuple[int | None, str]] = [(None, "legend: ")]
    low = 0.0
    for i, bound in enumerate(bounds):
        legend.append((i, SHADES[i]))
        legend.append((None, f" {fmt(low)}-{fmt(bound)}  "))
        low = bound
    legend.append((None, "blank: no task"))
    width = min(label_width, max((len(r) for r in rows), default=4))
    return HeatChart(tuple(out), tuple(legend), width)


def time_axis(columns: Sequence[float], cell_width: int, bucket: float) -> str:
    """A line under a chart: the first bucket's time at the left, the last's at the right
    (UTC; dates when the range spans days)."""
    if not columns:
        return ""
    fmt = "%m-%d %H:%M" if columns[-1] - columns[0] >= 86_400 or bucket >= 86_400 else "%H:%M"
    if bucket < 60:
        fmt += ":%S"
    first = time.strftime(fmt, time.gmtime(columns[0]))
    last = time.strftime(fmt, time.gmtime(columns[-1]))
    width = len(columns) * cell_width
    if width < len(first) + len(last) + 1:
        return first
    return first + last.rjust(width - len(first))
