"""Rendering that never takes the keys away: a row, pane or overlay that raises while it is drawn
shows a marker instead, and the error is counted and logged once per kind.

Without this, an exception in a control reaches prompt_toolkit's event-loop handler, which
prints the traceback and waits for Enter; the next frame raises again while the row is on
screen, so neither ``q`` nor Ctrl-C gets through. The formatting helpers are total
(``lazycelery.tui.format``), so these guards are the last line, for bugs, not for bad data.
"""

from __future__ import annotations

import logging
from typing import Final

from prompt_toolkit.key_binding import KeyBindingsBase
from prompt_toolkit.layout import Container
from prompt_toolkit.layout.dimension import Dimension
from prompt_toolkit.layout.mouse_handlers import MouseHandlers
from prompt_toolkit.layout.screen import Char, Screen, WritePosition
from prompt_toolkit.utils import get_cwidth

from lazycelery.text import visible

__all__ = [
    "MARKER_STYLE",
    "PANE_MARKER",
    "ROW_MARKER",
    "SECTION_MARKER",
    "GuardedContainer",
    "RenderErrors",
]

log = logging.getLogger(__name__)

ROW_MARKER: Final = "⚠ row could not be shown"
SECTION_MARKER: Final = "⚠ this section could not be shown"
PANE_MARKER: Final = "⚠ this part of the screen could not be shown"
MARKER_STYLE: Final = "class:render.error"
_MAX_KINDS: Final = 100


class RenderErrors:
    """How often rendering failed, and each kind (where, exception type) logged once.

    The log record goes to the ``lazycelery.tui.guard`` logger at debug level: the dashboard
    owns the terminal, and a warning would be printed across the screen by logging's last-resort
    handler. What the user sees: the last frame's count in the header, each new kind flashed once.
    """

    def __init__(self) -> None:
        #: failures since start (every frame that hits a faulty row counts it again)
        self.count = 0
        #: failures in the last complete frame (what the header shows: not a growing total)
        self.last_frame = 0
        self._this_frame = 0
        self._kinds: set[tuple[str, str]] = set()
        #: one-line summaries of kinds not yet shown to the user (the dashboard flashes them)
        self.new: list[str] = []

    def begin_frame(self) -> None:
        """Called before each render: the failures counted so far make the last frame's."""
        self.last_frame, self._this_frame = self._this_frame, 0

    def record(self, where: str, exc: BaseException) -> None:
        self.count += 1
        self._this_frame += 1
        kind = (where, type(exc).__name__)
        if kind in self._kinds or len(self._kinds) >= _MAX_KINDS:
            return
        self._kinds.add(kind)
        summary = visible(f"{where}: {type(exc).__name__}: {_str_of(exc)}")[:200]
        self.new.append(summary)
        log.debug("could not render %s", where, exc_info=exc)

    def take_new(self) -> list[str]:
        new, self.new = self.new, []
        return new


def _str_of(exc: BaseException) -> str:
    """``str(exc)``, which may itself raise (a broken ``__str__``)."""
    try:
        return str(exc)
    except Exception:
        return f"<{type(exc).__name__}>"


class GuardedContainer(Container):
    """Wraps a container: an exception while it is measured or drawn is recorded and the area
    shows a marker line, so the frame completes and the keys keep working."""

    def __init__(self, inner: Container, where: str, errors: RenderErrors) -> None:
        self.inner = inner
        self.where = where
        self.errors = errors

    def _failed(self, exc: BaseException) -> None:
        self.errors.record(self.where, exc)

    def reset(self) -> None:
        try:
            self.inner.reset()
        except Exception as exc:
            self._failed(exc)

    def preferred_width(self, max_available_width: int) -> Dimension:
        try:
            return self.inner.preferred_width(max_available_width)
        except Exception as exc:
            self._failed(exc)
            return Dimension()

    def preferred_height(self, width: int, max_available_height: int) -> Dimension:
        try:
            return self.inner.preferred_height(width, max_available_height)
        except Exception as exc:
            self._failed(exc)
            return Dimension(min=1)

    def write_to_screen(self, screen: Screen, mouse_handlers: MouseHandlers,
                        write_position: WritePosition, parent_style: str, erase_bg: bool,
                        z_index: int | None) -> None:
        try:
            self.inner.write_to_screen(screen, mouse_handlers, write_position, parent_style,
                                       erase_bg, z_index)
        except Exception as exc:
            self._failed(exc)
            _draw_marker(screen, write_position, f" {PANE_MARKER} ({self.where})")

    def is_modal(self) -> bool:
        return self.inner.is_modal()

    def get_key_bindings(self) -> KeyBindingsBase | None:
        return self.inner.get_key_bindings()

    def get_children(self) -> list[Container]:
        return [self.inner]


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
