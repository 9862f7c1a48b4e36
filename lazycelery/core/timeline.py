"""The timeline's layout, headless: tasks as bars on one time axis (received or started until
they finished), packed into lanes (one per worker process, or one per queue), each lane into
rows where its bars do not overlap; what one row shows between two times in a number of
columns; the time ruler's ticks; the view's zoom and pan arithmetic.

The dashboard's timeline pane draws it (``lazycelery.tui.panes.timeline``); ``lazycelery
timeline`` prints it. Building is O(n log n) once per change of the tasks; drawing a row is
O(columns x log bars), whatever the number of bars in view (a cell shows the first bar in it).
Times are the senders' epoch seconds; a task without a usable time gets no bar, never an
error (it is counted)."""

from __future__ import annotations

import bisect
import heapq
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final, NamedTuple

from lazycelery.core.model import TaskRecord
from lazycelery.text import real

__all__ = ["BY_QUEUE", "BY_WORKER", "GROUPINGS", "MAX_ROWS", "MAX_SPAN", "MIN_SPAN", "Bar",
           "Lane", "Layout", "Row", "Segment", "View", "bar_of", "build_layout", "lane_key",
           "render_row", "ticks"]

BY_WORKER: Final = "worker"
BY_QUEUE: Final = "queue"
GROUPINGS: Final = (BY_WORKER, BY_QUEUE)
#: rows a lane is packed into at most; bars that would need more are counted as hidden (a
#: queue served by 500 processes would otherwise take the whole screen)
MAX_ROWS: Final = 16
#: the narrowest and the widest view (seconds across the whole width)
MIN_SPAN: Final = 0.01
MAX_SPAN: Final = 60 * 86400.0
#: the nice steps of the time ruler (seconds)
_STEPS: Final = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60,
                 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800,
                 604800)


class Bar(NamedTuple):
    """One task on the axis: ``end`` is None while it runs (drawn until now). A tuple: a
    layout makes one per task."""

    start: float
    end: float | None
    state: str
    record: TaskRecord

    def end_at(self, now: float) -> float:
        return self.end if self.end is not None else max(self.start, now)


@dataclass(slots=True)
class Row:
    """Bars that do not overlap, in time order (so their ends are in order too)."""

    bars: list[Bar] = field(default_factory=list)
    ends: list[float] = field(default_factory=list)  # for bisect; a running bar: +inf
    #: the bars' starts and states, apart: the pane's frame reads them per cell (a list index
    #: is cheaper than a tuple field's lookup; built on the layout's thread, not the UI's)
    starts: list[float] = field(default_factory=list)
    states: list[str] = field(default_factory=list)

    def add(self, bar: Bar) -> None:
        self.bars.append(bar)
        self.ends.append(bar.end if bar.end is not None else math.inf)
        self.starts.append(bar.start)
        self.states.append(bar.state)

    @property
    def running(self) -> bool:
        """Its last bar runs (drawn until now): only a row's last bar can (nothing is packed
        after a bar without an end)."""
        return bool(self.ends) and self.ends[-1] == math.inf

    def nearest(self, t: float) -> int:
        """Index of the bar closest to time ``t`` (-1 when the row is empty)."""
        if not self.bars:
            return -1
        i = bisect.bisect_left(self.ends, t)
        if i >= len(self.bars):
            return len(self.bars) - 1
        if i > 0 and self.bars[i].start > t and t - self.ends[i - 1] < self.bars[i].start - t:
            return i - 1
        return i


@dataclass(slots=True)
class Lane:
    """One worker process (``host@name [pid]``) or one queue, packed into rows."""

    key: str
    rows: list[Row] = field(default_factory=list)
    hidden: int = 0  # bars that needed more than MAX_ROWS rows


