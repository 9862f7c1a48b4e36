"""The task detail's model: which task is shown, the cursor over its lines, section jumps and the
task a line links to. The lines themselves are made by the detail pane (``build``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, Protocol, TypeVar

from lazycelery.core.index import TaskIndex
from lazycelery.core.model import TaskRecord
from lazycelery.tui.screen.render_errors import RenderErrors

__all__ = ["DetailLineLike", "DetailModel"]


class DetailLineLike(Protocol):
    """What the model needs of a detail line: the task it opens, the section it heads."""

    @property
    def link(self) -> str | None: ...

    @property
    def section(self) -> str | None: ...


L = TypeVar("L", bound=DetailLineLike)


class DetailModel(Generic[L]):
    """Cursor and scroll over the detail lines of one task (lines cached per index version)."""

    def __init__(self, index: TaskIndex,
                 build: Callable[..., Sequence[L]] | None = None) -> None:
        self.index = index
        #: makes the lines of a task at a width (set by the detail pane when it is mounted)
        self.build = build
        #: FROM_HISTORY / BACKFILLED / LOADING bits of a record (the screen model's)
        self.origin: Callable[[TaskRecord], int] = lambda _rec: 0
        #: sections that could not be built are counted here (the dashboard shares one)
        self.errors = RenderErrors()
        self.record: TaskRecord | None = None
        self.cursor = 0
        self.page_rows = 10
        #: set by a section jump: the next render puts the cursor line at the top
        self.anchor_top = False
        #: result-backend metas of the shown task's workflow (group / chord links), fetched off
        #: the UI thread by the ``task.workflow`` command; cleared when another task is shown
        self.links: dict[str, Mapping[str, Any]] = {}
        self._lines: list[L] = []
        self._key: tuple[int, int, int, int, int] = (0, -1, -1, 0, 0)

    def show(self, rec: TaskRecord | None) -> None:
        if rec is not self.record:
            self.record = rec
            self.cursor = 0
            self._key = (0, -1, -1, 0, 0)
            if rec is None or rec.uuid not in self.links:
                self.links = {}

    def lines(self, width: int) -> list[L]:
        rec = self.record
        if rec is None or self.build is None:
            return []
        origin = self.origin(rec)
        key = (id(rec), self.index.version, width, origin, id(self.links))
        if key != self._key:
            extra = {"metas": self.links} if self.links else {}
            self._lines = list(self.build(rec, self.index, width, self.errors, origin=origin,
                                          **extra))
            self._key = key
            self.cursor = min(self.cursor, max(0, len(self._lines) - 1))
        return self._lines

    @property
    def current(self) -> list[L]:
        """The lines of the last render (what cursor movement works on)."""
        return self._lines

    def move(self, delta: int) -> None:
        self.cursor = max(0, min(self.cursor + delta, len(self._lines) - 1))

    def first(self) -> None:
        self.cursor = 0

    def last(self) -> None:
        self.cursor = max(0, len(self._lines) - 1)

    def section(self, delta: int) -> str | None:
        """Move to the next (+1) / previous (-1) heading; returns its name."""
        lines = self._lines
        i = self.cursor + delta
        while 0 <= i < len(lines):
            if lines[i].section is not None:
                self.cursor = i
                self.anchor_top = True
                return lines[i].section
            i += delta
        return None

    def jump_to(self, section: str) -> bool:
        for i, line in enumerate(self._lines):
            if line.section == section:
                self.cursor = i
                return True
        return False

    def link(self) -> str | None:
        if 0 <= self.cursor < len(self._lines):
            return self._lines[self.cursor].link
        return None
