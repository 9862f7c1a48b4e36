"""The queues pane: ready, reserved, consumers, rates, priorities and a sparkline of depth per
queue.

Imports without prompt_toolkit (``lazycelery plugins`` loads it to list the pane); its control is
made when the dashboard creates the pane."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from lazycelery.broker.model import QueueStats
from lazycelery.broker.report import format_dead_letter, format_priorities
from lazycelery.panes_api import PaneViewBase
from lazycelery.tui.columns import Column
from lazycelery.tui.format import age, duration, number, one_line, rate, sparkline
from lazycelery.tui.screen.builtin import TOP, BuiltinPane, ScreenContext

if TYPE_CHECKING:
    from prompt_toolkit.formatted_text import StyleAndTextTuples
    from prompt_toolkit.layout import Container

    from lazycelery.tui.screen.model import ScreenModel
    from lazycelery.tui.table import VirtualTable

__all__ = ["PANE", "QueuesView", "queue_columns", "queues_title"]


def queue_columns(screen: ScreenModel) -> list[Column[QueueStats]]:
    def ready(q: QueueStats) -> tuple[str, str]:
        style = "class:queue.backlog" if q.ready and q.consumers == 0 else ""
        return style, number(q.ready)

    def dead_letters(q: QueueStats) -> tuple[str, str]:
        style = "class:queue.backlog" if q.dead_letter_ready else ""
        return style, format_dead_letter(q)

    def wait_p95(q: QueueStats) -> str:
        stats = screen.queue_wait_stats.get(q.name)
        return duration(stats.wait_p95_s) if stats and stats.wait_p95_s is not None else "–"

    def empty_in(q: QueueStats) -> str:
        stats = screen.queue_wait_stats.get(q.name)
        if stats is None or stats.time_to_empty_s is None:
            return "–"
        return "never" if math.isinf(stats.time_to_empty_s) else age(stats.time_to_empty_s)

    return [
        Column("QUEUE", lambda q: ("", q.name), min_width=8, max_width=32, grow=1),
        Column("READY", ready, width=7, align="right"),
        Column("RESERVED", lambda q: ("", number(q.reserved)), width=8, align="right",
               priority=1),
        Column("CONS", lambda q: ("", number(q.consumers)), width=4, align="right"),
        Column("IN/S", lambda q: ("", rate(q.in_rate)), width=6, align="right", priority=2),
        Column("OUT/S", lambda q: ("", rate(q.out_rate)), width=6, align="right", priority=2),
        Column("Δ/S", lambda q: ("", rate(q.net_rate, signed=True)), width=6, align="right",
               priority=3),
        Column("OLDEST", lambda q: ("", age(q.oldest_age_s) if q.oldest_age_s is not None
                                    else "–"), width=6, align="right", priority=3),
        # Redis priority sub-lists, as `lazycelery queues` shows them (step:count, non-empty);
        # "max N" for a RabbitMQ x-max-priority queue
        Column("PRIORITIES", lambda q: ("", format_priorities(q)), min_width=10, max_width=24,
               priority=2),
        Column("DEAD LETTERS", dead_letters, min_width=12, max_width=32, priority=2),
        # from the event stream: task-sent -> task-received, over the last 5 minutes
        Column("WAIT p95", lambda q: ("", wait_p95(q)), width=8, align="right", priority=3),
        Column("EMPTY IN", lambda q: ("", empty_in(q)), width=8, align="right", priority=3),
        Column("DEPTH", lambda q: ("class:spark.queue",
                                   sparkline(screen.queue_history.series(q.name), 16)),
               width=16, priority=4),
    ]


def _empty(screen: ScreenModel) -> str:
    if screen.info.queues_unavailable:
        return screen.info.queues_unavailable
    snap = screen.queue_snapshot
    if snap is not None and snap.error:
        return f"queue depths unavailable: {snap.error}"
    return "no queues found yet"


def queues_title(screen: ScreenModel) -> StyleAndTextTuples:
    snap = screen.queue_snapshot
    text: StyleAndTextTuples = [("bold", f" {PANE.key} {PANE.title} "),
                                ("", f" {len(screen.queues)}")]
    if snap is not None and snap.queues:
        total = sum(q.ready for q in snap.queues if isinstance(q.ready, int))
        text.append(("", f"  {number(total)} ready"))
    if snap is not None and snap.stale and snap.taken_at:
        text.append(("bold", "  STALE"))
    if snap is not None and snap.error and snap.queues:
        text.append(("", f"  ({one_line(snap.error)})"))
    return text


def _snapshot_stale(screen: ScreenModel) -> bool:
    snap = screen.queue_snapshot
    return bool(snap and snap.stale and snap.taken_at)


class QueuesView(PaneViewBase):
    """The queues table under its title bar."""

    def __init__(self, ctx: ScreenContext) -> None:
        from lazycelery.tui.panes.common import pane
        from lazycelery.tui.table import VirtualTable

        screen = ctx.screen
        self.table: VirtualTable[QueueStats] = VirtualTable(
            lambda: screen.queues, queue_columns(screen),
            focused=lambda: screen.ui.pane == "queues",
            selection_key=lambda: screen.queues.selected_key, empty_text=lambda: _empty(screen),
            errors=screen.render_errors,
        )
        screen.set_page_rows("queues", lambda: self.table.page_rows)
        self._container = pane(lambda: queues_title(screen), self.table,
                               lambda: screen.ui.pane == "queues",
                               lambda: _snapshot_stale(screen))

    def container(self) -> Container:
        return self._container


#: what the ``lazycelery.panes`` entry point ``queues`` names
PANE = BuiltinPane(name="queues", title="Queues", key="2", slot=TOP, view=QueuesView,
                   command_title="Go to queues")
