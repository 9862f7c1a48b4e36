"""The Dashboard: wires the index, view models, ingest thread and queue monitor to the layout and
the command registry, and implements what commands do (the controller).

Threads: the ingest thread only pushes touched records into a ``TaskFeed`` and calls
``app.invalidate()`` (thread-safe, coalesced); everything else runs on the UI thread. Before each
render the feed is drained into the view models (O(batch)), and only visible rows are formatted.
Whole-list work (a new filter on a million tasks) runs in chunks from a background coroutine, so
keys are handled between chunks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from prompt_toolkit.application import Application
from prompt_toolkit.buffer import Buffer
from prompt_toolkit.data_structures import Size
from prompt_toolkit.input import Input
from prompt_toolkit.layout import Window
from prompt_toolkit.output import ColorDepth, Output, create_output

from lazycelery.broker.model import QueueSnapshot, QueueStats
from lazycelery.core.index import TaskIndex
from lazycelery.core.model import TaskRecord
from lazycelery.core.query import FilterError, compile_filter
from lazycelery.core.views import (
    QueueHistory,
    RateTracker,
    TaskFeed,
    TaskListView,
    WorkerRow,
    worker_rows,
)
from lazycelery.errors import LazyCeleryError
from lazycelery.tui.actions import Operator, connect_operator, operator_commands
from lazycelery.tui.commands import Command, CommandRegistry, default_commands
from lazycelery.tui.guard import RenderErrors
from lazycelery.tui.keys import build_key_bindings
from lazycelery.tui.layout import build_layout
from lazycelery.tui.panes.detail import DetailControl, DetailModel
from lazycelery.tui.panes.help import HelpControl, help_lines
from lazycelery.tui.panes.palette import PaletteState
from lazycelery.tui.panes.queues import queue_table
from lazycelery.tui.panes.tasks import task_table
from lazycelery.tui.panes.workers import worker_table
from lazycelery.tui.plugins import PluginHost, PluginInfo, Selection, discover
from lazycelery.tui.protocols import (
    DashboardInfo,
    IngestorLike,
    IngestStatusLike,
    QueueMonitorLike,
)
from lazycelery.tui.state import PANE_ORDER, UiState
from lazycelery.tui.style import build_style
from lazycelery.tui.table import ListModel, VirtualTable

if TYPE_CHECKING:
    from lazycelery.config import Settings

__all__ = ["Controls", "Dashboard", "run_dashboard"]

log = logging.getLogger(__name__)

#: below this many tasks the filter applies while you type; above, on enter
LIVE_FILTER_LIMIT: Final = 100_000
#: seconds of whole-list work per slice before input and redraws get their turn
STEP_BUDGET: Final = 0.015


@dataclass
class Controls:
    """The controls and buffers the layout places and the controller drives."""

    tasks: VirtualTable[TaskRecord]
    workers: VirtualTable[WorkerRow]
    queues: VirtualTable[QueueStats]
    detail: DetailControl
    help: HelpControl
    filter_buffer: Buffer
    palette_buffer: Buffer


class Dashboard:
    """The running dashboard: models, UI state, layout and the prompt_toolkit Application."""

    def __init__(self, index: TaskIndex, *, info: DashboardInfo | None = None,
                 feed: TaskFeed | None = None, keys: Mapping[str, str | Sequence[str]] | None
                 = None, extra_commands: Iterable[Command] = (), input: Input | None = None,
                 plugins: Sequence[PluginInfo] = (), settings: Settings | None = None,
                 output: Output | None = None, color: bool = True,
                 clock: Callable[[], float] = time.time,
                 min_redraw_interval: float = 0.03, refresh_interval: float | None = 1.0) -> None:
        self.index = index
        # resolved before the layout is built: the layout asks for the terminal size
        self.output = output if output is not None else create_output()
        self.info = info or DashboardInfo()
        self.feed = feed or TaskFeed()
        self.clock = clock
        self.ingestor: IngestorLike | None = None
        self.monitor: QueueMonitorLike | None = None
        self.tasks = TaskListView(index, wall_clock=clock)
        self.workers: ListModel[WorkerRow] = ListModel(key=lambda w: w.hostname)
        self.queues: ListModel[QueueStats] = ListModel(key=lambda q: q.name)
        self.queue_history = QueueHistory()
        self.queue_snapshot: QueueSnapshot | None = None
        self.rates = RateTracker(clock=clock)
        #: rows and panes that raised while drawn (shown as markers; the header says how many)
        self.render_errors = RenderErrors()
        self.detail = DetailModel(index)
        self.detail.errors = self.render_errors
        self.ui = UiState()
        self.palette: PaletteState | None = None
        #: operator actions (retry, revoke, purge, worker control), dialogs and their messages
        self.operator = Operator(self)
        self.registry = CommandRegistry(default_commands())
        for command in operator_commands(read_only=self.info.read_only):
            self.registry.add(command)
        for command in extra_commands:
            self.registry.add(command)
        # third-party panes: views created, commands added, shared commands extended to them
        self.plugins = PluginHost(self, plugins, settings)
        warnings = self.registry.remap(self.plugins.usable_keys(keys or {}))
        self.pane_windows: dict[str, Window] = {}
        self.filter_window: Window | None = None
        self.palette_window: Window | None = None
        self._history_pos = 0
        #: wall-clock time of the last event taken in (None: none yet)
        self.last_event_at: float | None = None
        self._driver: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self.controls = Controls(
            tasks=task_table(self), workers=worker_table(self), queues=queue_table(self),
            detail=DetailControl(self.detail, lambda: "no task selected"),
            help=HelpControl(),
            filter_buffer=Buffer(multiline=False,
                                 on_text_changed=lambda b: self.filter_changed(b.text)),
            palette_buffer=Buffer(multiline=False, on_text_changed=self._palette_changed),
        )
        for table in (self.controls.tasks, self.controls.workers, self.controls.queues):
            table.errors = self.render_errors
        self.layout = build_layout(self)
        self.app: Application[int] = Application(
            layout=self.layout,
            key_bindings=build_key_bindings(self.registry, self._is_enabled, self.run_command),
            style=build_style(),
            full_screen=True,
            mouse_support=False,
            color_depth=None if color else ColorDepth.DEPTH_1_BIT,
            min_redraw_interval=min_redraw_interval,
            refresh_interval=refresh_interval,  # ages and clocks only; data changes invalidate
            enable_page_navigation_bindings=False,
            before_render=lambda _app: self._before_render(),
            input=input,
            output=self.output,
        )
        # esc must act at once, not wait half a second for an Alt sequence
        self.app.ttimeoutlen = 0.05
        for warning in warnings:
            self.ui.flash(warning)

    # ------------------------------------------------------------------ sources

    def attach(self, ingestor: IngestorLike | None = None,
               monitor: QueueMonitorLike | None = None) -> None:
        """Use a running (or about to run) ingest thread and queue monitor."""
        if ingestor is not None:
            self.ingestor = ingestor
        if monitor is not None:
            self.monitor = monitor
            self._unsubscribe = monitor.on_update(lambda _snap: self.app.invalidate())

    def on_batch(self, events: Sequence[Mapping[str, Any]], records: Sequence[object]) -> None:
        """Ingest-thread callback: hand over the batch and ask for a (coalesced) redraw."""
        self.feed.push(events, records)
        self.app.invalidate()

    def on_status(self, status: object) -> None:
        self.operator.on_ingest_status(status)  # a reconnect after a gap: reconcile
        self.app.invalidate()

    @property
    def ingest_status(self) -> IngestStatusLike | None:
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

    def size(self) -> Size:
        return self.output.get_size()

    def width(self) -> int:
        return self.size().columns

    # ------------------------------------------------------------------ per frame

    def _before_render(self) -> None:
        """``pull`` for the next frame; an exception is counted, never raised into
        prompt_toolkit (whose handler would wait for Enter with the keys taken away)."""
        errors = self.render_errors
        errors.begin_frame()
        try:
            self.pull()
        except Exception as exc:
            errors.record("update", exc)
        new = errors.take_new()
        if new:
            self.ui.flash(f"could not show: {new[-1]} (marked ⚠; the rest is live)",
                          error=True, seconds=8.0)

    def pull(self) -> None:
        """Bring the view models up to date (runs before every render; O(new events))."""
        events, records, overflowed = self.feed.drain()
        if overflowed:
            self.tasks.rebuild()
        if events:
            self.last_event_at = self.clock()
            self.rates.add(events, now=self.last_event_at)
        self.tasks.sync(records)
        if self.tasks.busy:
            self._ensure_driver()
        self.workers.set_items(worker_rows(self.index, self.clock()))
        if self.monitor is not None:
            snapshot = self.monitor.snapshot
            if snapshot is not self.queue_snapshot:
                self.queue_snapshot = snapshot
                self.queue_history.update(snapshot)
                self.queues.set_items(sorted(snapshot.queues, key=lambda q: q.name))
        if self.ui.pane == "detail":
            self.detail.show(self.detail_record())
        self.plugins.pull()
        self.operator.pull()

    def _ensure_driver(self) -> None:
        if not self.app.is_running:
            return
        if self._driver is None or self._driver.done():
            self._driver = self.app.create_background_task(self._drive())

    async def _drive(self) -> None:
        """Run whole-list work in slices; input and redraws run between slices."""
        while self.tasks.busy:
            try:
                self.tasks.step(STEP_BUDGET)
            except Exception as exc:  # the failed job is over; the next step finishes it
                self.render_errors.record("list update", exc)
            self.app.invalidate()
            await asyncio.sleep(0)

    # ------------------------------------------------------------------ commands

    def _is_enabled(self, command: Command) -> bool:
        return self.registry.is_enabled(command, self)

    def run_command(self, command: Command) -> None:
        """Run a command's handler; a failure becomes a footer message, never a crash."""
        try:
            command.handler(self)
        except LazyCeleryError as exc:
            self.ui.flash(str(exc), error=True)
        except Exception as exc:
            log.exception("command %s failed", command.name)
            self.ui.flash(f"{command.name} failed: {type(exc).__name__}: {exc}", error=True)
        self.app.invalidate()

    def run(self, name: str) -> None:
        """Run a command by name (tests, the palette, plugins)."""
        self.run_command(self.registry.get(name))

    def detail_record(self) -> TaskRecord | None:
        if self.ui.detail_stack:
            return self.ui.detail_stack[-1]
        return self.tasks.selected

    def _focus(self) -> None:
        ui = self.ui
        if ui.filter_editing and self.filter_window is not None:
            self.layout.focus(self.filter_window)
        elif ui.overlay == "palette" and self.palette_window is not None:
            self.layout.focus(self.palette_window)
        else:
            window = self.pane_windows.get(ui.pane)
            if window is not None:
                # not visible while the terminal is too small: focus follows on resize
                with contextlib.suppress(ValueError):
                    self.layout.focus(window)

    # general

    def quit(self) -> None:
        if self.app.is_running:
            self.app.exit(result=0)

    def toggle_help(self) -> None:
        if self.ui.overlay == "help":
            self.ui.overlay = None
        else:
            self.controls.help.set_lines(help_lines(self.registry, self, self.ui.pane))
            self.ui.overlay = "help"
        self._focus()

    def open_palette(self) -> None:
        candidates = [c for c in self.registry.enabled(self) if c.palette and c.name != "palette"]
        self.palette = PaletteState(candidates)
        self.controls.palette_buffer.reset()
        self.ui.overlay = "palette"
        self._focus()

    def can_go_back(self) -> bool:
        ui = self.ui
        return ui.overlay is not None or ui.pane == "detail" or (
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
        elif ui.pane == "tasks" and self.tasks.filter_text:
            self.clear_filter()
        self._focus()

    # panes

    def focus_pane(self, name: str) -> None:
        if name == "detail":
            self._open_detail()
            return
        self.ui.pane = name
        self._focus()

    def focus_next(self, delta: int) -> None:
        i = PANE_ORDER.index(self.ui.pane)
        self.focus_pane(PANE_ORDER[(i + delta) % len(PANE_ORDER)])

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
        self._focus()

    # navigation

    def _list(self) -> ListModel[Any] | None:
        if self.ui.pane == "workers":
            return self.workers
        if self.ui.pane == "queues":
            return self.queues
        return None

    def move(self, delta: int) -> None:
        ctx = self.ui.context
        if ctx == "help":
            self.controls.help.scroll(delta)
        elif ctx == "tasks":
            self.tasks.move(delta)
        elif ctx == "detail":
            self.detail.move(delta)
        elif (lst := self._list()) is not None:
            lst.move(delta)

    def page(self, direction: int) -> None:
        ctx = self.ui.context
        rows = {"tasks": self.controls.tasks.page_rows, "workers": self.controls.workers.page_rows,
                "queues": self.controls.queues.page_rows, "detail": self.detail.page_rows,
                "help": self.controls.help.page_rows}.get(ctx, 10)
        self.move(direction * max(1, rows // 2))

    def first(self) -> None:
        ctx = self.ui.context
        if ctx == "help":
            self.controls.help.scroll(-len(self.controls.help.lines))
        elif ctx == "tasks":
            self.tasks.first()
        elif ctx == "detail":
            self.detail.first()
        elif (lst := self._list()) is not None:
            lst.select_index(0)

    def last(self) -> None:
        ctx = self.ui.context
        if ctx == "help":
            self.controls.help.scroll(len(self.controls.help.lines))
        elif ctx == "tasks":
            self.tasks.last()
        elif ctx == "detail":
            self.detail.last()
        elif (lst := self._list()) is not None:
            lst.select_index(len(lst) - 1)

    # tasks

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
                self.ui.flash("that task is not in memory")
                return
            self.ui.detail_stack.append(rec)
            self.detail.show(rec)
        elif pane == "workers" and self.workers.selected is not None:
            self._filter_and_show(f"worker:{self.workers.selected.hostname}")
        elif pane == "queues" and self.queues.selected is not None:
            self._filter_and_show(f'queue:"{self.queues.selected.name}"')

    def _filter_and_show(self, text: str) -> None:
        self.apply_filter(text)
        self.ui.pane = "tasks"
        self._focus()

    def apply_filter(self, text: str) -> None:
        """Apply filter text now (raises FilterError) and remember it in the history."""
        self.tasks.set_filter(text)
        text = text.strip()
        history = self.ui.filter_history
        if text and (not history or history[-1] != text):
            history.append(text)
            del history[:-50]
        if self.tasks.busy:
            self._ensure_driver()

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
        buffer = self.controls.filter_buffer
        buffer.set_document(buffer.document.__class__(ui.filter_before), bypass_readonly=True)
        self._focus()

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
                self._ensure_driver()

    def prompt_accept(self) -> None:
        ui = self.ui
        if ui.overlay == "palette":
            self._palette_run()
            return
        text = self.controls.filter_buffer.text
        try:
            self.apply_filter(text)
        except FilterError as exc:
            ui.filter_error, ui.filter_error_column = exc.message, exc.column
            return
        ui.filter_editing = False
        ui.filter_error = None
        self._focus()

    def prompt_cancel(self) -> None:
        ui = self.ui
        if ui.overlay == "palette":
            ui.overlay = None
            self.palette = None
        elif ui.filter_editing:
            ui.filter_editing = False
            ui.filter_error = None
            self.tasks.set_filter(ui.filter_before)  # undo the live preview
        self._focus()

    def prompt_move(self, delta: int) -> None:
        if self.ui.overlay == "palette" and self.palette is not None:
            self.palette.selected = max(0, self.palette.selected + delta)
            return
        history = self.ui.filter_history
        if not history:
            return
        self._history_pos = max(0, min(self._history_pos + delta, len(history)))
        text = history[self._history_pos] if self._history_pos < len(history) else ""
        buffer = self.controls.filter_buffer
        buffer.set_document(buffer.document.__class__(text, len(text)))

    def _palette_changed(self, _buffer: Buffer) -> None:
        if self.palette is not None:
            self.palette.selected = 0

    def _palette_run(self) -> None:
        state = self.palette
        self.ui.overlay = None
        self.palette = None
        self._focus()
        if state is None:
            return
        results = state.results(self.controls.palette_buffer.text)
        if not results:
            return
        command = results[min(state.selected, len(results) - 1)][0]
        self.run_command(command)

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

    # detail

    def section(self, delta: int) -> None:
        name = self.detail.section(delta)
        if name is None:
            self.ui.flash("no more sections")

    # ------------------------------------------------------------------ running

    def start(self) -> None:
        """Start the sources (called once the application runs, so redraws can be asked)."""
        if self.ingestor is not None:
            self.ingestor.start()
        if self.monitor is not None:
            self.monitor.start()
        self.operator.start()

    def shutdown(self) -> None:
        """Stop the threads we started (bounded waits)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self.ingestor is not None:
            self.ingestor.stop(2.0)
        if self.monitor is not None:
            self.monitor.stop(2.0)
        self.plugins.close()
        self.operator.stop()

    def run_app(self) -> int:
        try:
            result = self.app.run(pre_run=self.start)
        finally:
            self.shutdown()
        return result if isinstance(result, int) else 0


# --------------------------------------------------------------------------- wiring


def _queue_monitor(settings: Settings) -> tuple[QueueMonitorLike | None, str | None]:
    """The queue monitor for the broker, or why there is none (shown in the queues pane)."""
    from lazycelery.broker import open_inspector
    from lazycelery.broker.monitor import QueueMonitor
    from lazycelery.broker.workers import worker_probe

    try:
        inspector = open_inspector(settings.broker_url, settings.transport_options,
                                   settings.queues, management_url=settings.management_url)
    except LazyCeleryError as exc:
        return None, str(exc)
    # the workers the broker lists, by name (RabbitMQ without its API: a read-only inspect)
    return QueueMonitor(inspector, interval=1.0,
                        workers=worker_probe(settings.celery_app, inspector)), None


def run_dashboard(settings: Settings, *, no_plugins: bool = False) -> int:
    """Build the index, the ingest thread and the queue monitor, and run the dashboard."""
    from lazycelery.core.ingest import Ingestor

    index = TaskIndex(max_tasks=settings.max_tasks)
    monitor, unavailable = _queue_monitor(settings)
    info = DashboardInfo(broker=settings.masked_broker(), env_name=settings.env_name,
                         read_only=settings.read_only, queues_unavailable=unavailable)
    plugins = discover(Selection.from_environment(no_plugins=no_plugins))
    dashboard = Dashboard(index, info=info, keys=settings.keys, color=not settings.no_color,
                          plugins=plugins, settings=settings)
    # wakeup=False: the wakeup is a `heartbeat` broadcast to every worker on the broker;
    # workers appear with their next regular heartbeat (2 s by default) instead.
    ingestor = Ingestor(
        settings.broker_url, index, mode=settings.ingest,
        app=settings.celery_app() if settings.app_spec else None,
        transport_options=settings.transport_options,
        on_batch=dashboard.on_batch, on_status=dashboard.on_status, wakeup=False,
    )
    dashboard.attach(ingestor, monitor)
    connect_operator(dashboard, settings, monitor)
    for note in settings.notes:
        dashboard.ui.flash(note, seconds=8.0)
    return dashboard.run_app()
