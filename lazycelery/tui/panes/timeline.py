"""The timeline pane: the task list's tasks (it follows the filter) as bars on a time axis,
coloured by state, one lane per worker process (or per queue, ``v``), a lane split into rows
where its tasks overlap. Zoom (``+`` / ``-``, ``z`` fits everything), pan (left / right, ``<`` /
``>`` a whole width), follow now (``f``); up / down and ``[`` / ``]`` select a task, enter opens
its detail.

Only the rows and columns on screen are drawn: a row costs O(columns x log tasks) whatever the
number of tasks in view (``lazycelery.core.timeline``). Imports without prompt_toolkit
(``lazycelery plugins`` loads it to list the pane); its controls are made when the dashboard
creates the pane."""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from lazycelery.core.timeline import Bar, Row, View, ticks
from lazycelery.panes_api import PaneCommand, PaneViewBase
from lazycelery.text import duration
from lazycelery.tui.format import clock_time, fit, one_line, short_id
from lazycelery.tui.screen.builtin import BODY, BuiltinPane, ScreenContext
from lazycelery.tui.style import state_class

if TYPE_CHECKING:
    from prompt_toolkit.formatted_text import StyleAndTextTuples
    from prompt_toolkit.layout import Container

    from lazycelery.tui.screen.timeline import TimelineModel

__all__ = ["GUTTER", "PANE", "RowCache", "TimelineView", "bar_text", "ruler_line",
           "timeline_lines"]

#: the lane labels' width
GUTTER: Final = 22
#: the cell of a bar, and of the selected bar
BAR_CHAR: Final = "█"
SELECTED_STYLE: Final = " reverse bold"


def _label(t: float, span: float) -> str:
    return clock_time(t, millis=span < 10)


def ruler_line(view: View, width: int) -> StyleAndTextTuples:
    """The time ruler over the bars: a tick and its time every few columns."""
    cells = [" "] * width
    for col, t in ticks(view, width, label=13 if view.span < 10 else 9):
        text = "|" + _label(t, view.span)
        if col >= 0 and col + len(text) <= width:
            cells[col:col + len(text)] = text
    return [("class:table.header", fit("time", GUTTER) + " " + "".join(cells))]


def _row_cells(model: TimelineModel, d: int, width: int,
               styles: dict[str, str]) -> StyleAndTextTuples:
    """One lane row's cells; adjacent bars of one state make one fragment.

    ``lazycelery.core.timeline.render_row``'s walk (each column the first bar in it, a bar at
    least one column wide) fused with the merging of its segments into fragments: the frame's
    hot path (37 rows x 137 columns of Python steps when 100,000 tasks are in view), so no
    segment tuple per cell, the row's starts and states read from its own lists, and the
    selection compared by index. tests/test_timeline_frames.py checks it draws exactly what
    the two steps did."""
    row = model.layout.row(d)
    now = model.now()
    at = model.layout.where.get(model.selected) if model.selected is not None else None
    sel = at[1] if at is not None and at[0] == d else -1
    out: StyleAndTextTuples = []
    append = out.append
    col = 0
    n = len(row.ends)
    if width > 0 and n:
        view = model.view
        step = view.span / width
        scale = width / view.span
        origin = view.start
        ends, starts, states = row.ends, row.starts, row.states
        find, ceil, inf = bisect.bisect_left, math.ceil, math.inf
        drawn = -1  # a bar ending on a column's edge must not be drawn again in the next
        last_state: str | None = None  # the state (None: a gap or the selection) of the run
        last_style, run = "", 0
        while col < width:
            cell_start = origin + col * step
            i = find(ends, cell_start, drawn + 1)
            if i >= n:
                break
            start = starts[i]
            end = ends[i]
            if end == inf:  # running: drawn until now only (it is the row's last bar)
                end = now if now > start else start
                if end < cell_start:
                    break
            first = (start - origin) * scale
            if first >= col + 1:  # floor(first) > col, without the call (col is whole)
                first = math.floor(first)
                if first >= width:
                    break
                if run:
                    append((last_style, BAR_CHAR * run))
                    run = 0
                append(("", " " * (first - col)))
                last_state = None
                col = first
            stop = ceil((end - origin) * scale)
            if stop <= col:
                stop = col + 1
            elif stop > width:
                stop = width
            state: str | None = states[i]
            if state is not last_state or i == sel:  # the style is looked up per run
                name = states[i]
                style = styles.get(name) or styles.setdefault(name, state_class(name))
                if i == sel:
                    style += SELECTED_STYLE
                    state = None  # the next bar starts a run of its own
                if style != last_style:
                    if run:
                        append((last_style, BAR_CHAR * run))
                    last_style, run = style, 0
                last_state = state
            run += stop - col
            col, drawn = stop, i
        if run:
            append((last_style, BAR_CHAR * run))
    if sel >= 0:
        out = _overlay(out, row.bars[sel], model.view, width, now)
    elif col < width:
        out.append(("", " " * (width - col)))
    return out


