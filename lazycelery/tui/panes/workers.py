"""The workers pane: status, name, active, processed, load, heartbeat age, version.

Imports without prompt_toolkit (``lazycelery plugins`` loads it to list the pane); its control is
made when the dashboard creates the pane."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lazycelery.core.worker_rows import WorkerRow
from lazycelery.panes_api import PaneViewBase
from lazycelery.tui.columns import Column
from lazycelery.tui.format import age, fixed, number
from lazycelery.tui.screen.builtin import TOP, BuiltinPane, ScreenContext

if TYPE_CHECKING:
    from prompt_toolkit.formatted_text import StyleAndTextTuples
    from prompt_toolkit.layout import Container

    from lazycelery.tui.screen.model import ScreenModel
    from lazycelery.tui.table import VirtualTable

__all__ = ["PANE", "WorkersView", "worker_columns", "workers_title"]

_DOT = {"online": "●", "lost": "◌", "offline": "○"}


def worker_columns() -> list[Column[WorkerRow]]:
    return [
        Column("STATUS", lambda w: (f"class:worker.{w.status}", f"{_DOT.get(w.status, '?')} "
                                    f"{w.status}"), width=9),
        Column("WORKER", lambda w: ("", w.hostname), min_width=10, max_width=40, grow=1),
        Column("ACTIVE", lambda w: ("", number(w.active)), width=6, align="right"),
        Column("PROCESSED", lambda w: ("", number(w.processed)), width=9, align="right",
               priority=1),
        Column("LOAD", lambda w: ("", fixed(w.load, 2)), width=5,
               align="right", priority=2),
        Column("HB", lambda w: ("", age(w.heartbeat_age)), width=4, align="right", priority=1),
        Column("VERSION", lambda w: ("class:table.dim", w.version or ""), width=7, priority=3),
    ]


def workers_title(screen: ScreenModel) -> StyleAndTextTuples:
    rows = screen.workers.items
    online = sum(1 for w in rows if w.status == "online")
    text: StyleAndTextTuples = [("bold", f" {PANE.key} {PANE.title} "),
                                ("", f" {online}/{len(rows)} online")]
    if screen.stale:
        text.append(("bold", "  STALE"))
    return text


class WorkersView(PaneViewBase):
    """The workers table under its title bar."""

    def __init__(self, ctx: ScreenContext) -> None:
        from lazycelery.tui.panes.common import pane
        from lazycelery.tui.table import VirtualTable

        screen = ctx.screen
        self.table: VirtualTable[WorkerRow] = VirtualTable(
            lambda: screen.workers, worker_columns(), focused=lambda: screen.ui.pane == "workers",
            selection_key=lambda: screen.workers.selected_key,
            empty_text=lambda: "no workers seen yet", errors=screen.render_errors,
        )
        screen.set_page_rows("workers", lambda: self.table.page_rows)
        self._container = pane(lambda: workers_title(screen), self.table,
                               lambda: screen.ui.pane == "workers", lambda: screen.stale)

    def container(self) -> Container:
        return self._container


#: what the ``lazycelery.panes`` entry point ``workers`` names
PANE = BuiltinPane(name="workers", title="Workers", key="1", slot=TOP, view=WorkersView,
                   command_title="Go to workers")
