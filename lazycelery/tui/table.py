"""A virtual table: a UIControl that formats only the rows on screen, whatever the row count.

The control owns scrolling (``top``) and renders exactly the visible slice, so prompt_toolkit's
Window never sees more lines than fit. When the selected item is the same as last frame, the
selection keeps its screen row while rows arrive above it; otherwise the view scrolls just
enough to show it. Column widths are measured on the visible rows only and only grow, so the
layout does not jitter while scrolling (they reset on resize).

Cell text is made one line with control characters shown as escapes (whatever type the cell
function returned); a row whose cells raise shows a marker, and a failure of the whole table
one marker line, each counted in ``errors``: a frame always completes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from prompt_toolkit.data_structures import Point
from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.layout.controls import UIContent, UIControl

from lazycelery.tui.format import fit, one_line
from lazycelery.tui.guard import MARKER_STYLE, PANE_MARKER, ROW_MARKER, RenderErrors

__all__ = ["Cell", "Column", "ListModel", "TableModel", "VirtualTable"]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

#: (style, text) of one cell
Cell = tuple[str, str]


class TableModel(Protocol[T_co]):
    """What a virtual table reads: a row count, a slice, and where the selection is."""

    def __len__(self) -> int: ...

    def rows(self, start: int, stop: int) -> Sequence[T_co]: ...

    def selected_index(self) -> int: ...


@dataclass(frozen=True)
class Column(Generic[T]):
    """``width``: fixed cells; 0 = flexible, sized from visible rows between ``min_width`` and
    ``max_width`` (then ``grow`` shares what is left). ``priority``: higher columns are dropped
    first when the terminal is narrow."""

    title: str
    cell: Callable[[T], Cell]
    width: int = 0
    min_width: int = 4
    max_width: int = 1000
    align: str = "left"
    grow: int = 0
    priority: int = 0


class ListModel(Generic[T]):
    """A small in-memory list with a selection kept by key (workers, queues)."""

    def __init__(self, key: Callable[[T], object]) -> None:
        self._key = key
        self.items: list[T] = []
        self.selected_key: object = None

    def set_items(self, items: Sequence[T]) -> None:
        self.items = list(items)
        if self.items and self.selected_index() < 0:
            self.selected_key = self._key(self.items[0])

    def __len__(self) -> int:
        return len(self.items)

    def rows(self, start: int, stop: int) -> Sequence[T]:
        return self.items[max(0, start):stop]

    def selected_index(self) -> int:
        for i, item in enumerate(self.items):
            if self._key(item) == self.selected_key:
                return i
        return -1

    @property
    def selected(self) -> T | None:
        i = self.selected_index()
        return self.items[i] if i >= 0 else None

    def select_index(self, i: int) -> None:
        if self.items:
            self.selected_key = self._key(self.items[max(0, min(i, len(self.items) - 1))])

    def move(self, delta: int) -> None:
        self.select_index(max(0, self.selected_index()) + delta)


class VirtualTable(UIControl, Generic[T]):
    """Renders ``model()`` with ``columns``; the first line is the column header."""

    def __init__(self, model: Callable[[], TableModel[T]], columns: Sequence[Column[T]], *,
                 focused: Callable[[], bool] = lambda: True,
                 row_style: Callable[[T], str] | None = None,
                 selection_key: Callable[[], object] | None = None,
                 empty_text: Callable[[], str] = lambda: "nothing to show",
                 show_header: bool = True, errors: RenderErrors | None = None) -> None:
        self.model = model
        self.columns = list(columns)
        self.focused = focused
        self.row_style = row_style
        self.selection_key = selection_key
        self.empty_text = empty_text
        self.show_header = show_header
        self.top = 0
        #: rows of data that fit on screen at the last render (drives page up/down)
        self.page_rows = 10
        self._widths: dict[int, int] = {}
        self._last_width = -1
        self._last_key: object = None
        self._last_screen_row = 0
        #: data rows formatted by the last render (never more than fit on screen)
        self.rendered_rows = 0
        #: where rows and frames that could not be shown are counted (the dashboard shares one)
        self.errors = errors if errors is not None else RenderErrors()

    def is_focusable(self) -> bool:
        return True

    # ------------------------------------------------------------------ layout

    def _scroll(self, n: int, sel: int, body: int) -> None:
        key = self.selection_key() if self.selection_key is not None else None
        if sel >= 0 and key is not None and key == self._last_key:
            # same item selected: keep it on the same screen row
            self.top = sel - self._last_screen_row
        if sel >= 0:
            if sel < self.top:
                self.top = sel
            elif sel >= self.top + body:
                self.top = sel - body + 1
        self.top = max(0, min(self.top, max(0, n - body)))
        self._last_key = key
        self._last_screen_row = sel - self.top if sel >= 0 else 0

    def _layout(self, width: int, cells: list[list[Cell] | None]) -> list[tuple[int, int]]:
        """Pick the columns that fit and their widths: (column index, width) pairs, measured
        on the visible rows' cells only."""
        if width != self._last_width:
            self._widths.clear()
            self._last_width = width
        columns = self.columns
        wanted: dict[int, int] = {}

        def want(i: int) -> int:
            if i not in wanted:
                col = columns[i]
                measured = max([len(col.title)] + [len(row[i][1]) for row in cells if row])
                measured = max(measured, self._widths.get(i, 0))
                wanted[i] = col.width or max(col.min_width, min(measured, col.max_width))
            return wanted[i]

        def need(ids: list[int], core: bool) -> int:
            # core: essential (priority 0) columns at the width their content wants
            return sum(want(i) if core and columns[i].priority == 0 else
                       (columns[i].width or columns[i].min_width) for i in ids) + len(ids) - 1

        ids = sorted(range(len(columns)), key=lambda i: (columns[i].priority, i))
        # drop optional columns (highest priority number first) until everything fits at its
        # minimum and the essential columns get the width their visible content wants
        while len(ids) > 1 and columns[ids[-1]].priority > 0 and \
                (need(ids, core=False) > width or need(ids, core=True) > width):
            ids.pop()
        while len(ids) > 1 and need(ids, core=False) > width:
            ids.pop()
        chosen = sorted((i, columns[i]) for i in ids)
        widths: dict[int, int] = {}
        spare = width - sum(c.width or c.min_width for _, c in chosen) - (len(chosen) - 1)
        for i, col in chosen:
            if col.width:
                widths[i] = col.width
                continue
            extra = max(0, want(i) - col.min_width)
            take = min(extra, max(0, spare))
            widths[i] = col.min_width + take
            spare -= take
            self._widths[i] = widths[i]
        growers = [i for i, c in chosen if c.grow and not c.width]
        if spare > 0 and growers:
            total = sum(self.columns[i].grow for i in growers)
            for i in growers:
                widths[i] += spare * self.columns[i].grow // total
        return [(i, widths[i]) for i, _ in chosen]

    # ------------------------------------------------------------------ content

    def create_content(self, width: int, height: int) -> UIContent:
        try:
            return self._content(width, height)
        except Exception as exc:  # a bug: one marker line, the frame completes
            self.errors.record("table", exc)
            marker: StyleAndTextTuples = [(MARKER_STYLE, fit(f" {PANE_MARKER}", width))]
            return UIContent(get_line=lambda i: marker if i == 0 else [], line_count=1,
                             show_cursor=False)

    def _cells(self, row: T) -> list[Cell] | None:
        """The row's cells as (style, one-line text), or None when a cell function raised."""
        try:
            out: list[Cell] = []
            for col in self.columns:
                style, text = col.cell(row)
                out.append((style if isinstance(style, str) else "", one_line(text)))
            return out
        except Exception as exc:
            self.errors.record("table row", exc)
            return None

    def _content(self, width: int, height: int) -> UIContent:
        model = self.model()
        n = len(model)
        header = 1 if self.show_header else 0
        body = max(1, height - header)
        self.page_rows = body
        sel = model.selected_index()
        self._scroll(n, sel, body)
        rows = model.rows(self.top, self.top + body)
        self.rendered_rows = len(rows)
        cells = [self._cells(row) for row in rows]
        layout = self._layout(width, cells)
        lines: list[StyleAndTextTuples] = []
        if header:
            lines.append(self._header_line(layout, width))
        focused = self.focused()
        for offset, row in enumerate(rows):
            selected = self.top + offset == sel
            row_cells = cells[offset]
            line = None if row_cells is None else self._safe_row_line(
                row, row_cells, layout, width, selected, focused)
            lines.append(line if line is not None else self._marker_line(width, selected))
        if n == 0:
            lines.append([("class:pane.empty", fit(one_line(" " + self.empty_text()), width))])
        cursor = Point(0, max(0, sel - self.top) + header if sel >= 0 else 0)

        def get_line(i: int) -> StyleAndTextTuples:
            return lines[i] if i < len(lines) else []

        return UIContent(get_line=get_line, line_count=len(lines), cursor_position=cursor,
                         show_cursor=False)

    def _safe_row_line(self, row: T, cells: list[Cell], layout: list[tuple[int, int]],
                       width: int, selected: bool, focused: bool) -> StyleAndTextTuples | None:
        try:
            return self._row_line(row, cells, layout, width, selected, focused)
        except Exception as exc:  # row_style raised
            self.errors.record("table row", exc)
            return None

    @staticmethod
    def _marker_line(width: int, selected: bool) -> StyleAndTextTuples:
        style = MARKER_STYLE + (" class:table.selected" if selected else "")
        return [(style, fit(f" {ROW_MARKER}", width))]

    def _header_line(self, layout: list[tuple[int, int]], width: int) -> StyleAndTextTuples:
        cols = self.columns
        text = " ".join(fit(cols[i].title, w, cols[i].align) for i, w in layout)
        return [("class:table.header", fit(text, width))]

    def _row_line(self, row: T, cells: list[Cell], layout: list[tuple[int, int]], width: int,
                  selected: bool, focused: bool) -> StyleAndTextTuples:
        base = self.row_style(row) if self.row_style is not None else ""
        if selected:
            base += " class:table.selected" if focused else " class:table.selected.unfocused"
        out: StyleAndTextTuples = []
        used = 0
        for k, (i, w) in enumerate(layout):
            if k:
                out.append((base, " "))
                used += 1
            style, text = cells[i]
            out.append((f"{base} {style}" if style else base,
                        fit(text, w, self.columns[i].align)))
            used += w
        if used < width:
            out.append((base, " " * (width - used)))
        return out
