"""The worker detail pane: enter on a worker (or ``w``) shows what that worker says of itself,
asked of it only (inspect with ``destination=[it]``, in a background thread): pool and process
pids, prefetch, rusage, task counts, active tasks with runtimes, queues, registered tasks; and
from its heartbeats: age, load average, software. ``r`` asks again (at most every 3 s), ``t``
lists its tasks, ``esc`` goes back to the workers.

Imports without prompt_toolkit (``lazycelery plugins`` loads it to list the pane); its control is
made when the dashboard creates the pane. The state is the screen model's
(``screen.worker_detail``); this module makes the lines."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from lazycelery.panes_api import PaneCommand
from lazycelery.tui.format import fit, one_line
from lazycelery.tui.panes.scroll_view import ScrollTextView
from lazycelery.tui.screen.builtin import BODY, BuiltinPane, ScreenContext
from lazycelery.tui.screen.worker_detail import WorkerDetailModel

if TYPE_CHECKING:
    from prompt_toolkit.formatted_text import StyleAndTextTuples

    from lazycelery.tui.screen.model import ScreenModel

__all__ = ["PANE", "TIMEOUT", "WorkerDetailView", "worker_lines", "worker_title"]

#: how long each inspect call waits for the worker
TIMEOUT: Final = 2.0
_LABEL_W: Final = 14


def worker_lines(model: WorkerDetailModel, width: int) -> list[StyleAndTextTuples]:
    """The pane's lines: the error line, a waiting line, or the sections of the detail."""
    out: list[StyleAndTextTuples] = []
    if model.error is not None:
        out.append([("class:task.state.failure", fit(" " + one_line(model.error), width))])
    detail = model.detail
    if detail is None:
        if model.error is None:
            out.append([("class:pane.empty", " asking the worker…" if model.hostname
                         else " no worker selected")])
        return out
    from lazycelery.core.worker_detail import detail_rows

    for title, rows in detail_rows(detail):
        out.append([("class:detail.section", fit(title, width))])
        for label, value in rows:
            label_text = f"  {label:<{_LABEL_W}} " if label else "  "
            out.append([("class:detail.label", label_text),
                        ("", fit(value, max(1, width - len(label_text))))])
        out.append([])
    return out


def worker_title(screen: ScreenModel) -> StyleAndTextTuples:
    model = screen.worker_detail
    out: StyleAndTextTuples = [("bold", f" {PANE.key} {PANE.title} ")]
    if model.hostname:
        out.append(("", f" {one_line(model.hostname)}"))
    if model.fetching:
        out.append(("class:task.history", "  fetching…"))
    elif model.detail is not None:
        out.append(("class:detail.label", "  r refresh · t tasks · esc back"))
    return out


class WorkerDetailView(ScrollTextView):
    """The detail of the worker opened from the workers pane."""

    def __init__(self, ctx: ScreenContext) -> None:
        from lazycelery.core.worker_detail import fetch_worker_detail

        self.ctx = ctx
        screen = ctx.screen
        model = self.model = screen.worker_detail
        model.fetcher = lambda host: fetch_worker_detail(
            ctx.celery_app(), host, TIMEOUT, record=screen.index.workers.get(host))
        model.on_done = ctx.invalidate
        self._mount(screen, PANE.name, lambda: worker_title(screen),
                    lambda width: worker_lines(model, width), model)

    def commands(self) -> Sequence[PaneCommand]:
        return (
            PaneCommand("refresh", "Ask the worker again (at most every 3 s)", self._refresh,
                        keys=("r",), footer="refresh"),
            PaneCommand("tasks", "Show this worker's tasks in the task list", self._tasks,
                        keys=("t",), footer="tasks"),
        )

    def _refresh(self) -> None:
        why = self.model.refresh()
        if why is not None:
            self.ctx.log(why, error=False)
        self.ctx.invalidate()

    def _tasks(self) -> None:
        if self.model.hostname:
            self.ctx.show_tasks(f"worker:{self.model.hostname}")


#: what the ``lazycelery.panes`` entry point ``worker`` names
PANE = BuiltinPane(name="worker", title="Worker detail", key="w", slot=BODY,
                   view=WorkerDetailView, command_title="Go to worker detail")
