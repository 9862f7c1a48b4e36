"""The Dashboard: the prompt_toolkit Application around the screen model. It owns the
application, its input buffers, the keyboard focus, the threads it starts and stops, and the
render pull; what keys do is the screen model's (``screen.model``), what is on screen the panes'
and the layout's.

Threads: the ingest thread only pushes touched records into a ``TaskFeed`` and calls
``app.invalidate()`` (thread-safe, coalesced); everything else runs on the UI thread. Before each
render the feed is drained into the models (O(batch)), and only visible rows are formatted.
Whole-list work (a new filter on a million tasks) runs in chunks from a background coroutine, so
keys are handled between chunks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final

from prompt_toolkit.application import Application
from prompt_toolkit.buffer import Buffer
from prompt_toolkit.data_structures import Size
from prompt_toolkit.document import Document
from prompt_toolkit.input import Input
from prompt_toolkit.layout import Window
from prompt_toolkit.output import ColorDepth, Output, create_output

from lazycelery.broker.model import QueueSnapshot, QueueStats
from lazycelery.core.feed import TaskFeed
from lazycelery.core.index import TaskIndex
from lazycelery.core.ingest_status import IngestStatus
from lazycelery.core.model import TaskRecord
from lazycelery.core.task_list import TaskListView
from lazycelery.core.worker_rows import WorkerRow
from lazycelery.errors import LazyCeleryError
from lazycelery.tui.detail_control import DetailControl
from lazycelery.tui.global_commands import global_commands
from lazycelery.tui.layout import build_layout
from lazycelery.tui.mount import PaneHost
from lazycelery.tui.operator import Operator
from lazycelery.tui.operator_commands import operator_commands
from lazycelery.tui.panes.detail import DetailView
from lazycelery.tui.panes.help import help_lines
from lazycelery.tui.panes.queues import QueuesView
from lazycelery.tui.panes.tasks import TasksView
from lazycelery.tui.panes.workers import WorkersView
from lazycelery.tui.plugins import PluginInfo, builtin_panes
from lazycelery.tui.registry import Command, CommandRegistry, build_key_bindings
from lazycelery.tui.screen.detail import DetailModel
from lazycelery.tui.screen.help import HelpModel
from lazycelery.tui.screen.history import HistorySource
from lazycelery.tui.screen.lists import ListModel
from lazycelery.tui.screen.model import LIST_PANES, ScreenModel
from lazycelery.tui.screen.palette import PaletteState
from lazycelery.tui.screen.render_errors import RenderErrors
from lazycelery.tui.screen.shell import DIALOG_INPUT, FILTER_INPUT, PALETTE_INPUT
from lazycelery.tui.screen.sources import DashboardInfo, IngestorLike, QueueMonitorLike
from lazycelery.tui.screen.state import UiState
from lazycelery.tui.style import build_style
from lazycelery.tui.table import VirtualTable

if TYPE_CHECKING:
    from lazycelery.config import Settings

__all__ = ["Controls", "Dashboard"]

log = logging.getLogger(__name__)

#: seconds of whole-list work per slice before input and redraws get their turn
STEP_BUDGET: Final = 0.015
#: free-text warm-up while idle (TaskListView.warm_text): a slice, then a pause, so input and
#: redraws come first; once every range is built, a look every few seconds for new ones
WARM_TEXT_BUDGET: Final = 0.01
WARM_TEXT_PAUSE: Final = 0.05
WARM_TEXT_IDLE: Final = 3.0


@dataclass
class Controls:
    """The controls and models of the built-in panes and the input buffers (tests and
    benchmarks drive them)."""

    tasks: VirtualTable[TaskRecord]
    workers: VirtualTable[WorkerRow]
    queues: VirtualTable[QueueStats]
    detail: DetailControl
    help: HelpModel
    filter_buffer: Buffer
    palette_buffer: Buffer


class Dashboard:
    """The running dashboard: the screen model, its panes and the prompt_toolkit Application."""

    def __init__(self, index: TaskIndex, *, info: DashboardInfo | None = None,
                 feed: TaskFeed | None = None, keys: Mapping[str, str | Sequence[str]] | None
                 = None, extra_commands: Iterable[Command] = (), input: Input | None = None,
                 plugins: Sequence[PluginInfo] = (), settings: Settings | None = None,
                 output: Output | None = None, color: bool = True,
                 clock: Callable[[], float] = time.time,
                 min_redraw_interval: float = 0.03, refresh_interval: float | None = 1.0,
                 history: HistorySource | None = None) -> None:
        self._app: Application[int] | None = None
        # resolved before the layout is built: the layout asks for the terminal size
        self.output = output if output is not None else create_output()
        self.screen = ScreenModel(index, info=info, feed=feed, clock=clock, shell=self)
        if history is not None:  # before the panes are built: the task list marks its tasks
            history.on_change = self.invalidate
            self.screen.attach_history(history)
        #: operator actions (retry, revoke, purge, worker control), dialogs and their messages
        self.operator = Operator(self.screen, self)
        self.filter_buffer = Buffer(
            multiline=False, on_text_changed=lambda b: self.screen.filter_changed(b.text))
        self.palette_buffer = Buffer(
            multiline=False, on_text_changed=lambda _b: self.screen.palette_changed())
        self._buffers = {FILTER_INPUT: self.filter_buffer, PALETTE_INPUT: self.palette_buffer,
                         DIALOG_INPUT: self.operator.buffer}
        # every pane, built-in or plugin, is mounted the same way
        self.plugins = PaneHost(self.screen, _with_builtins(plugins), settings, run=self.run)
        _check_builtins(self.plugins)
        self.screen.panes = self.plugins.order
        self.registry = self._registry(extra_commands)
        self.screen.commands = self.registry
        self.screen.help.build = lambda context: help_lines(self.registry, self.screen, context)
        self._flash_plugin_report()
        warnings = self.registry.remap(self.plugins.usable_keys(keys or {}))
        self._driver: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        placed = build_layout(self.screen, self.plugins, self.registry, self.operator,
                              self.filter_buffer, self.palette_buffer)
        self.layout = placed.layout
        self.filter_window = placed.filter_window
        self.palette_window = placed.palette_window
        self.pane_windows = self.plugins.focus_windows()
        self.controls = self._controls()
        self._app = Application(
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
        self._app.ttimeoutlen = 0.05
        for warning in warnings:
            self.screen.ui.flash(warning)

    def _registry(self, extra_commands: Iterable[Command]) -> CommandRegistry:
        """Global commands (with the built-in panes' ``pane.<name>``), operator actions, extra
        commands; then the plugin panes' (``PaneHost.commands``)."""
        builtins = self.plugins.builtins
        commands = [*global_commands(builtins),
                    *operator_commands(self.operator, frozenset(i.name for i in builtins),
                                       read_only=self.screen.info.read_only),
                    *extra_commands]
        return CommandRegistry(self.plugins.commands(commands))

    def _flash_plugin_report(self) -> None:
        report = self.plugins.report()
        if report is not None:
            failed = self.plugins.failed
            self.screen.ui.flash(report, error=failed, seconds=10.0 if failed else 8.0)

    def _controls(self) -> Controls:
        def view(name: str, kind: type[Any]) -> Any:
            found = self.plugins.view(name)
            assert isinstance(found, kind), name
            return found

        return Controls(
            tasks=view("tasks", TasksView).table, workers=view("workers", WorkersView).table,
            queues=view("queues", QueuesView).table, detail=view("detail", DetailView).control,
            help=self.screen.help, filter_buffer=self.filter_buffer,
            palette_buffer=self.palette_buffer,
        )

    @property
    def app(self) -> Application[int]:
        assert self._app is not None
        return self._app

    # ------------------------------------------------------------------ the model, read

    @property
    def index(self) -> TaskIndex:
        return self.screen.index

    @property
    def info(self) -> DashboardInfo:
        return self.screen.info

    @property
    def feed(self) -> TaskFeed:
        return self.screen.feed

    @property
    def ui(self) -> UiState:
        return self.screen.ui

    @property
    def tasks(self) -> TaskListView:
        return self.screen.tasks

    @property
    def workers(self) -> ListModel[WorkerRow]:
        return self.screen.workers

    @property
    def queues(self) -> ListModel[QueueStats]:
        return self.screen.queues

    @property
    def detail(self) -> DetailModel[Any]:
        return self.screen.detail

    @property
    def palette(self) -> PaletteState[Any] | None:
        return self.screen.palette

    @property
    def queue_snapshot(self) -> QueueSnapshot | None:
        return self.screen.queue_snapshot

    @property
    def ingest_status(self) -> IngestStatus | None:
        return self.screen.ingest_status

    @property
    def stale(self) -> bool:
        return self.screen.stale

    @property
    def render_errors(self) -> RenderErrors:
        return self.screen.render_errors

    # ------------------------------------------------------------------ sources

    def attach(self, ingestor: IngestorLike | None = None,
               monitor: QueueMonitorLike | None = None) -> None:
        """Use a running (or about to run) ingest thread and queue monitor."""
        self.screen.attach(ingestor, monitor)
        if monitor is not None:
            self._unsubscribe = monitor.on_update(lambda _snap: self.invalidate())

    def on_batch(self, events: Sequence[Mapping[str, Any]], records: Sequence[object]) -> None:
        """Ingest-thread callback: hand over the batch and ask for a (coalesced) redraw."""
        self.screen.feed.push(events, records)
        self.invalidate()

    def on_status(self, status: object) -> None:
        self.operator.on_ingest_status(status)  # a reconnect after a gap: reconcile
        self.invalidate()

    # ------------------------------------------------------------------ the shell

    def invalidate(self) -> None:
        if self._app is not None:
            self._app.invalidate()

    def refocus(self) -> None:
        """The keyboard goes where the UI state says: the filter prompt, the palette, a
        dialog's input line, else the active pane."""
        ui = self.screen.ui
        target: Window | None
        if ui.filter_editing:
            target = self.filter_window
        elif ui.overlay == "palette":
            target = self.palette_window
        elif ui.overlay == "dialog" and self.operator.wants_input and \
                self.operator.input_window is not None:
            target = self.operator.input_window
        else:
            target = self.pane_windows.get(ui.pane)
        if target is not None:
            # a pane is not visible while the terminal is too small: focus follows on resize
            with contextlib.suppress(ValueError):
                self.layout.focus(target)

    def quit(self) -> None:
        if self.app.is_running:
            self.app.exit(result=0)

    def size(self) -> Size:
        return self.output.get_size()

    def terminal_size(self) -> tuple[int, int]:
        size = self.output.get_size()
        return size.columns, size.rows

    def width(self) -> int:
        return self.size().columns

    def input_text(self, name: str) -> str:
        return self._buffers[name].text

    def set_input_text(self, name: str, text: str) -> None:
        buffer = self._buffers[name]
        if not text:
            buffer.reset()
        else:
            buffer.set_document(Document(text, len(text)), bypass_readonly=True)

    def schedule_work(self) -> None:
        if not self.app.is_running:
            return
        if self._driver is None or self._driver.done():
            self._driver = self.app.create_background_task(self._drive())

    async def _drive(self) -> None:
        """Run whole-list work in slices; input and redraws run between slices."""
        tasks = self.screen.tasks
        while tasks.busy:
            try:
                tasks.step(STEP_BUDGET)
            except Exception as exc:  # the failed job is over; the next step finishes it
                self.screen.render_errors.record("list update", exc)
            self.app.invalidate()
            await asyncio.sleep(0)

    async def _warm_text(self) -> None:
        """Build the free-text chunks of a long task list while nothing else runs, so the
        first filter typed searches built text (core.task_list.TaskListView.warm_text)."""
        tasks = self.screen.tasks
        while True:
            more = False
            if not tasks.busy:
                try:
                    more = tasks.warm_text(WARM_TEXT_BUDGET)
                except Exception as exc:  # counted like any other list work; tried again later
                    self.screen.render_errors.record("free-text warm-up", exc)
            await asyncio.sleep(WARM_TEXT_PAUSE if more else WARM_TEXT_IDLE)

    @property
    def running(self) -> bool:
        return self.app.is_running

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        self.app.create_background_task(work)

    # ------------------------------------------------------------------ per frame

    def _before_render(self) -> None:
        """``pull`` for the next frame; an exception is counted, never raised into
        prompt_toolkit (whose handler would wait for Enter with the keys taken away)."""
        errors = self.screen.render_errors
        errors.begin_frame()
        try:
            self.pull()
        except Exception as exc:
            errors.record("update", exc)
        new = errors.take_new()
        if new:
            self.screen.ui.flash(f"could not show: {new[-1]} (marked ⚠; the rest is live)",
                                 error=True, seconds=8.0)

    def pull(self) -> None:
        """Bring the models up to date (runs before every render; O(new events))."""
        self.screen.pull()
        self.plugins.pull()
        self.operator.pull()

    # ------------------------------------------------------------------ commands

    def _is_enabled(self, command: Command) -> bool:
        return self.registry.is_enabled(command, self.screen)

    def run_command(self, command: Command) -> None:
        """Run a command's handler; a failure becomes a footer message, never a crash."""
        try:
            command.handler(self.screen)
        except LazyCeleryError as exc:
            self.screen.ui.flash(str(exc), error=True)
        except Exception as exc:
            log.exception("command %s failed", command.name)
            self.screen.ui.flash(f"{command.name} failed: {type(exc).__name__}: {exc}",
                                 error=True)
        self.invalidate()

    def run(self, name: str) -> None:
        """Run a command by name (tests, the palette, plugins)."""
        self.run_command(self.registry.get(name))

    # ------------------------------------------------------------------ running

    def start(self) -> None:
        """Start the sources (called once the application runs, so redraws can be asked)."""
        if self.screen.ingestor is not None:
            self.screen.ingestor.start()
        if self.screen.monitor is not None:
            self.screen.monitor.start()
        if self.screen.history is not None:
            self.screen.history.start()
            self.screen.start_errors_history()
        self.operator.start()
        if self.app.is_running:  # (the several-environment dashboard starts its own first)
            self.app.create_background_task(self._warm_text())

    def shutdown(self) -> None:
        """Stop the threads we started (bounded waits)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self.screen.ingestor is not None:
            self.screen.ingestor.stop(2.0)
        if self.screen.monitor is not None:
            self.screen.monitor.stop(2.0)
        if self.screen.history is not None:
            self.screen.history.stop(2.0)
        self.screen.errors.stop_history()
        self.plugins.close()
        self.operator.stop()

    def run_app(self) -> int:
        try:
            result = self.app.run(pre_run=self.start)
        finally:
            self.shutdown()
        return result if isinstance(result, int) else 0


def _with_builtins(infos: Sequence[PluginInfo]) -> list[PluginInfo]:
    """``infos`` with lazycelery's own panes first (a caller may pass plugins only, or none)."""
    if any(i.builtin for i in infos):
        return list(infos)
    return [*(replace(i) for i in builtin_panes()), *infos]


def _check_builtins(host: PaneHost) -> None:
    missing = [name for name in LIST_PANES if host.view(name) is None]
    if missing:
        reasons = {i.name: i.status() for i in host.infos if i.builtin}
        why = "; ".join(f"{n}: {reasons.get(n, 'not registered')}" for n in missing)
        raise LazyCeleryError(f"the built-in panes cannot be mounted ({why}): reinstall "
                              "lazycelery (pip install -e .)")
