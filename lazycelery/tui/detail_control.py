"""The task detail's control: the visible part of the detail lines, the cursor line highlighted,
scrolled to keep the cursor in view (a section jump puts its heading at the top)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from prompt_toolkit.data_structures import Point
from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.layout.controls import UIContent, UIControl

from lazycelery.tui.format import fit, one_line
from lazycelery.tui.screen.detail import DetailModel
from lazycelery.tui.screen.render_errors import MARKER_STYLE, PANE_MARKER

__all__ = ["DetailControl", "StyledLine"]


class StyledLine(Protocol):
    """A detail line as drawn: its fragments, and its text (for the cursor line)."""

    @property
    def fragments(self) -> StyleAndTextTuples: ...

    @property
    def text(self) -> str: ...

    @property
    def link(self) -> str | None: ...

    @property
    def section(self) -> str | None: ...


class DetailControl(UIControl):
    """Renders the visible part of the detail with the cursor line highlighted."""

    def __init__(self, model: DetailModel[StyledLine], empty: Callable[[], str]) -> None:
        self.model = model
        self.empty = empty
        self.top = 0

    def is_focusable(self) -> bool:
        return True

    def create_content(self, width: int, height: int) -> UIContent:
        try:
            return self._content(width, height)
        except Exception as exc:  # a bug: one marker line, the frame completes
            self.model.errors.record("detail", exc)
            marker: StyleAndTextTuples = [(MARKER_STYLE, fit(f" {PANE_MARKER}", width))]
            return UIContent(get_line=lambda i: marker if i == 0 else [], line_count=1,
                             show_cursor=False)

    def _content(self, width: int, height: int) -> UIContent:
        model = self.model
        lines = model.lines(max(20, width - 1))
        model.page_rows = height
        if not lines:
            empty: StyleAndTextTuples = [("class:pane.empty", " " + one_line(self.empty()))]
            return UIContent(get_line=lambda i: empty, line_count=1, show_cursor=False)
        cursor = model.cursor
        if model.anchor_top:
            self.top = cursor  # a heading jumped to shows its section below it
            model.anchor_top = False
        if cursor < self.top:
            self.top = cursor
        elif cursor >= self.top + height:
            self.top = cursor - height + 1
        self.top = max(0, min(self.top, max(0, len(lines) - height)))
        visible = lines[self.top:self.top + height]
        rendered: list[StyleAndTextTuples] = []
        for i, line in enumerate(visible):
            frags = line.fragments
            if self.top + i == cursor:
                frags = [("class:detail.cursor", fit(line.text, width))]
            rendered.append(frags)
        return UIContent(get_line=lambda i: rendered[i] if i < len(rendered) else [],
                         line_count=len(rendered),
                         cursor_position=Point(0, cursor - self.top), show_cursor=False)