@dataclass(frozen=True, slots=True, eq=False)
class Layout:
    """Every lane (by key), the display rows in order as (lane, row index), where each task
    is, and what could not be placed. Compared by identity (a new build is a new layout)."""

    grouping: str
    lanes: tuple[Lane, ...]
    rows: tuple[tuple[Lane, int], ...]
    where: Mapping[str, tuple[int, int]]  # uuid -> (display row, bar index)
    first: float | None
    last: float | None
    untimed: int  # tasks with no usable received / started time
    skewed: int  # tasks whose end was before their start (clocks apart): drawn zero-length
    bars: int

    def row(self, d: int) -> Row:
        lane, r = self.rows[d]
        return lane.rows[r]

    def bar(self, uuid: str) -> Bar | None:
        at = self.where.get(uuid)
        return self.row(at[0]).bars[at[1]] if at is not None else None

    @property
    def hidden(self) -> int:
        return sum(lane.hidden for lane in self.lanes)


def _time(value: object) -> float | None:
    # the fast path first: a plain finite float (NaN fails both comparisons)
    if type(value) is float and -1e300 < value < 1e300:
        return value
    return real(value)


#: which time ends a task in each finished state
_END: Final = {"SUCCESS": "succeeded", "FAILURE": "failed", "REVOKED": "revoked",
               "REJECTED": "rejected", "PURGED": "purged", "RETRY": "retried"}


def bar_of(rec: TaskRecord) -> tuple[Bar | None, bool]:
    """The task's bar (None: no received / started time) and whether its end had to be
    moved up to its start (an end before the start: two clocks apart)."""
    start = _time(rec.started)
    if start is None:
        start = _time(rec.received)
    if start is None:
        return None, False
    state = rec.state
    end_field = _END.get(state)
    end = None if end_field is None else _time(getattr(rec, end_field))
    if end is None and end_field is not None:
        end = start  # finished, but its end time was not seen: a zero-length mark
    if end is not None and end < start:
        return Bar(start, start, state, rec), True
    return Bar(start, end, state, rec), False


def lane_key(rec: TaskRecord, grouping: str, pids: Mapping[str, int]) -> str:
    """The lane a task is drawn in: its worker process (hostname and pid, when the worker's
    events said it) or its queue (the routing key when the queue is not known)."""
    if grouping == BY_QUEUE:
        return str(rec.queue or rec.routing_key or "(no queue)")
    host = str(rec.worker or "(no worker)")
    pid = pids.get(rec.uuid)
    return f"{host} [{pid}]" if pid is not None else host


def _pack(lane: Lane, bars: list[Bar]) -> None:
    """First free row (the one that ended earliest), or a new one up to MAX_ROWS."""
    bars.sort(key=lambda b: b.start)
    free: list[tuple[float, int]] = []  # (end of its last bar, row)
    for bar in bars:
        if free and free[0][0] <= bar.start:
            _, r = heapq.heappop(free)
        elif len(lane.rows) < MAX_ROWS:
            r = len(lane.rows)
            lane.rows.append(Row())
        else:
            lane.hidden += 1
            continue
        lane.rows[r].add(bar)
        heapq.heappush(free, (bar.end if bar.end is not None else math.inf, r))


def build_layout(records: Iterable[TaskRecord], grouping: str = BY_WORKER,
                 pids: Mapping[str, int] | None = None) -> Layout:
    """Lay ``records`` out in lanes sorted by key."""
    pids = pids or {}
    by_lane: dict[str, list[Bar]] = {}
    untimed = skewed = 0
    first, last = math.inf, -math.inf
    for rec in records:
        bar, skew = bar_of(rec)
        if bar is None:
            untimed += 1
            continue
        skewed += skew
        if bar.start < first:
            first = bar.start
        end = bar.start if bar.end is None else bar.end
        if end > last:
            last = end
        by_lane.setdefault(lane_key(rec, grouping, pids), []).append(bar)
    lanes = []
    for key in sorted(by_lane):
        lane = Lane(key)
        _pack(lane, by_lane[key])
        lanes.append(lane)
    rows = tuple((lane, r) for lane in lanes for r in range(len(lane.rows)))
    where: dict[str, tuple[int, int]] = {}
    for d, (lane, r) in enumerate(rows):
        bars = lane.rows[r].bars
        where.update(zip([bar.record.uuid for bar in bars],
                         zip([d] * len(bars), range(len(bars)), strict=True), strict=True))
    placed = len(where)
    return Layout(grouping, tuple(lanes), rows, where,
                  first if placed else None, last if placed else None, untimed, skewed,
                  placed)


