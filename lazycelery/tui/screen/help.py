"""The ``?`` overlay's model: its lines (built from the command registry when it opens) and where
it is scrolled to."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["HelpModel"]


class HelpModel:
    """Lines and scroll position of the help overlay; ``page_rows`` is set by the render."""

    def __init__(self, build: Callable[[str], Sequence[Any]] | None = None) -> None:
        #: makes the lines for a pane (set by the dashboard: the registry lives there)
        self.build = build
        self.lines: list[Any] = []
        self.top = 0
        self.page_rows = 10

    def open(self, context: str) -> None:
        """Fill the lines for ``context`` and scroll to the top."""
        self.lines = list(self.build(context)) if self.build is not None else []
        self.top = 0

    def scroll(self, delta: int) -> None:
        self.top = max(0, min(self.top + delta, max(0, len(self.lines) - self.page_rows)))