def _overlay(out: StyleAndTextTuples, bar: Bar, view: View, width: int,
             now: float) -> StyleAndTextTuples:
    """The selected bar drawn over whatever the first bar of its cells was (a cell shows the
    first task in it: the selection must not hide behind a neighbour)."""
    cells: list[tuple[str, str]] = []
    for fragment in out:
        cells += [(fragment[0], ch) for ch in fragment[1]]
    cells += [("", " ")] * (width - len(cells))
    first = int(view.column(bar.start, width))
    last = max(first + 1, int(view.column(bar.end_at(now), width)) + 1)
    for c in range(max(0, first), min(width, last)):
        cells[c] = (state_class(bar.state) + SELECTED_STYLE, BAR_CHAR)
    merged: StyleAndTextTuples = []
    for style, ch in cells:
        if merged and merged[-1][0] == style:
            merged[-1] = (style, merged[-1][1] + ch)
        else:
            merged.append((style, ch))
    return merged


def _gutter(model: TimelineModel, d: int) -> str:
    lane, r = model.layout.rows[d]
    if r == 0:
        return fit(one_line(lane.key), GUTTER)
    if r == len(lane.rows) - 1 and lane.hidden:
        return fit(f"  +{lane.hidden:,} hidden", GUTTER)
    return " " * GUTTER


class RowCache:
    """The lane rows' lines of the last frames, by display row, reused while the row (same
    layout), the view, the width, the selection in it and, for a row whose last task runs,
    the columns now falls in are the same: after a selection moves two rows are drawn again,
    as time passes only the rows with a running task. A new layout empties it."""

    def __init__(self) -> None:
        self._layout: object = None
        self._lines: dict[int, tuple[Row, tuple[object, ...], StyleAndTextTuples]] = {}

    def clear(self) -> None:
        self._layout = None
        self._lines.clear()

    def line(self, model: TimelineModel, d: int, cols: int, selected_row: int,
             styles: dict[str, str]) -> StyleAndTextTuples:
        layout = model.layout
        if layout is not self._layout:
            self._layout = layout
            self._lines.clear()
        row = layout.row(d)
        view = model.view
        sel = -1
        if selected_row == d:
            at = layout.where.get(model.selected) if model.selected is not None else None
            sel = at[1] if at is not None else -1
        now_at: tuple[int, int] | None = None
        if row.running:  # its bar's last column (and the selection's, drawn its own way)
            now = model.now()
            now_at = (math.ceil((now - view.start) * (cols / view.span)),  # as _row_cells
                      int(view.column(now, cols)))  # as _overlay
        key = (view, cols, sel, selected_row == d, now_at)
        cached = self._lines.get(d)
        if cached is not None and cached[0] is row and cached[1] == key:
            return cached[2]
        line = _row_line(model, d, cols, selected_row, styles)
        self._lines[d] = (row, key, line)
        return line


def _row_line(model: TimelineModel, d: int, cols: int, selected_row: int,
              styles: dict[str, str]) -> StyleAndTextTuples:
    label_style = "class:table.selected" if selected_row == d else "class:table.dim"
    return [(label_style, _gutter(model, d)), ("", " "), *_row_cells(model, d, cols, styles)]


def timeline_lines(model: TimelineModel, width: int, height: int,
                   cache: RowCache | None = None) -> list[StyleAndTextTuples]:
    """The pane's body: the ruler, then the lanes' rows that fit in ``height`` lines (the
    unchanged ones from ``cache``)."""
    cols = max(1, width - GUTTER - 1)
    lines = [ruler_line(model.view, cols)]
    shown = model.visible_rows(max(0, height - 1))
    if not model.layout.rows:
        lines.append([("class:pane.empty", fit(" no task with a received or started time in "
                                               "the task list", width))])
    styles: dict[str, str] = {}
    selected_row = model.selected_row()
    for d in shown:
        lines.append(cache.line(model, d, cols, selected_row, styles) if cache is not None
                     else _row_line(model, d, cols, selected_row, styles))
    return lines


def bar_text(model: TimelineModel) -> str:
    """The status line: the selected task, or the keys."""
    bar = model.selected_bar
    keys = "+/- zoom  ←/→ pan  z fit  f follow  v lanes  enter detail"
    if bar is None:
        return f"{_label(model.view.start, model.view.span)} – " \
               f"{_label(model.view.end, model.view.span)}   {keys}"
    rec = bar.record
    took = bar.end_at(model.now()) - bar.start
    return (f"{short_id(rec.uuid)} {one_line(rec.name or '?')} {rec.state} on "
            f"{one_line(rec.worker or '?')}  {clock_time(bar.start, millis=True)} "
            f"+{duration(took)}{'' if bar.end is not None else ' (running)'}   {keys}")


