"""The queues pane: ready, reserved, consumers, rates, priorities and a sparkline of depth per queue."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.layout import Container

from lazycelery.broker.model import QueueStats
from lazycelery.broker.report import format_priorities
from lazycelery.tui.format import age, number, one_line, rate, sparkline
from lazycelery.tui.panes.common import pane
from lazycelery.tui.table import Column, VirtualTable

if TYPE_CHECKING:
    from lazycelery.tui.app import Dashboard

__all__ = ["queue_columns", "queue_table", "queues_pane"]


def queue_columns(d: Dashboard) -> list[Column[QueueStats]]:
    def ready(q: QueueStats) -> tuple[str, str]:
        style = "class:queue.backlog" if q.ready and q.consumers == 0 else ""
        return style, number(q.ready)

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
        # Redis priority sub-lists, as `lazycelery queues` shows them (step:count, non-empty)
        Column("PRIORITIES", lambda q: ("", format_priorities(q)), min_width=10, max_width=24,
               priority=2),
        Column("DEPTH", lambda q: ("class:spark.queue",
                                   sparkline(d.queue_history.series(q.name), 16)),
               width=16, priority=4),
    ]


def queue_table(d: Dashboard) -> VirtualTable[QueueStats]:
    def empty() -> str:
        if d.info.queues_unavailable:
            return d.info.queues_unavailable
        snap = d.queue_snapshot
        if snap is not None and snap.error:
            return f"queue depths unavailable: {snap.error}"
        return "no queues found yet"

    return VirtualTable(
        lambda: d.queues, queue_columns(d), focused=lambda: d.ui.pane == "queues",
        selection_key=lambda: d.queues.selected_key, empty_text=empty,
    )


def queues_title(d: Dashboard) -> StyleAndTextTuples:
    snap = d.queue_snapshot
    text: StyleAndTextTuples = [("bold", " 2 Queues "), ("", f" {len(d.queues)}")]
    if snap is not None and snap.queues:
        total = sum(q.ready for q in snap.queues if isinstance(q.ready, int))
        text.append(("", f"  {number(total)} ready"))
    if snap is not None and snap.stale and snap.taken_at:
        text.append(("bold", "  STALE"))
    if snap is not None and snap.error and snap.queues:
        text.append(("", f"  ({one_line(snap.error)})"))
    return text


def queues_pane(d: Dashboard, table: VirtualTable[QueueStats]) -> Container:
    snap_stale = lambda: bool(d.queue_snapshot and d.queue_snapshot.stale  # noqa: E731
                              and d.queue_snapshot.taken_at)
    return pane(lambda: queues_title(d), table, lambda: d.ui.pane == "queues", snap_stale)
