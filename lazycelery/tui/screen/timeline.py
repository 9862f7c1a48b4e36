"""The timeline pane's model, headless: the layout of the task list's tasks (so it follows the
filter) into lanes, rebuilt when the list changed (at most every ``BUILD_EVERY`` seconds while
tasks stream in); the view (zoom, pan, following now), the lanes' grouping, the first row on
screen and the selected task, kept by id.

The worker process of a task comes from its own events (the ``pid`` its worker sent),
which the records do not keep: the model takes them from the feed's batches."""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Protocol

from lazycelery.core.model import TaskRecord
from lazycelery.core.timeline import BY_QUEUE, BY_WORKER, Bar, Layout, View, build_layout
from lazycelery.text import counted

__all__ = ["BUILD_COST_FACTOR", "BUILD_EVERY", "DEFAULT_SPAN", "FOLLOW_STEPS", "PIDS_KEPT", "TaskRows",
           "TimelineModel"]

#: while tasks change, the layout is rebuilt at most this often (seconds), and at most every
#: ``BUILD_COST_FACTOR`` times the last build's own duration (100,000 tasks take ~0.2 s)
BUILD_EVERY: Final = 1.0
BUILD_COST_FACTOR: Final = 10.0
#: what the view shows at first, ending now (seconds)
DEFAULT_SPAN: Final = 300.0
#: task ids whose worker pid is remembered (the newest; twice the default --max-tasks)
PIDS_KEPT: Final = 200_000
#: how much a key zooms, and pans (a fraction of the width)
ZOOM_STEP: Final = 2.0
PAN_STEP: Final = 0.25
#: following now, the view moves by 1/FOLLOW_STEPS of its span at a time (finer than any
#: terminal's column)
FOLLOW_STEPS: Final = 1024


class TaskRows(Protocol):
    """The task list as the timeline reads it (``core.task_list.TaskListView``)."""

    generation: int

    def snapshot(self) -> list[TaskRecord]: ...


