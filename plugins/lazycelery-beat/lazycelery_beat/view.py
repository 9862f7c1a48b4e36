"""The beat pane: a table of schedule entries (soonest first) with a live countdown, read in a thread."""

from __future__ import annotations

import os
import textwrap
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Final

from prompt_toolkit.data_structures import Point
from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.layout import Container, HSplit, Window
from prompt_toolkit.layout.controls import FormattedTextControl, UIContent, UIControl

from lazycelery.panes_api import PaneCommand, PaneContext, PaneViewBase
from lazycelery_beat.schedule import (
    BeatEntry,
    BeatSchedule,
    BeatSource,
    entry_filter,
    load,
    resolve_source,
    source_mtime,
)

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["BeatTable", "BeatView", "ago", "relative", "when"]

INTERVAL_ENV: Final = "LAZYCELERY_BEAT_INTERVAL"
DEFAULT_INTERVAL: Final = 2.0
#: how often a shelve file's modification time is looked at between reads
MTIME_POLL: Final = 0.25
_COLUMNS: Final = ("NAME", "TASK", "SCHEDULE", "LAST RUN", "NEXT RUN", "RUNS")


def relative(seconds: float) -> str:
    """``in 42 s``, ``in 5 min``, ``in 3 h 20 min``, ``in 2 d``; ``due`` / ``3 s ago``."""
    if seconds <= -1:
        return f"{_span(-seconds)} ago"
    if seconds < 1:
        return "due"
    return f"in {_span(seconds)}"


def ago(seconds: float) -> str:
    """``just now``, ``42 s ago``, ``3 h 5 min ago``."""
    return "just now" if seconds < 1 else f"{_span(seconds)} ago"


