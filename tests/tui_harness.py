"""The headless dashboard the TUI tests drive: pipe input, a sized DummyOutput, fakes and a runner."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

from prompt_toolkit.data_structures import Size
from prompt_toolkit.input import PipeInput, create_pipe_input
from prompt_toolkit.layout.mouse_handlers import MouseHandlers
from prompt_toolkit.layout.screen import Screen, WritePosition
from prompt_toolkit.output import DummyOutput

from lazycelery.broker.model import QueueSnapshot
from lazycelery.config import Settings
from lazycelery.core.index import TaskIndex
from lazycelery.core.ingest import IngestStatus
from lazycelery.tui.app import Dashboard
from lazycelery.tui.global_commands import global_commands
from lazycelery.tui.operator import Operator
from lazycelery.tui.operator_commands import operator_commands
from lazycelery.tui.plugins import PluginInfo, builtin_panes
from lazycelery.tui.registry import Command
from lazycelery.tui.screen.model import ScreenModel
from lazycelery.tui.screen.sources import DashboardInfo
from lazycelery.tui.screen.state import contexts

__all__ = [
    "ALL_CONTEXTS",
    "ESC",
    "DashboardHarness",
    "FakeIngestor",
    "FakeMonitor",
    "SizedOutput",
    "builtin_commands",
    "drive",
    "headless_dashboard",
    "operator_command_list",
    "screen_lines",
]

ESC = "\x1b"
#: every key context of a dashboard with the built-in panes only
ALL_CONTEXTS = contexts(i.name for i in builtin_panes())


def builtin_commands() -> list[Command]:
    """The dashboard's own commands (with the built-in panes' ``pane.<name>``), no operator's."""
    return global_commands(builtin_panes())


def operator_command_list(read_only: bool = False) -> list[Command]:
    """The operator actions' commands, bound to an operator without an application."""
    screen = ScreenModel(TaskIndex())
    return operator_commands(Operator(screen, screen.shell),
                             frozenset(i.name for i in builtin_panes()), read_only=read_only)


class SizedOutput(DummyOutput):
    """A DummyOutput whose terminal size the test can change (resize)."""

    def __init__(self, rows: int, columns: int) -> None:
        self.size = Size(rows=rows, columns=columns)

    def get_size(self) -> Size:
        return self.size


@dataclass
class FakeIngestor:
    """Stands in for the event reader: a status the test sets, a fixed rate, start/stop seen."""

    status: IngestStatus = field(default_factory=lambda: IngestStatus(state="connected",
                                                                      path="fast"))
    rate: float = 0.0
    started: bool = False
    stopped: bool = False

    def events_per_second(self) -> float:
        return self.rate

    def start(self) -> None:
        self.started = True

    def stop(self, timeout: float = 2.0) -> None:
        self.stopped = True


@dataclass
class FakeMonitor:
    """Stands in for the queue monitor: one fixed snapshot, listeners recorded, never called."""

    snapshot: QueueSnapshot
    listeners: list[Callable[[QueueSnapshot], None]] = field(default_factory=list)

    def on_update(self, callback: Callable[[QueueSnapshot], None]) -> Callable[[], None]:
        self.listeners.append(callback)
        return lambda: None

    def start(self) -> None:
        pass

    def stop(self, timeout: float = 2.0) -> None:
        pass


@contextmanager
def headless_dashboard(index: TaskIndex, info: DashboardInfo, output: SizedOutput, *,
                       keys: Mapping[str, str] | None = None, plugins: Sequence[PluginInfo] = (),
                       settings: Settings | None = None) -> Iterator[tuple[Dashboard, PipeInput]]:
    """A Dashboard reading keys from a pipe and drawing to ``output``, without a redraw timer."""
    with create_pipe_input() as inp:
        yield Dashboard(index, info=info, input=inp, output=output, plugins=plugins,
                        settings=settings, keys=keys, refresh_interval=None), inp


def screen_lines(d: Dashboard) -> list[str]:
    """The characters the layout draws at the output's size (a render without a terminal)."""
    d.pull()
    # FormattedTextControl caches per render: count this as a render of its own
    d.app.render_counter += 1
    size = d.size()
    screen = Screen(default_char=None, initial_width=size.columns, initial_height=size.rows)
    d.layout.container.write_to_screen(screen, MouseHandlers(),
                                       WritePosition(0, 0, size.columns, size.rows),
                                       parent_style="", erase_bg=False, z_index=None)
    screen.draw_all_floats()
    return ["".join(screen.data_buffer[y][x].char for x in range(size.columns)).rstrip()
            for y in range(size.rows)]


@dataclass
class DashboardHarness:
    """A headless dashboard and its key pipe; each test module adds the fakes it looks at."""

    d: Dashboard
    inp: PipeInput

    async def send_keys(self, text: str, wait: float) -> None:
        """Type ``text``, then give the app ``wait`` s (0.1 s more after an Esc, which
        prompt_toolkit holds back to tell it from the start of an escape sequence)."""
        self.inp.send_text(text)
        await asyncio.sleep(wait + (0.1 if ESC in text else 0.0))

    async def until(self, cond: Callable[[], object], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                raise AssertionError("condition not reached")
            await asyncio.sleep(0.02)


H = TypeVar("H", bound=DashboardHarness)


def drive(h: H, scenario: Callable[[H], Awaitable[None]],
          ready: Callable[[], object] | None = None) -> None:
    """Run the app, wait until it runs (and ``ready()`` holds), play ``scenario``, then exit
    the app, expect exit code 0 and shut the dashboard down."""
    async def main() -> None:
        task = asyncio.ensure_future(h.d.app.run_async(pre_run=h.d.start))
        await h.until(lambda: h.d.app.is_running)
        if ready is not None:
            await h.until(ready)
        try:
            await scenario(h)
        finally:
            if h.d.app.is_running:
                h.d.app.exit(result=0)
            assert await asyncio.wait_for(task, 5) == 0
            h.d.shutdown()

    asyncio.run(main())