class TimelineModel:
    """Lanes of bars for the pane, a view on them and a selection; UI thread only."""

    def __init__(self, tasks: TaskRows, clock: Callable[[], float] = time.time, *,
                 threaded: bool = False) -> None:
        self._tasks = tasks
        self.threaded = threaded
        #: called from the build thread when a layout is ready (the dashboard redraws)
        self.on_built: Callable[[], None] = lambda: None
        self._job: threading.Thread | None = None
        self._done: tuple[tuple[int, str, int], tuple[Layout, float], float] | None = None
        self._clock = clock
        self.pids: OrderedDict[str, int] = OrderedDict()
        self.grouping = BY_WORKER
        self.layout = build_layout((), self.grouping)
        self.view = View(clock() - DEFAULT_SPAN, DEFAULT_SPAN)
        #: the view's right edge stays at now (off once you pan, zoom to fit or select)
        self.follow = True
        self.top = 0  # first display row on screen
        self.selected: str | None = None
        self._built: tuple[int, str, int] | None = None  # (list generation, grouping, pids)
        self._built_at = 0.0
        self._build_seconds = 0.0
        self._pids_version = 0

    # ------------------------------------------------------------------ input

    def feed(self, events: Sequence[Mapping[str, Any]]) -> None:
        """Remember the worker pid of each task from the events its worker sent (not
        ``task-sent``: that one comes from the client)."""
        pids = self.pids
        for event in events:
            kind = event.get("type")
            if not isinstance(kind, str) or not kind.startswith("task-") or kind == "task-sent":
                continue
            uuid, pid = event.get("uuid"), event.get("pid")
            if isinstance(uuid, str) and isinstance(pid, int) and not isinstance(pid, bool) \
                    and pids.get(uuid) != pid:
                pids[uuid] = pid
                pids.move_to_end(uuid)
                self._pids_version += 1
        while len(pids) > PIDS_KEPT:
            pids.popitem(last=False)

    def refresh(self, force: bool = False) -> float | None:
        """Take a finished build; start one if the list (or the grouping) changed, at most
        every ``BUILD_EVERY`` seconds; keep following now. Returns the seconds until a
        change held back is due (the pane redraws then), None when nothing waits.

        With ``threaded`` the layout is built on a thread of its own from a copy of the
        list (100,000 tasks take a good fraction of a second: never on the UI thread) and
        ``on_built`` is called from that thread when it is ready; ``force`` builds here."""
        idle = self._job is None  # read first: the thread sets _done before it clears _job
        done = self._done
        if done is not None:
            self._done = None
            self._install(*done)
        now = self._clock()
        key = (self._tasks.generation, self.grouping, self._pids_version)
        every = max(BUILD_EVERY, BUILD_COST_FACTOR * self._build_seconds)
        pending: float | None = None
        if key != self._built and idle:
            due = every - (now - self._built_at)
            if force or not self.threaded:
                if force or self._built is None or key[1] != self._built[1] or due <= 0:
                    self._install(key, self._layout_of(self._snapshot(), key), now)
                else:
                    pending = due
            elif self._built is None or key[1] != self._built[1] or due <= 0:
                self._start(key, now)
            else:
                pending = due
        if self.follow:
            self._follow(now)
        return pending

    def _follow(self, now: float) -> None:
        """The view ending at now, moved in steps of 1/``FOLLOW_STEPS`` of its span (less
        than a column): between steps every frame is the same, and the pane reuses it."""
        span = self.view.span
        step = span / FOLLOW_STEPS
        end = math.ceil(now / step) * step
        if end - span != self.view.start:
            self.view = View(end - span, span)

    def _snapshot(self) -> list[TaskRecord]:
        return self._tasks.snapshot()

    def _layout_of(self, records: list[TaskRecord],
                   key: tuple[int, str, int]) -> tuple[Layout, float]:
        started = time.perf_counter()
        layout = build_layout(records, key[1], self.pids)
        return layout, time.perf_counter() - started

    def _start(self, key: tuple[int, str, int], now: float) -> None:
        records = self._snapshot()  # the list is the UI thread's: copied here

        def build() -> None:
            try:
                self._done = (key, self._layout_of(records, key), now)
            finally:
                self._job = None
                self.on_built()

        self._job = threading.Thread(target=build, name="lazycelery-timeline", daemon=True)
        self._job.start()

    def _install(self, key: tuple[int, str, int], built: tuple[Layout, float],
                 now: float) -> None:
        self.layout, self._build_seconds = built
        self._built, self._built_at = key, now
        self.top = min(self.top, max(0, len(self.layout.rows) - 1))

    @property
    def building(self) -> bool:
        return self._job is not None

    # ------------------------------------------------------------------ reading

    def now(self) -> float:
        return self._clock()

    @property
    def selected_bar(self) -> Bar | None:
        return self.layout.bar(self.selected) if self.selected is not None else None

    def selected_row(self) -> int:
        at = self.layout.where.get(self.selected) if self.selected is not None else None
        return at[0] if at is not None else -1

    def visible_rows(self, height: int) -> range:
        """The display rows on a screen of ``height`` rows, the selected one among them."""
        n = len(self.layout.rows)
        d = self.selected_row()
        if d >= 0:
            if d < self.top:
                self.top = d
            elif d >= self.top + height:
                self.top = d - height + 1
        self.top = max(0, min(self.top, n - height)) if n > height else 0
        return range(self.top, min(n, self.top + max(0, height)))

    # ------------------------------------------------------------------ keys

    def zoom(self, factor: float) -> None:
        """Zoom around the selected task when it is on screen (else the centre); following
        now, the right edge stays at now."""
        bar = self.selected_bar
        at = bar.start if bar is not None and self.view.start <= bar.start <= self.view.end \
            else None
        if self.follow:
            at = self._clock()
        self.view = self.view.zoom(factor, at)

    def zoom_in(self) -> None:
        self.zoom(ZOOM_STEP)

    def zoom_out(self) -> None:
        self.zoom(1 / ZOOM_STEP)

    def pan(self, fraction: float) -> None:
        self.follow = False
        self.view = self.view.pan(fraction)

    def fit(self) -> None:
        """Everything laid out in view."""
        first, last = self.layout.first, self.layout.last
        if first is None or last is None:
            return
        self.follow = False
        self.view = View.fit(first, last)

    def toggle_follow(self) -> None:
        self.follow = not self.follow
        if self.follow:
            self._follow(self._clock())

    def toggle_grouping(self) -> None:
        self.grouping = BY_QUEUE if self.grouping == BY_WORKER else BY_WORKER
        self.refresh()  # a new grouping builds at once (on the build thread when threaded)

    def select(self, uuid: str) -> None:
        """Select a task and bring it into view."""
        self.selected = uuid
        bar = self.selected_bar
        if bar is not None:
            moved = self.view.showing(bar.start)
            if moved is not self.view:
                self.follow = False
                self.view = moved

    def _select_near(self, d: int, t: float) -> None:
        row = self.layout.row(d)
        i = row.nearest(t)
        if i >= 0:
            self.select(row.bars[i].record.uuid)

    def _centre(self) -> float:
        return self.view.start + self.view.span / 2

    def move(self, delta: int) -> None:
        """Up / down a row: the bar nearest in time to the selected one (to the view's
        centre when nothing is selected)."""
        rows = len(self.layout.rows)
        if not rows:
            return
        d = self.selected_row()
        bar = self.selected_bar
        t = bar.start if bar is not None else self._centre()
        target = max(0, min(rows - 1, d + delta)) if d >= 0 else max(0, min(self.top, rows - 1))
        for probe in range(target, rows) if delta >= 0 else range(target, -1, -1):
            if self.layout.row(probe).bars:
                self._select_near(probe, t)
                return

    def step(self, delta: int) -> None:
        """The previous / next task in the selected row (the nearest one in the top row when
        nothing is selected)."""
        at = self.layout.where.get(self.selected) if self.selected is not None else None
        if at is None:
            self.move(0)
            return
        row = self.layout.row(at[0])
        i = max(0, min(len(row.bars) - 1, at[1] + delta))
        self.select(row.bars[i].record.uuid)

    def selected_record(self) -> TaskRecord | None:
        bar = self.selected_bar
        return bar.record if bar is not None else None

    def title(self) -> str:
        """Counts for the pane's title: lanes, bars, and what was left out."""
        layout = self.layout
        lanes = len(layout.lanes)
        kind = "queue" if self.grouping == BY_QUEUE else "worker"
        text = f"{lanes:,} {kind}{'' if lanes == 1 else 's'}  {counted(layout.bars, 'task')}"
        if layout.untimed:
            text += f"  {layout.untimed:,} not started"
        if layout.hidden:
            text += f"  {layout.hidden:,} hidden (overlap)"
        if layout.skewed:
            text += f"  {layout.skewed:,} ended before start (clock skew)"
        return text + ("  following now" if self.follow else "")
