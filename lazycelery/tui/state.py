"""UI state that is not data: which pane is active, overlays, the detail stack, messages."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Final

from lazycelery.core.model import TaskRecord

__all__ = [
    "ALL_CONTEXTS",
    "LIST_PANES",
    "PANES",
    "PANE_ORDER",
    "UiState",
]

#: panes in the order tab and 1-4 use
PANE_ORDER: Final = ("workers", "queues", "tasks", "detail")
PANES: Final = frozenset(PANE_ORDER)
LIST_PANES: Final = frozenset({"workers", "queues", "tasks"})
#: every key context: a pane, an overlay, or a prompt
ALL_CONTEXTS: Final = PANES | {"help", "palette", "filter", "dialog"}


@dataclass
class UiState:
    """Mutable UI state; the controller (``app.Dashboard``) is its only writer."""

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
            return "filter"
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
