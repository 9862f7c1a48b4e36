"""UI state that is not data: which pane is active, overlays, the filter prompt, the detail stack,
the status-line message; and the names of the key contexts."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from lazycelery.core.model import TaskRecord

__all__ = ["FILTER", "OVERLAYS", "UiState", "contexts"]

#: the overlays: help (``?``), the command palette (``:``), an operator action's dialog and a
#: queue's next messages (peek), the routing tree (routes)
OVERLAYS: Final = ("help", "palette", "dialog", "peek", "routes")
#: the filter prompt's key context
FILTER: Final = "filter"


def contexts(panes: Iterable[str]) -> frozenset[str]:
    """Every key context: a pane, an overlay, or the filter prompt."""
    return frozenset(panes) | frozenset(OVERLAYS) | {FILTER}


@dataclass
class UiState:
    """Mutable UI state; the screen model (``ScreenModel``) is its only writer."""

    pane: str = "tasks"
    #: "help" | "palette" | "dialog" (an operator action's confirmation) | None
    overlay: str | None = None
    filter_editing: bool = False
    #: the filter that was active when the prompt opened (restored by esc)
    filter_before: str = ""
    filter_error: str | None = None
    filter_error_column: int = 0
    filter_history: list[str] = field(default_factory=list)
    #: tasks opened from the detail's family tree (esc goes back through them)
    detail_stack: list[TaskRecord] = field(default_factory=list)
    #: the pane the detail was opened from
    detail_return: str = "tasks"
    flash_text: str | None = None
    flash_error: bool = False
    flash_until: float = 0.0

    @property
    def context(self) -> str:
        """Which keys apply now: the prompt, else the overlay, else the pane."""
        if self.filter_editing:
            return FILTER
        if self.overlay is not None:
            return self.overlay
        return self.pane

    def flash(self, text: str, *, error: bool = False, seconds: float = 4.0) -> None:
        self.flash_text = text
        self.flash_error = error
        self.flash_until = time.monotonic() + seconds

    def current_flash(self) -> tuple[str, bool] | None:
        if self.flash_text is None or time.monotonic() > self.flash_until:
            return None
        return self.flash_text, self.flash_error
