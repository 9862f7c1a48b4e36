"""The timeline pane's row drawing before the fused renderer and the row cache (verbatim from
lazycelery/tui/panes/timeline.py at acffd53): bench/bench_timeline.py times it in the same run as
today's, tests/test_timeline_frames.py checks today's draws exactly the same lines."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lazycelery.core.timeline import Bar, View, render_row
from lazycelery.tui.format import fit, one_line
from lazycelery.tui.panes.timeline import BAR_CHAR, GUTTER, SELECTED_STYLE, ruler_line
from lazycelery.tui.style import state_class

if TYPE_CHECKING:
    from prompt_toolkit.formatted_text import StyleAndTextTuples

    from lazycelery.tui.screen.timeline import TimelineModel

__all__ = ["timeline_lines"]


def _row_cells(model: TimelineModel, d: int, width: int,
               styles: dict[str, str]) -> StyleAndTextTuples:
    """One lane row's cells; adjacent bars of one state make one fragment."""
    row = model.layout.row(d)
    now = model.now()
    out: StyleAndTextTuples = []
    col = 0
    selected = model.selected_bar
    last_style, run = "", 0
    for col0, stop, bar in render_row(row, model.view, width, now):
        state = bar.state
        style = styles.get(state) or styles.setdefault(state, state_class(state))
        if bar is selected:
            style += SELECTED_STYLE
        if col0 > col or style != last_style:
            if run:
                out.append((last_style, BAR_CHAR * run))
            if col0 > col:
                out.append(("", " " * (col0 - col)))
            last_style, run = style, 0
        run += stop - col0
        col = stop
    if run:
        out.append((last_style, BAR_CHAR * run))
    if selected is not None and model.selected_row() == d:
        out = _overlay(out, selected, model.view, width, now)
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


def timeline_lines(model: TimelineModel, width: int, height: int) -> list[StyleAndTextTuples]:
    """The pane's body: the ruler, then the lanes' rows that fit in ``height`` lines."""
    cols = max(1, width - GUTTER - 1)
    lines = [ruler_line(model.view, cols)]
    shown = model.visible_rows(max(0, height - 1))
    if not model.layout.rows:
        lines.append([("class:pane.empty", fit(" no task with a received or started time in "
                                               "the task list", width))])
    styles: dict[str, str] = {}
    selected_row = model.selected_row()
    for d in shown:
        sel = selected_row == d
        label_style = "class:table.selected" if sel else "class:table.dim"
        lines.append([(label_style, _gutter(model, d)), ("", " "),
                      *_row_cells(model, d, cols, styles)])
    return lines


