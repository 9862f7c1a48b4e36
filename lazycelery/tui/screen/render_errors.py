"""What failed while the dashboard was drawn: a row, pane or overlay that raised shows a marker
instead, and the failure is counted (the header shows the last frame's count) and each kind is
logged once and flashed once. Headless: the panes' line builders record here too; the
prompt_toolkit side (the guarded container, the marker line) is ``tui.guard``."""

from __future__ import annotations

import logging
from typing import Final

from lazycelery.text import visible

__all__ = ["MARKER_STYLE", "PANE_MARKER", "ROW_MARKER", "SECTION_MARKER", "RenderErrors"]

log = logging.getLogger("lazycelery.tui.guard")

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
