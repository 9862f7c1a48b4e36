"""Rendering that never takes the keys away: a row, pane or overlay that raises while it is drawn
shows a marker instead, and the error is counted and logged once per kind (``RenderErrors``, in
the screen model).

Without this, an exception in a control reaches prompt_toolkit's event-loop handler, which
prints the traceback and waits for Enter; the next frame raises again while the row is on
screen, so neither ``q`` nor Ctrl-C gets through. The formatting helpers are total
(``lazycelery.tui.format``), so these guards are the last line, for bugs, not for bad data.
"""

from __future__ import annotations

from collections.abc import Callable

from prompt_toolkit.key_binding import KeyBindingsBase
from prompt_toolkit.layout import Container
from prompt_toolkit.layout.dimension import Dimension
from prompt_toolkit.layout.mouse_handlers import MouseHandlers
from prompt_toolkit.layout.screen import Char, Screen, WritePosition
from prompt_toolkit.utils import get_cwidth

from lazycelery.tui.screen.render_errors import (
    MARKER_STYLE,
    PANE_MARKER,
    ROW_MARKER,
    SECTION_MARKER,
    RenderErrors,
)

__all__ = [
    "MARKER_STYLE",
    "PANE_MARKER",
    "ROW_MARKER",
    "SECTION_MARKER",
    "GuardedContainer",
    "RenderErrors",
    "SafeContainer",
]


class SafeContainer(Container):
    """Wraps a container: an exception while it is reset, measured or drawn goes to ``on_error``
    (with the stage: "reset" or "render") and the frame completes; with a ``marker`` the area
    shows that line instead of what the inner container half-drew."""

    def __init__(self, inner: Container, on_error: Callable[[str, BaseException], None],
                 marker: str | None = None) -> None:
        self.inner = inner
        self.on_error = on_error
        self.marker = marker

    def reset(self) -> None:
        try:
            self.inner.reset()
        except Exception as exc:
            self.on_error("reset", exc)

    def preferred_width(self, max_available_width: int) -> Dimension:
        try:
            return self.inner.preferred_width(max_available_width)
        except Exception as exc:
            self.on_error("render", exc)
            return Dimension()

    def preferred_height(self, width: int, max_available_height: int) -> Dimension:
        try:
            return self.inner.preferred_height(width, max_available_height)
        except Exception as exc:
            self.on_error("render", exc)
            return Dimension(min=1) if self.marker else Dimension()  # room for the marker

    def write_to_screen(self, screen: Screen, mouse_handlers: MouseHandlers,
                        write_position: WritePosition, parent_style: str, erase_bg: bool,
                        z_index: int | None) -> None:
        try:
            self.inner.write_to_screen(screen, mouse_handlers, write_position, parent_style,
                                       erase_bg, z_index)
        except Exception as exc:
            self.on_error("render", exc)
            if self.marker:
                _draw_marker(screen, write_position, self.marker)

    def is_modal(self) -> bool:
        return self.inner.is_modal()

    def get_key_bindings(self) -> KeyBindingsBase | None:
        return self.inner.get_key_bindings()

    def get_children(self) -> list[Container]:
        return [self.inner]


class GuardedContainer(SafeContainer):
    """A part of the dashboard: an error is counted in ``errors`` (the screen model's
    ``RenderErrors``) and the area shows a marker line, so the keys keep working."""

    def __init__(self, inner: Container, where: str, errors: RenderErrors) -> None:
        super().__init__(inner, lambda _stage, exc: errors.record(where, exc),
                         f" {PANE_MARKER} ({where})")
        self.where = where
        self.errors = errors


def _draw_marker(screen: Screen, wp: WritePosition, text: str) -> None:
    """Blank the area (whatever the inner container half-drew) and put ``text`` on its first row."""
    blank = Char(" ", MARKER_STYLE)
    for y in range(wp.ypos, wp.ypos + wp.height):
        row = screen.data_buffer[y]
        for x in range(wp.xpos, wp.xpos + wp.width):
            row[x] = blank
    if wp.height <= 0:
        return
    row, x, end = screen.data_buffer[wp.ypos], wp.xpos, wp.xpos + wp.width
    for ch in text:
        width = get_cwidth(ch)
        if x + width > end:
            break
        row[x] = Char(ch, MARKER_STYLE)
        x += width