def _span(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        h, m = divmod(s // 60, 60)
        return f"{h} h {m} min" if m else f"{h} h"
    d, h = divmod(s // 3600, 24)
    return f"{d} d {h} h" if h else f"{d} d"


def when(ts: float, now: float) -> str:
    """Local time of ``ts``: ``14:03:07`` within a day of ``now``, else ``Mon 12-01 03:00``."""
    moment = datetime.fromtimestamp(ts)
    if abs(ts - now) < 86400:
        return moment.strftime("%H:%M:%S")
    return moment.strftime("%a %m-%d %H:%M")


def _fit(text: str, width: int) -> str:
    if len(text) <= width:
        return text.ljust(width)
    return text[:max(0, width - 1)] + "…"


def _next_cell(entry: BeatEntry, now: float) -> str:
    if not entry.enabled:
        return "disabled"
    if entry.next_run_at is None:
        return "never"
    approx = "~" if entry.estimated else ""
    return f"{approx}{relative(entry.next_run_at - now)} ({when(entry.next_run_at, now)})"


def _cells(entry: BeatEntry, now: float) -> tuple[str, ...]:
    last = "–" if entry.last_run_at is None else ago(now - entry.last_run_at)
    runs = "–" if entry.total_run_count is None else str(entry.total_run_count)
    return (entry.name, entry.task, entry.schedule, last, _next_cell(entry, now), runs)


class BeatTable(UIControl):
    """The entries, one per line, under a header; only the visible rows are formatted."""

    def __init__(self, view: BeatView) -> None:
        self.view = view
        self.top = 0
        self.height = 10

    def is_focusable(self) -> bool:
        return True

    def _widths(self, rows: Sequence[tuple[str, ...]], width: int) -> list[int]:
        want = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(_COLUMNS)]
        caps = [32, 40, 36, 12, 28, 6]
        widths = [min(w, cap) for w, cap in zip(want, caps, strict=True)]
        spare = width - sum(widths) - len(widths)
        if spare < 0:  # narrow: squeeze the task and schedule columns first
            for i in (1, 2, 0):
                cut = min(-spare, max(0, widths[i] - 10))
                widths[i] -= cut
                spare += cut
        return widths

    def create_content(self, width: int, height: int) -> UIContent:
        view = self.view
        self.height = max(1, height - 1)
        entries = view.entries
        if not entries:
            notes: list[StyleAndTextTuples] = [
                [("class:pane.empty", f" {line}")]
                for line in textwrap.wrap(view.empty_text(), max(20, width - 2))]
            return UIContent(get_line=lambda i: notes[i] if i < len(notes) else [],
                             line_count=len(notes), show_cursor=False)
        cursor = view.cursor
        if cursor < self.top:
            self.top = cursor
        elif cursor >= self.top + self.height:
            self.top = cursor - self.height + 1
        now = time.time()
        visible = entries[self.top:self.top + self.height]
        rows = [_cells(e, now) for e in visible]
        widths = self._widths(rows, width)
        header: StyleAndTextTuples = [("class:table.header",
                                       " ".join(_fit(c, w) for c, w in zip(_COLUMNS, widths,
                                                                          strict=True)))]
        lines: list[StyleAndTextTuples] = [header]
        for i, (entry, row) in enumerate(zip(visible, rows, strict=True)):
            text = " ".join(_fit(c, w) for c, w in zip(row, widths, strict=True))
            if self.top + i == cursor:
                lines.append([("class:table.selected", text.ljust(width))])
            else:
                style = "class:table.dim" if not entry.enabled else ""
                lines.append([(style, text)])
        return UIContent(get_line=lambda i: lines[i] if i < len(lines) else [],
                         line_count=len(lines),
                         cursor_position=Point(0, cursor - self.top + 1), show_cursor=False)


class BeatView(PaneViewBase):
    """One beat pane: a loader thread reads the source, ``refresh`` takes what it read."""

    def __init__(self, ctx: PaneContext, interval: float | None = None) -> None:
        self.ctx = ctx
        self.interval = interval if interval is not None else _interval()
        self.entries: tuple[BeatEntry, ...] = ()
        self.cursor = 0
        self.schedule: BeatSchedule | None = None
        self.problem: str | None = None
        self._latest: BeatSchedule | str | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._assumed: dict[str, datetime] = {}
        self._resolve_again = False
        self.table = BeatTable(self)
        self._container = HSplit([
            Window(self.table, wrap_lines=False, always_hide_cursor=True),
            Window(FormattedTextControl(self._detail), height=2, style="class:table.dim"),
        ])

    # ------------------------------------------------------------------ PaneView

    def container(self) -> Container:
        return self._container

    def refresh(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="lazycelery-beat",
                                            daemon=True)
            self._thread.start()
        with self._lock:
            latest, self._latest = self._latest, None
        if latest is None:
            return
        if isinstance(latest, str):
            self.problem = latest
            return
        self.problem = None
        selected = self.selected
        self.schedule = latest
        self.entries = latest.entries
        names = [e.name for e in self.entries]
        if selected is not None and selected.name in names:
            self.cursor = names.index(selected.name)
        self.cursor = max(0, min(self.cursor, len(self.entries) - 1))

    def commands(self) -> Sequence[PaneCommand]:
        return (
            PaneCommand("reload", "Read the beat schedule again", self.reload, ("r",),
                        footer="reload"),
            PaneCommand("tasks", "Show the tasks this entry sent (filtered by its task name, "
                        "args and kwargs)", self.show_tasks, ("enter",), footer="its tasks"),
        )

    def move(self, delta: int) -> None:
        self.cursor = max(0, min(self.cursor + delta, len(self.entries) - 1))

    def subtitle(self) -> str:
        schedule = self.schedule
        if self.problem is not None:
            return "no source"
        if schedule is None:
            return "reading…"
        parts = [f"{len(schedule.entries)} entries", schedule.source.describe()
                 if schedule.source else ""]
        if schedule.error:
            parts.append(f"error: {schedule.error}")
        else:
            parts.append(f"read {when(schedule.read_at, time.time())}")
        return " · ".join(p for p in parts if p)

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(2.0)

    # ------------------------------------------------------------------ commands

    @property
    def selected(self) -> BeatEntry | None:
        if 0 <= self.cursor < len(self.entries):
            return self.entries[self.cursor]
        return None

    def reload(self) -> None:
        self._resolve_again = True  # a file or keys created since are found too
        self._wake.set()
        self.ctx.log("reading the beat schedule…")

    def show_tasks(self) -> None:
        entry = self.selected
        if entry is None:
            self.ctx.log("no schedule entry selected", error=True)
            return
        self.ctx.show_tasks(entry_filter(entry))

    # ------------------------------------------------------------------ loading

    def _run(self) -> None:
        """The loader thread: resolve the source once, then read it every ``interval``, and at
        once when a shelve file changes (beat rewrites it when it syncs)."""
        source: BeatSource | str | None = None
        while not self._stop.is_set():
            app = self._app()
            if source is None or isinstance(source, str) or self._resolve_again:
                self._resolve_again = False
                source = self._resolve(app)
            stamp = source_mtime(source) if isinstance(source, BeatSource) else None
            result: BeatSchedule | str = source if isinstance(source, str) else load(
                source, app, self._assumed)
            with self._lock:
                self._latest = result
            self.ctx.invalidate()
            self._wait(source, stamp)

    def _wait(self, source: BeatSource | str, stamp: float | None) -> None:
        """Until the next read: ``interval``, a wake-up (``r``), or the file's mtime moving."""
        deadline = time.monotonic() + self.interval
        watch = isinstance(source, BeatSource) and source.kind == "shelve"
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0 or self._wake.wait(min(left, MTIME_POLL) if watch else left):
                break
            if watch and isinstance(source, BeatSource) and source_mtime(source) != stamp:
                break
        self._wake.clear()

    def _app(self) -> Celery | None:
        try:
            app: Celery = self.ctx.celery_app()
        except Exception:
            return None
        return app

    def _resolve(self, app: Celery | None) -> BeatSource | str:
        try:
            return resolve_source(app, self.ctx.settings.app)
        except Exception as exc:
            return f"cannot choose a beat source: {type(exc).__name__}: {exc}"

    # ------------------------------------------------------------------ text

    def empty_text(self) -> str:
        if self.problem is not None:
            return self.problem
        schedule = self.schedule
        if schedule is None:
            return "reading the beat schedule…"
        if schedule.error:
            return f"cannot read {schedule.source.describe() if schedule.source else ''}: " \
                   f"{schedule.error}"
        return "the schedule has no entries"

    def _detail(self) -> StyleAndTextTuples:
        entry = self.selected
        if entry is None:
            return []
        queue = f"  queue {entry.queue}" if entry.queue else ""
        estimate = "  (~ estimated: no beat state in this source)" if entry.estimated else ""
        kwargs = f" kwargs {entry.kwargs}" if entry.kwargs != "{}" else ""
        return [("", f" {entry.name}: {entry.task}{entry.args}{kwargs}{queue}{estimate}")]


def _interval() -> float:
    try:
        return max(0.5, float(os.environ.get(INTERVAL_ENV, DEFAULT_INTERVAL)))
    except ValueError:
        return DEFAULT_INTERVAL
