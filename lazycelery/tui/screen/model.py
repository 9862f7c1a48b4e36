"""The screen model: what the dashboard shows and where the user is, and what keys do to it.

It holds the UI state, the list models (tasks, workers, queues), the task detail, the help and
palette overlays' state, and implements navigation, the filter prompt, sorting, follow mode, the
detail stack and selection. It never imports prompt_toolkit: the panes, the layout and the
command handlers read and drive it, and what needs the running application (redraws, focus, the
input lines) goes through its ``Shell`` (the ``Dashboard``). Compare pyvim's window arrangement
and pymux's arrangement: a model the layout reads.

Threads: only ``feed`` is touched by the ingest thread; everything else runs on the UI thread.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any, Final, Protocol

from lazycelery.broker.model import QueueSnapshot, QueueStats
from lazycelery.core.event_rates import EventRates
from lazycelery.core.feed import TaskFeed
from lazycelery.core.index import TaskIndex
from lazycelery.core.ingest_status import IngestorLike, IngestStatus
from lazycelery.core.model import TaskRecord
from lazycelery.core.query import FilterError, compile_filter
from lazycelery.core.queue_history import QueueHistory
from lazycelery.core.queue_waits import QueueWaits, QueueWaitStats
from lazycelery.core.task_list import TaskListView
from lazycelery.core.worker_rows import WorkerRow, worker_rows
from lazycelery.tui.screen.alerts import AlertsModel
from lazycelery.tui.screen.charts import ChartsModel
from lazycelery.tui.screen.detail import DetailModel
from lazycelery.tui.screen.errors import ErrorsModel
from lazycelery.tui.screen.errors_history import ErrorsHistory
from lazycelery.tui.screen.help import HelpModel
from lazycelery.tui.screen.history import HistorySource, LookupDone, RangePage
from lazycelery.tui.screen.lists import ListModel
from lazycelery.tui.screen.palette import PaletteState
from lazycelery.tui.screen.peek import PeekModel
from lazycelery.tui.screen.render_errors import RenderErrors
from lazycelery.tui.screen.shell import FILTER_INPUT, PALETTE_INPUT, NullShell, Shell
from lazycelery.tui.screen.sources import DashboardInfo, QueueMonitorLike
from lazycelery.tui.screen.state import UiState
from lazycelery.tui.screen.timeline import TimelineModel
from lazycelery.tui.screen.worker_detail import WorkerDetailModel

__all__ = ["LIST_PANES", "LIVE_FILTER_LIMIT", "LOADING", "CommandSource", "PaletteCommand",
           "ScreenModel"]

#: below this many tasks the filter applies while you type; above, on enter
LIVE_FILTER_LIMIT: Final = 100_000
#: a full task id in an ``id:`` / ``uuid:`` term (a lookup by id in the store)
_FULL_ID: Final = re.compile(r"(?:^|\s)(?:id|uuid):([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-"
                             r"[0-9a-f]{4}-[0-9a-f]{12})(?=\s|$)")
#: origin bit of a task being read from the history store (``ScreenModel.origin``)
LOADING: Final = 4
#: the panes whose cursor and enter key the model drives (their lists are its own); any other
#: pane, built-in or plugin, gets the cursor keys in its view's ``move``
LIST_PANES: Final = ("workers", "queues", "tasks", "detail")
#: the worker detail pane (``panes.worker_detail``): enter on a worker opens it when mounted
WORKER_PANE: Final = "worker"


class PaletteCommand(Protocol):
    """A command as the palette sees it."""

    @property
    def name(self) -> str: ...

    @property
    def title(self) -> str: ...

    @property
    def palette(self) -> bool: ...


class CommandSource(Protocol):
    """The command registry as the model sees it: what is usable in the current context."""

    def enabled(self, screen: ScreenModel, context: str | None = None) -> list[Any]: ...


class ScreenModel:
    """UI state, list models and what keys do to them; the dashboard's panes read it."""

    def __init__(self, index: TaskIndex, *, info: DashboardInfo | None = None,
                 feed: TaskFeed | None = None, clock: Callable[[], float] = time.time,
                 shell: Shell | None = None) -> None:
        self.index = index
        self.info = info or DashboardInfo()
        self.feed = feed or TaskFeed()
        self.clock = clock
        self.shell: Shell = shell if shell is not None else NullShell()
        self.ingestor: IngestorLike | None = None
        self.monitor: QueueMonitorLike | None = None
        self.tasks = TaskListView(index, wall_clock=clock)
        self.workers: ListModel[WorkerRow] = ListModel(key=lambda w: w.hostname)
        self.queues: ListModel[QueueStats] = ListModel(key=lambda q: q.name)
        self.queue_history = QueueHistory()
        self.queue_snapshot: QueueSnapshot | None = None
        #: per-queue waits, arrival/drain rates and time to empty, from the event stream
        self.queue_waits = QueueWaits(clock=clock)
        self.queue_wait_stats: dict[str, QueueWaitStats] = {}
        #: the peek overlay: a queue's next messages, chosen for bulk actions
        self.peek = PeekModel()
        #: the routes overlay: the routing tree's lines (a help-like scrolled text)
        self.routes = HelpModel()
        self.rates = EventRates(clock=clock)
        #: error groups, fed from every batch (the errors pane shows them)
        self.errors = ErrorsModel(lookup=index.get, clock=clock)
        #: the task list's tasks as bars on a time axis (the timeline pane)
        self.timeline = TimelineModel(self.tasks, clock=clock)
        #: rows and panes that raised while drawn (shown as markers; the header says how many)
        self.render_errors = RenderErrors()
        #: the alert rules' state as the running evaluator published it (the alerts pane)
        self.alerts = AlertsModel(self.info.env_name, clock=clock)
        #: the lines are the detail pane's (``panes.detail.DetailLine``)
        self.detail: DetailModel[Any] = DetailModel(index)
        self.detail.errors = self.render_errors
        #: the worker detail (``panes.worker_detail``; enter on a worker opens it)
        self.worker_detail = WorkerDetailModel()
        #: the fleet charts (``panes.charts``), fed the worker beats of every batch
        self.charts = ChartsModel(index, clock=clock)
        self.help = HelpModel()
        self.ui = UiState()
        self.palette: PaletteState[PaletteCommand] | None = None
        #: the command registry (set by the dashboard; the palette offers what it enables)
        self.commands: CommandSource | None = None
        #: the mounted panes in tab order: the built-in ones, then plugin panes
        self.panes: tuple[str, ...] = LIST_PANES
        #: wall-clock time of the last event taken in (None: none yet)
        self.last_event_at: float | None = None
        self._page_rows: dict[str, Callable[[], int]] = {
            "detail": lambda: self.detail.page_rows, "help": lambda: self.help.page_rows}
        self._history_pos = 0
        #: the history store's reader (None: no store)
        self.history: HistorySource | None = None
        self._history_loaded = 0
        self._queried: object = None  # the predicate the running history query is for
        #: what the running history query is doing ("" when none runs), for the task title
        self.history_query = ""
        self._query_found = 0
        # tasks opened from the store by id (the detail of an evicted / never seen task)
        self._from_store: dict[str, tuple[TaskRecord, int]] = {}
        self._not_stored: set[str] = set()
        # full task ids of an ``id:`` filter that memory does not hold, asked of the store
        self._id_lookups: set[str] = set()
        self.detail.origin = self.origin

    # ------------------------------------------------------------------ sources

    def attach(self, ingestor: IngestorLike | None = None,
               monitor: QueueMonitorLike | None = None) -> None:
        if ingestor is not None:
            self.ingestor = ingestor
        if monitor is not None:
            self.monitor = monitor

    def attach_history(self, source: HistorySource) -> None:
        self.history = source

    def start_errors_history(self) -> None:
        """With a store: its failures of the last day before now into the error groups."""
        if self.history is not None:
            self.errors.load_history(ErrorsHistory(
                self.history.url, self.errors.groups, until=self.clock(),
                quiet_missing=self.history.quiet_missing, on_change=self.shell.invalidate))

    @property
    def ingest_status(self) -> IngestStatus | None:
        return self.ingestor.status if self.ingestor is not None else None

    @property
    def stale(self) -> bool:
        """The event stream is down (or never came up): what is shown is old."""
        status = self.ingest_status
        if status is None:
            return False
        if status.state == "reconnecting":
            return True
        return status.state == "connecting" and (status.attempt > 0 or bool(status.last_error))

    def events_per_second(self) -> float:
        if self.ingestor is not None:
            return self.ingestor.events_per_second()
        return self.rates.events_per_second()

    def size(self) -> tuple[int, int]:
        """The terminal's (columns, rows)."""
        return self.shell.terminal_size()

    # ------------------------------------------------------------------ per frame

    def pull(self) -> None:
        """Bring the models up to date (before every render; O(new events))."""
        events, records, overflowed = self.feed.drain()
        if overflowed:
            self.tasks.rebuild()
        if events:
            self.last_event_at = self.clock()
            self.rates.add(events, now=self.last_event_at)
            self.errors.feed(events)
            self.charts.feed(events)
            self.timeline.feed(events)
            self.queue_waits.add(events, records, now=self.last_event_at)
        self.tasks.sync(records)
        if self.tasks.busy:
            self.shell.schedule_work()
        if self.history is not None:
            self._pull_history(self.history)
        self.workers.set_items(worker_rows(self.index, self.clock()))
        if self.monitor is not None:
            snapshot = self.monitor.snapshot
            if snapshot is not self.queue_snapshot:
                self.queue_snapshot = snapshot
                self.queue_history.update(snapshot)
                self.queue_wait_stats = self.queue_waits.summary(
                    {q.name: q.ready for q in snapshot.queues})
                self.queues.set_items(sorted(snapshot.queues, key=lambda q: q.name))
        if self.ui.pane == "detail":
            self.detail.show(self.detail_record())

    # ------------------------------------------------------------------ history

    def _pull_history(self, history: HistorySource) -> None:
        """Take the history thread's answers; start or cancel a range query when the filter
        changed. O(answers) per frame; the database is never waited on here."""
        if history.loaded != self._history_loaded:
            self._history_loaded = history.loaded
            self.tasks.rebuild()  # tasks taken in from the store: arrival order by time
            if self.tasks.busy:
                self.shell.schedule_work()
        for answer in history.take():
            if isinstance(answer, LookupDone):
                self._looked_up(answer)
            elif isinstance(answer, RangePage) and answer.generation == history.generation:
                self._query_found += self.tasks.add_history(answer.records)
                if answer.done:
                    cut = f" (the first {self._query_found:,}: narrow the range)" \
                        if answer.cut else ""
                    self.history_query = f"+{self._query_found:,} from history{cut}"
                else:
                    self.history_query = f"searching history… +{self._query_found:,}"
        if not history.on and self.history_query.startswith("searching"):
            self.history_query = ""  # the store went away meanwhile (the header says why)
        predicate = self.tasks.predicate
        if predicate is not self._queried:
            self._queried = predicate
            self._start_query(history)

    def _start_query(self, history: HistorySource) -> None:
        """A filter whose ``since:`` / ``before:`` range reaches past the oldest task in
        memory reads the rest of the range from the store."""
        predicate = self.tasks.predicate
        self._query_found = 0
        self.history_query = ""
        self._id_lookups = set()
        since, until = predicate.time_range if predicate is not None else (None, None)
        if predicate is not None and history.on and since is None and until is None:
            # `id:<full task id>` of a task memory does not hold: ask the store for it
            ids = {u for u in _FULL_ID.findall(predicate.text) if self.index.get(u) is None}
            for uuid in ids:
                history.lookup(uuid)
            if ids:
                self._id_lookups = ids
                self.history_query = "searching history…"
        if predicate is None or (since is None and until is None) or not history.on:
            history.cancel()
            return
        # memory holds the least recently active tasks last (LRU), and the start-up load took
        # the most recent of the store: a range after the oldest task in memory is all there
        oldest = self.index.oldest_activity()
        if oldest is not None and since is not None and since >= oldest and history.loaded:
            history.cancel()
            return
        history.query(predicate, since, until)
        self.history_query = "searching history…"

    def _looked_up(self, answer: LookupDone) -> None:
        if answer.uuid in self._id_lookups:  # asked for by an `id:` filter
            self._id_lookups.discard(answer.uuid)
            if answer.record is not None:
                self._query_found += self.tasks.add_history([(answer.record, answer.mark)])
            if not self._id_lookups:
                self.history_query = f"+{self._query_found:,} from history"
            if answer.record is None or self.ui.pane != "detail":
                return
        if answer.record is None:
            if len(self._not_stored) >= 256:
                self._not_stored.clear()
            self._not_stored.add(answer.uuid)
            self.ui.flash(f"task {answer.uuid} is neither in memory nor in history")
            stack = self.ui.detail_stack
            if stack and stack[-1].uuid == answer.uuid and self.index.get(answer.uuid) is None:
                stack.pop()
            return
        record = answer.record
        shown = self.ui.detail_stack[-1] if self.ui.detail_stack else self.tasks.selected
        if shown is not None and shown.uuid == answer.uuid:
            # a record evicted while shown may know more than the store yet (a recorder
            # lags the stream): merged, the newer state wins whichever side has it
            from lazycelery.store.rows import merge_records

            record = merge_records(record, shown)
        if len(self._from_store) >= 256:
            self._from_store.clear()
        self._from_store[answer.uuid] = (record, answer.mark)

    def open_from_history(self, uuid: str) -> bool:
        """Open the detail of a task memory does not hold: "loading from history…" until the
        store answers. False when there is no store to ask."""
        if self.history is None or not self.history.on:
            return False
        if uuid not in self._from_store:
            self.history.lookup(uuid)
        ui = self.ui
        if ui.pane != "detail":
            ui.detail_return = ui.pane
            ui.detail_stack.clear()
            ui.pane = "detail"
            self.tasks.follow = False
        ui.detail_stack.append(TaskRecord(uuid=uuid))
        self.detail.show(self.detail_record())
        self.shell.refocus()
        return True

    def history_loading(self, uuid: str) -> bool:
        return self.history is not None and self.history.loading(uuid) and \
            uuid not in self._from_store

    def origin(self, rec: TaskRecord) -> int:
        """FROM_HISTORY / BACKFILLED / LOADING bits of a shown record (0: live only)."""
        if self.history_loading(rec.uuid) and self.index.get(rec.uuid) is None:
            return LOADING
        if self.index.get(rec.uuid) is rec:
            return self.index.mark(rec.uuid)
        found = self._from_store.get(rec.uuid)
        if found is not None and found[0] is rec:
            return found[1]
        return self.tasks.history_mark(rec.uuid)

    def navigates(self, context: str) -> bool:
        """The cursor keys in ``context`` move one of the model's lists (or the help)."""
        return context in LIST_PANES or context == "help"

    def set_page_rows(self, context: str, rows: Callable[[], int]) -> None:
        """Where half-page keys learn a pane's height (its control, after a render)."""
        self._page_rows[context] = rows

    # ------------------------------------------------------------------ general

    def quit(self) -> None:
        self.shell.quit()

    def detail_record(self) -> TaskRecord | None:
        rec = self.ui.detail_stack[-1] if self.ui.detail_stack else self.tasks.selected
        if rec is None or self.history is None:
            return rec
        live = self.index.get(rec.uuid)
        if live is not None:
            return live if self.ui.detail_stack else rec
        if rec.uuid in self._from_store:
            return self._from_store[rec.uuid][0]
        if self.tasks.history_mark(rec.uuid) == 0 and self.ui.pane == "detail" and \
                rec.uuid not in self._not_stored:
            self.history.lookup(rec.uuid)  # evicted while shown: the store has it whole
        return rec

    def toggle_help(self) -> None:
        if self.ui.overlay == "help":
            self.ui.overlay = None
        else:
            self.help.open(self.ui.pane)
            self.ui.overlay = "help"
        self.shell.refocus()

    def open_palette(self) -> None:
        enabled = self.commands.enabled(self) if self.commands is not None else []
        self.palette = PaletteState([c for c in enabled if c.palette and c.name != "palette"])
        self.shell.set_input_text(PALETTE_INPUT, "")
        self.ui.overlay = "palette"
        self.shell.refocus()

    def can_go_back(self) -> bool:
        ui = self.ui
        return ui.overlay is not None or ui.pane in ("detail", WORKER_PANE) or (
            ui.pane == "tasks" and bool(self.tasks.filter_text))

    def back(self) -> None:
        ui = self.ui
        if ui.overlay is not None:
            ui.overlay = None
        elif ui.pane == "detail":
            if ui.detail_stack:
                ui.detail_stack.pop()
            else:
                ui.pane = ui.detail_return
        elif ui.pane == WORKER_PANE:
            ui.pane = "workers"
        elif ui.pane == "tasks" and self.tasks.filter_text:
            self.clear_filter()
        self.shell.refocus()

    # ------------------------------------------------------------------ panes

    def focus_pane(self, name: str) -> None:
        if name == "detail":
            self._open_detail()
            return
        if name == WORKER_PANE and (self.workers.selected is not None
                                    or self.worker_detail.hostname is None):
            self.open_worker_detail()  # the selected worker's, fetched again
            return
        self.ui.pane = name
        self.shell.refocus()

    def focus_next(self, delta: int) -> None:
        order = self.panes
        current = self.ui.pane
        target = order[(order.index(current) + delta) % len(order)] if current in order \
            else order[0]
        self.focus_pane(target)

    def open_task(self, rec: TaskRecord) -> None:
        """The detail of a task another pane shows (the timeline), selected in the task list;
        back returns to that pane."""
        if not self.tasks.select(rec):
            self.ui.flash("that task is no longer in the task list")
            return
        self._open_detail()

    def _open_detail(self) -> None:
        if self.tasks.selected is None:
            self.ui.flash("no task selected")
            return
        if self.ui.pane != "detail":
            self.ui.detail_return = self.ui.pane if self.ui.pane != "detail" else "tasks"
        self.ui.detail_stack.clear()
        self.tasks.follow = False  # the detail must not change under the reader
        self.ui.pane = "detail"
        self.detail.show(self.detail_record())
        self.shell.refocus()

    # ------------------------------------------------------------------ navigation

    def _list(self) -> ListModel[Any] | None:
        if self.ui.pane == "workers":
            return self.workers
        if self.ui.pane == "queues":
            return self.queues
        return None

    def move(self, delta: int) -> None:
        ctx = self.ui.context
        if ctx == "help":
            self.help.scroll(delta)
        elif ctx == "tasks":
            self.tasks.move(delta)
        elif ctx == "detail":
            self.detail.move(delta)
        elif (lst := self._list()) is not None:
            lst.move(delta)

    def page(self, direction: int) -> None:
        rows = self._page_rows.get(self.ui.context)
        self.move(direction * max(1, (rows() if rows is not None else 10) // 2))

    def first(self) -> None:
        ctx = self.ui.context
        if ctx == "help":
            self.help.scroll(-len(self.help.lines))
        elif ctx == "tasks":
            self.tasks.first()
        elif ctx == "detail":
            self.detail.first()
        elif (lst := self._list()) is not None:
            lst.select_index(0)

    def last(self) -> None:
        ctx = self.ui.context
        if ctx == "help":
            self.help.scroll(len(self.help.lines))
        elif ctx == "tasks":
            self.tasks.last()
        elif ctx == "detail":
            self.detail.last()
        elif (lst := self._list()) is not None:
            lst.select_index(len(lst) - 1)

    # ------------------------------------------------------------------ open

    def can_activate(self) -> bool:
        pane = self.ui.pane
        if pane == "tasks":
            return self.tasks.selected is not None
        if pane == "detail":
            return self.detail.link() is not None
        lst = self._list()
        return lst is not None and lst.selected is not None

    def activate(self) -> None:
        pane = self.ui.pane
        if pane == "tasks":
            self._open_detail()
        elif pane == "detail":
            uuid = self.detail.link()
            rec = self.index.get(uuid) if uuid else None
            if rec is None:
                if uuid is None or not self.open_from_history(uuid):
                    self.ui.flash("that task is not in memory")
                return
            self.ui.detail_stack.append(rec)
            self.detail.show(rec)
        elif pane == "workers" and self.workers.selected is not None:
            if WORKER_PANE in self.panes:
                self.open_worker_detail()
            else:
                self._filter_and_show(f"worker:{self.workers.selected.hostname}")
        elif pane == "queues" and self.queues.selected is not None:
            self._filter_and_show(f'queue:"{self.queues.selected.name}"')

    def open_worker_detail(self) -> None:
        """The selected worker's detail (fetched in the background)."""
        row = self.workers.selected
        if row is None:
            self.ui.flash("no worker selected")
            return
        self.worker_detail.show(row.hostname)
        self.ui.pane = WORKER_PANE
        self.shell.refocus()

    def _filter_and_show(self, text: str) -> None:
        self.apply_filter(text)
        self.ui.pane = "tasks"
        self.shell.refocus()

    def show_tasks(self, filter_text: str) -> None:
        """The task list with this filter applied (a plugin's ``ctx.show_tasks``); a bad
        filter is reported in the status line."""
        try:
            self.apply_filter(filter_text)
        except FilterError as exc:
            self.ui.flash(f"filter {filter_text!r}: {exc.message}", error=True)
            return
        self.focus_pane("tasks")

    # ------------------------------------------------------------------ filter

    def apply_filter(self, text: str) -> None:
        """Apply filter text now (raises FilterError) and remember it in the history."""
        self.tasks.set_filter(text)
        text = text.strip()
        history = self.ui.filter_history
        if text and (not history or history[-1] != text):
            history.append(text)
            del history[:-50]
        if self.tasks.busy:
            self.shell.schedule_work()

    def clear_filter(self) -> None:
        self.tasks.set_filter("")

    def open_filter(self) -> None:
        ui = self.ui
        if ui.pane not in ("tasks", "detail"):
            ui.pane = "tasks"
        if ui.pane == "detail":
            ui.pane = "tasks"
        ui.filter_editing = True
        ui.filter_before = self.tasks.filter_text
        ui.filter_error = None
        self._history_pos = len(ui.filter_history)
        self.shell.set_input_text(FILTER_INPUT, ui.filter_before)
        self.shell.refocus()

    def filter_changed(self, text: str) -> None:
        """Live feedback while typing: errors at once; small lists filter as you type."""
        ui = self.ui
        if not ui.filter_editing:
            return
        try:
            compile_filter(text)
        except FilterError as exc:
            ui.filter_error, ui.filter_error_column = exc.message, exc.column
            return
        ui.filter_error = None
        if self.tasks.total <= LIVE_FILTER_LIMIT:
            self.tasks.set_filter(text)
            if self.tasks.busy:
                self.shell.schedule_work()

    def prompt_accept(self) -> None:
        ui = self.ui
        if ui.overlay == "palette":
            self._palette_run()
            return
        text = self.shell.input_text(FILTER_INPUT)
        try:
            self.apply_filter(text)
        except FilterError as exc:
            ui.filter_error, ui.filter_error_column = exc.message, exc.column
            return
        ui.filter_editing = False
        ui.filter_error = None
        self.shell.refocus()

    def prompt_cancel(self) -> None:
        ui = self.ui
        if ui.overlay == "palette":
            ui.overlay = None
            self.palette = None
        elif ui.filter_editing:
            ui.filter_editing = False
            ui.filter_error = None
            self.tasks.set_filter(ui.filter_before)  # undo the live preview
        self.shell.refocus()

    def prompt_move(self, delta: int) -> None:
        if self.ui.overlay == "palette" and self.palette is not None:
            self.palette.selected = max(0, self.palette.selected + delta)
            return
        history = self.ui.filter_history
        if not history:
            return
        self._history_pos = max(0, min(self._history_pos + delta, len(history)))
        text = history[self._history_pos] if self._history_pos < len(history) else ""
        self.shell.set_input_text(FILTER_INPUT, text)

    # ------------------------------------------------------------------ palette

    def palette_changed(self) -> None:
        if self.palette is not None:
            self.palette.selected = 0

    def _palette_run(self) -> None:
        state = self.palette
        self.ui.overlay = None
        self.palette = None
        self.shell.refocus()
        if state is None:
            return
        results = state.results(self.shell.input_text(PALETTE_INPUT))
        if not results:
            return
        command = results[min(state.selected, len(results) - 1)][0]
        self.shell.run_command(command)

    # ------------------------------------------------------------------ tasks

    def match(self, delta: int) -> None:
        """Next/previous task of the (filtered) list; in the detail, show that task."""
        self.tasks.move(delta)
        self.tasks.follow = False
        if self.ui.pane == "detail":
            self.ui.detail_stack.clear()
            self.detail.show(self.tasks.selected)

    def toggle_follow(self) -> None:
        self.tasks.set_follow(not self.tasks.follow)
        self.ui.flash("follow on: the newest task stays selected" if self.tasks.follow
                      else "follow off: the selection stays on its task")

    def sort_next(self) -> None:
        self.tasks.cycle_sort()
        self._flash_sort()

    def sort_reverse(self) -> None:
        self.tasks.reverse_sort()
        self._flash_sort()

    def _flash_sort(self) -> None:
        arrow = "descending" if self.tasks.descending else "ascending"
        self.ui.flash(f"sorted by {self.tasks.sort_column}, {arrow}")

    # ------------------------------------------------------------------ detail

    def section(self, delta: int) -> None:
        name = self.detail.section(delta)
        if name is None:
            self.ui.flash("no more sections")