class TimelineView(PaneViewBase):
    """The ruler and the lanes, and a status line under them."""

    def __init__(self, ctx: ScreenContext) -> None:
        from prompt_toolkit.layout import HSplit, Window
        from prompt_toolkit.layout.controls import FormattedTextControl, UIContent, UIControl

        from lazycelery.tui.panes.common import title_bar
        from lazycelery.tui.screen.render_errors import MARKER_STYLE, PANE_MARKER

        self.ctx = ctx
        screen = ctx.screen
        model = self.model = screen.timeline
        # in the dashboard the layout is built off the UI thread, which redraws when it is ready
        model.threaded = True
        model.on_built = screen.shell.invalidate
        focused = lambda: screen.ui.pane == "timeline"  # noqa: E731
        view = self

        class Lanes(UIControl):
            def is_focusable(self) -> bool:
                return True

            def create_content(self, width: int, height: int) -> UIContent:
                try:
                    view.redraw_in(model.refresh())
                    view.page_rows = max(1, height - 1)
                    lines = view.lines(width, height)
                except Exception as exc:  # a bug: one marker line, the frame completes
                    screen.render_errors.record("timeline", exc)
                    lines = [[(MARKER_STYLE, fit(f" {PANE_MARKER}", width))]]
                return UIContent(get_line=lambda i: lines[i] if i < len(lines) else [],
                                 line_count=len(lines), show_cursor=False)

        def title() -> StyleAndTextTuples:
            return [("bold", f" {PANE.key} {PANE.title} "), ("", f" {model.title()}")]

        self.page_rows = 10
        self._timer = False
        self._key: tuple[object, ...] | None = None
        self._lines: list[StyleAndTextTuples] = []
        self.rows = RowCache()
        self.body = Window(Lanes(), wrap_lines=False, always_hide_cursor=True)
        self._container = HSplit([
            title_bar(title, focused), self.body,
            Window(FormattedTextControl(lambda: [("", " " + bar_text(model))]), height=1,
                   style="class:footer")])
        screen.set_page_rows("timeline", lambda: self.page_rows)

    def container(self) -> Container:
        return self._container

    def lines(self, width: int, height: int) -> list[StyleAndTextTuples]:
        """The body's lines, drawn again only when what they show changed (the layout, the
        view, the selection, the size, or a running task's bar grew by a column)."""
        model = self.model
        view = model.view
        step = view.span / max(1, width)
        key = (model.layout, view, width, height, model.selected, model.top,
               math.floor(model.now() / step))
        if key != self._key:
            self._lines = timeline_lines(model, width, height, self.rows)
            self._key = (model.layout, view, width, height, model.selected, model.top, key[-1])
        return self._lines

    def forget(self) -> None:
        """Draw the next frame whole, every row (the bench times frames after a change)."""
        self._key = None
        self.rows.clear()

    def redraw_in(self, seconds: float | None) -> None:
        """A change of the tasks was held back (rebuilds are throttled): draw again when it is
        due, even if no event or key comes to trigger a frame."""
        shell = self.ctx.screen.shell
        if seconds is None or self._timer or not shell.running:
            return
        self._timer = True

        async def later() -> None:
            import asyncio

            try:
                await asyncio.sleep(seconds)
            finally:
                self._timer = False
            shell.invalidate()

        shell.spawn(later())

    def move(self, delta: int) -> None:
        self.model.move(delta)

    def commands(self) -> Sequence[PaneCommand]:
        m = self.model
        return (
            PaneCommand("open", "Open the selected task's detail", self._open, keys=("enter",),
                        footer="detail"),
            PaneCommand("zoom_in", "Zoom in (half the time across the width)", m.zoom_in,
                        keys=("+", "="), footer="zoom"),
            PaneCommand("zoom_out", "Zoom out (twice the time)", m.zoom_out, keys=("-",)),
            PaneCommand("pan_left", "Pan back in time (a quarter of the width)",
                        lambda: m.pan(-0.25), keys=("left",), footer="pan"),
            PaneCommand("pan_right", "Pan forward in time (a quarter of the width)",
                        lambda: m.pan(0.25), keys=("right",)),
            PaneCommand("page_left", "Pan back a whole width", lambda: m.pan(-1.0),
                        keys=("<",)),
            PaneCommand("page_right", "Pan forward a whole width", lambda: m.pan(1.0),
                        keys=(">",)),
            PaneCommand("fit", "Zoom to fit every task", m.fit, keys=("z",), footer="fit"),
            PaneCommand("follow", "Follow now (the right edge stays at now)",
                        m.toggle_follow, keys=("f",)),
            PaneCommand("lanes", "Lanes per worker process / per queue", m.toggle_grouping,
                        keys=("v",), footer="lanes"),
            PaneCommand("next_task", "Next task in the row", lambda: m.step(1), keys=("]",)),
            PaneCommand("prev_task", "Previous task in the row", lambda: m.step(-1),
                        keys=("[",)),
        )

    def _open(self) -> None:
        rec = self.model.selected_record()
        if rec is None:
            self.ctx.log("no task selected: up / down select one", error=True)
            return
        self.ctx.screen.open_task(rec)


#: what the ``lazycelery.panes`` entry point ``timeline`` names
PANE = BuiltinPane(name="timeline", title="Timeline", key="T", slot=BODY, view=TimelineView,
                   command_title="Go to the timeline")