#: columns ``[col, stop)`` of a row show ``bar``: a plain tuple (thousands are made a frame)
Segment = tuple[int, int, Bar]


@dataclass(frozen=True, slots=True)
class View:
    """What the axis shows: ``span`` seconds from ``start`` across the width."""

    start: float
    span: float

    @property
    def end(self) -> float:
        return self.start + self.span

    def column(self, t: float, width: int) -> float:
        return (t - self.start) / self.span * width

    def zoom(self, factor: float, at: float | None = None) -> View:
        """Zoomed by ``factor`` (>1 shows less time) keeping time ``at`` (default: the
        centre) at the same place on the screen."""
        at = self.start + self.span / 2 if at is None else at
        span = min(MAX_SPAN, max(MIN_SPAN, self.span / factor))
        frac = (at - self.start) / self.span if self.span else 0.5
        return View(at - frac * span, span)

    def pan(self, fraction: float) -> View:
        """Moved by ``fraction`` of the width (negative: back in time)."""
        return View(self.start + fraction * self.span, self.span)

    def showing(self, t: float) -> View:
        """This view, or the same span centred on ``t`` when ``t`` is outside it."""
        if self.start <= t <= self.end:
            return self
        return View(t - self.span / 2, self.span)

    @staticmethod
    def fit(first: float, last: float) -> View:
        """Everything from ``first`` to ``last``, with a little room on each side."""
        span = min(MAX_SPAN, max(MIN_SPAN, (last - first) * 1.04))
        return View((first + last) / 2 - span / 2, span)


def render_row(row: Row, view: View, width: int, now: float) -> list[Segment]:
    """What ``width`` columns show of ``row``: each column the first bar in it; a bar at
    least one column wide. O(segments x log bars): the loop is the frame's hot path, hence
    its local names."""
    out: list[Segment] = []
    if width <= 0 or not row.bars:
        return out
    step = view.span / width
    scale = width / view.span
    origin = view.start
    bars, ends, n = row.bars, row.ends, len(row.bars)
    find, floor, ceil, inf = bisect.bisect_left, math.floor, math.ceil, math.inf
    col = 0
    drawn = -1  # a bar ending on a column's edge must not be drawn again in the next column
    while col < width:
        cell_start = origin + col * step
        i = find(ends, cell_start, drawn + 1)
        if i >= n:
            break
        bar = bars[i]
        end = ends[i]
        if end == inf:  # running: drawn until now only (it is the row's last bar)
            end = now if now > bar.start else bar.start
            if end < cell_start:
                break
        first = floor((bar.start - origin) * scale)
        if first > col:
            if first >= width:
                break
            col = first
        stop = ceil((end - origin) * scale)
        if stop <= col:
            stop = col + 1
        elif stop > width:
            stop = width
        out.append((col, stop, bar))
        col, drawn = stop, i
    return out


def _step(span: float, width: int, label: int) -> float:
    want = span * (label + 2) / max(1, width)
    for step in _STEPS:
        if step >= want:
            return step
    return _STEPS[-1] * math.ceil(want / _STEPS[-1])


def ticks(view: View, width: int, label: int = 8) -> list[tuple[int, float]]:
    """(column, time) of the ruler's ticks: round times, labels of ``label`` characters
    apart."""
    if width <= 0 or view.span <= 0:
        return []
    step = _step(view.span, width, label)
    t = math.ceil(view.start / step) * step
    out = []
    while t < view.end:
        out.append((int(view.column(t, width)), t))
        t += step
    return out
