"""The cluster view: one row per environment (connection or why not, workers online/total,
tasks/s, failure rate, queue depth and oldest age, last gap); enter switches to the row's
environment. Mounted like a plugin pane (``clusters_info``) in a dashboard over several
environments; a handful of rows, so a formatted-text control is enough."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Final

from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.layout import Container, Window
from prompt_toolkit.layout.controls import FormattedTextControl

from lazycelery.core.env_status import EnvStatus, format_age
from lazycelery.panes_api import PaneCommand, PaneContext, PaneView, PaneViewBase
from lazycelery.text import counted
from lazycelery.tui.plugins import PluginInfo
from lazycelery.tui.screen.envs import PT_COLORS, EnvSwitcher

__all__ = ["ClustersPane", "ClustersView", "cluster_lines", "clusters_info"]

_HEADINGS: Final = ("ENV", "WORKERS", "TASKS/S", "FAILED", "QUEUED", "OLDEST", "LAST GAP")


def _cells(row: EnvStatus, now: float) -> tuple[str, ...]:
    gap = row.last_gap
    return (
        row.name + (" (ro)" if row.read_only else ""),
        f"{row.workers_online}/{row.workers_total}", f"{row.tasks_per_s:.1f}",
        "-" if row.failure_rate is None else f"{row.failure_rate:.1%}",
        "-" if row.queue_depth is None else f"{row.queue_depth:,}",
        format_age(row.oldest_age_s),
        "-" if gap is None else f"{gap.seconds:.1f} s, {format_age(now - gap.end)} ago",
    )


def cluster_lines(rows: Sequence[EnvStatus], *, cursor: int, current: str,
                  now: float | None = None) -> StyleAndTextTuples:
    """The table as formatted text: headings, then one line per environment; the cursor's
    row reversed, the shown environment marked ``*``, a row not connected in the error
    style with its reason last."""
    now = time.time() if now is None else now
    table = [_HEADINGS, *(_cells(r, now) for r in rows)]
    widths = [max(len(cells[i]) for cells in table) for i in range(len(_HEADINGS))]
    out: StyleAndTextTuples = [("class:table.header", "  " + "  ".join(
        h.ljust(w) for h, w in zip(_HEADINGS, widths, strict=True)) + "  CONNECTION\n")]
    for i, row in enumerate(rows):
        cells = table[i + 1]
        mark = "* " if row.name == current else "  "
        style = "reverse " if i == cursor else ""
        color = PT_COLORS.get(row.color or "")
        out.append((style + (f"fg:{color} bold" if color else ""),
                    mark + cells[0].ljust(widths[0])))
        out.append((style, "  " + "  ".join(
            c.ljust(w) for c, w in zip(cells[1:], widths[1:], strict=True)) + "  "))
        bad = row.state != "connected"
        out.append((style + ("class:message.error" if bad else ""), row.connection_text()))
        out.append(("", "\n"))
    return out


class ClustersView(PaneViewBase):
    """The cluster view of one dashboard (every environment's dashboard has one)."""

    def __init__(self, switcher: EnvSwitcher) -> None:
        self.switcher = switcher
        self.rows: list[EnvStatus] = []
        self._window = Window(FormattedTextControl(self._text), wrap_lines=False,
                              always_hide_cursor=True)

    def _text(self) -> StyleAndTextTuples:
        return cluster_lines(self.rows, cursor=self.switcher.cursor,
                             current=self.switcher.current)

    def container(self) -> Container:
        return self._window

    def refresh(self) -> None:
        self.rows = self.switcher.statuses()

    def commands(self) -> Sequence[PaneCommand]:
        return (PaneCommand("switch", "Show this environment (every pane follows)",
                            self.switcher.switch_to_cursor, ("enter",), footer="switch"),)

    def move(self, delta: int) -> None:
        self.switcher.move(delta)

    def subtitle(self) -> str:
        down = sum(1 for r in self.rows if r.state != "connected")
        count = counted(len(self.rows), "environment")
        return f"{count} · {down} not connected" if down else count


class ClustersPane:
    """The ``clusters`` pane (not an entry point: mounted by the multi-environment driver)."""

    api_version = 1
    name = "clusters"
    title = "Clusters"
    key: str | None = "0"

    def __init__(self, switcher: EnvSwitcher) -> None:
        self.switcher = switcher

    def create(self, ctx: PaneContext) -> PaneView:
        return ClustersView(self.switcher)


def clusters_info(switcher: EnvSwitcher) -> PluginInfo:
    """The pane as the dashboard's pane host takes it."""
    return PluginInfo(name="clusters", target="lazycelery.tui.panes.clusters:ClustersPane",
                      distribution="lazycelery", version="", builtin=False,
                      pane=ClustersPane(switcher), title="Clusters", key="0")
