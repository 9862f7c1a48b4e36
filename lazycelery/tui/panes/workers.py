"""The workers pane: status, name, active, processed, load, heartbeat age, version."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.layout import Container

from lazycelery.core.views import WorkerRow
from lazycelery.tui.format import age, fixed, number
from lazycelery.tui.panes.common import pane
from lazycelery.tui.table import Column, VirtualTable

if TYPE_CHECKING:
    from lazycelery.tui.app import Dashboard

__all__ = ["worker_columns", "worker_table", "workers_pane"]

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


def worker_table(d: Dashboard) -> VirtualTable[WorkerRow]:
    return VirtualTable(
        lambda: d.workers, worker_columns(), focused=lambda: d.ui.pane == "workers",
        selection_key=lambda: d.workers.selected_key,
        empty_text=lambda: "no workers seen yet",
    )


def workers_title(d: Dashboard) -> StyleAndTextTuples:
    rows = d.workers.items
    online = sum(1 for w in rows if w.status == "online")
    text: StyleAndTextTuples = [("bold", " 1 Workers "), ("", f" {online}/{len(rows)} online")]
    if d.stale:
        text.append(("bold", "  STALE"))
    return text


def workers_pane(d: Dashboard, table: VirtualTable[WorkerRow]) -> Container:
    return pane(lambda: workers_title(d), table, lambda: d.ui.pane == "workers",
                lambda: d.stale)
